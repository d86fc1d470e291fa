#!/usr/bin/env bash
# Raw JSONL as --data_path (FMEngine's way of working): under mpirun with 2 ranks, rank 0 tokenizes
# the file once (LLaMA 2 tokenizer) into <output_dir>/data_cache while the other waits; a second
# run finds the cache and does not tokenize again, and trains on the same batches.
set -euo pipefail
fmtrain="$FM_BUILD_DIR/runtime/fmtrain"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
head -3000 "$FM_SHARED_DIR/data/tinyshakespeare.txt" | python3 -c '
import json, sys
for block in sys.stdin.read().split("\n\n"):
    if block.strip():
        print(json.dumps({"text": block}))' > "$tmp/corpus.jsonl"
python3 - "$FM_SOURCE_DIR/configs/models/tiny.json" "$tmp/model.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c.update(vocab_size=32000, bos_token_id=1, eos_token_id=2)
json.dump(c, open(sys.argv[2], "w"))
PY
run() {  # run LOG
  mpirun --oversubscribe -np 2 "$fmtrain" --model_config "$tmp/model.json" --data_path "$tmp/corpus.jsonl" \
    --tokenizer "$FM_SHARED_DIR/data/tokenizers/llama2" --split 90,10,0 --train_steps 3 --max_seq_len 32 \
    --resume none --output_dir "$tmp/out" > "$tmp/$1" 2>&1 || { tail -30 "$tmp/$1"; exit 1; }
}
first_loss() { python3 -c 'import json,sys; print([json.loads(l)["loss"] for l in open(sys.argv[1]) if "\"loss\"" in l][0])' "$1"; }
run first.log
grep -q "data: tokenizing .*corpus.jsonl into" "$tmp/first.log" || { cat "$tmp/first.log"; echo "FAIL: the first run did not tokenize"; exit 1; }
[ "$(grep -c "data: tokenizing" "$tmp/first.log")" = 1 ] || { echo "FAIL: tokenized more than once"; exit 1; }
ls "$tmp/out/data_cache/"corpus-*.bin "$tmp/out/data_cache/"corpus-*.idx > /dev/null
loss1=$(first_loss "$tmp/out/metrics.jsonl")
mv "$tmp/out/metrics.jsonl" "$tmp/first.jsonl"
run second.log
if grep -q "data: tokenizing" "$tmp/second.log"; then echo "FAIL: the second run tokenized again"; exit 1; fi
loss2=$(first_loss "$tmp/out/metrics.jsonl")
[ "$loss1" = "$loss2" ] || { echo "FAIL: first-step loss $loss1 then $loss2"; exit 1; }
echo "ok: $(grep -m1 'data: tokenizing' "$tmp/first.log"); second run reused the cache; step-1 loss $loss1 both times"
