#!/usr/bin/env bash
# Installs everything fmengine needs to build, run and test on Debian 12, idempotently.
#   scripts/setup.sh          build + runtime packages
#   scripts/setup.sh --test   also the daemons the tests start on localhost (sshd, pdsh, Slurm)
# Packages already present are skipped, so a second run costs one dpkg query.
set -euo pipefail

want_test=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    *) echo "setup.sh: unknown option '$a' (expected --test)" >&2; exit 2 ;;
  esac
done

pkgs=(meson ninja-build pkg-config g++ cmake git
      libopenmpi-dev openmpi-bin libtbb-dev rapidjson-dev libfmt-dev doctest-dev
      libopenblas-dev libgloo-dev python3 python3-venv ca-certificates)
if [ "$want_test" = 1 ]; then
  pkgs+=(openssh-server openssh-client pdsh slurm-wlm munge procps iproute2 util-linux)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
