#!/usr/bin/env bash
# Creates (once) the Python venv holding the reference peers of the parity tests and prints the
# path of its python. The venv lives outside the checkout, keyed by tests/requirements.txt, so a
# fresh clone reuses it and a change of pins rebuilds it.
#   FM_VENV_DIR   where to put it (default ~/.cache/fmengine/venv)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
req="$here/tests/requirements.txt"
venv=${FM_VENV_DIR:-$HOME/.cache/fmengine/venv}
stamp="$venv/.fm-requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi
echo "test_venv.sh: creating $venv (torch, transformers, tokenizers, deepspeed from PyPI)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >&2
DS_BUILD_OPS=0 "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
