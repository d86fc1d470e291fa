#!/usr/bin/env bash
# A model whose vocab_size is larger than the tokenizer's (a padded vocabulary) trains; a smaller
# one is refused before any work with exit 2 and a message naming vocab_size.
set -euo pipefail
fmtrain=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
make_config() {  # $1 = vocab size
  sed -e "s/\"vocab_size\": 512/\"vocab_size\": $1/" "$FM_SOURCE_DIR/configs/models/tiny.json" > "$out/model_$1.json"
}
make_config 300
make_config 200
"$fmtrain" --model_config "$out/model_300.json" --train_steps 2 --output_dir "$out/ok" > "$out/ok.log" 2>&1 || {
  echo "padded vocabulary (300 > 258) was refused:"; cat "$out/ok.log"; exit 1; }
echo "vocab_size 300 (tokenizer 258): trained"
set +e
"$fmtrain" --model_config "$out/model_200.json" --train_steps 2 --output_dir "$out/bad" > "$out/bad.log" 2>&1
rc=$?
set -e
cat "$out/bad.log"
[ "$rc" = 2 ] || { echo "expected exit 2, got $rc"; exit 1; }
grep -q "vocab_size 200 is smaller than the tokenizer's 258" "$out/bad.log" || { echo "message does not name vocab_size"; exit 1; }
[ ! -e "$out/bad/metrics.jsonl" ] || { echo "training started despite the error"; exit 1; }
echo "vocab_size 200 (tokenizer 258): refused with exit 2"
