#!/usr/bin/env bash
# Real text end to end: fmprep tokenizes tinyshakespeare with the LLaMA 2 tokenizer (one
# document per paragraph), and the tiny model (vocab_size 32000) trains on the shard with a
# 95/5 train/validation split: both the training loss and the validation loss fall.
set -euo pipefail
build=$FM_BUILD_DIR
tok="$FM_SHARED_DIR/data/tokenizers/llama2"
corpus="$FM_SHARED_DIR/data/tinyshakespeare.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/data/fmprep" --quiet --output "$tmp/shake" --tokenizer "$tok" --text_split paragraph "$corpus"
python3 - "$FM_SOURCE_DIR/configs/models/tiny.json" "$tmp/model.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c.update(vocab_size=32000, bos_token_id=1, eos_token_id=2)
json.dump(c, open(sys.argv[2], "w"))
PY
cat > "$tmp/ds.json" <<'JSON'
{"train_batch_size": 16, "train_micro_batch_size_per_gpu": 8, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": 2e-3, "betas": [0.9, 0.95], "weight_decay": 0.1}},
 "scheduler": {"type": "WarmupCosineLR",
               "params": {"total_num_steps": "auto", "warmup_num_steps": 10, "warmup_type": "linear"}}}
JSON
"$build/runtime/fmtrain" --model_config "$tmp/model.json" --deepspeed_config "$tmp/ds.json" \
  --data_path "$tmp/shake" --split 95,5,0 --max_seq_len 64 --train_steps 60 --eval_steps 20 --eval_iters 4 \
  --output_dir "$tmp/out" > "$tmp/log" 2>&1 || { tail -30 "$tmp/log"; exit 1; }
grep -E "^eval|^data" "$tmp/log"
python3 - "$tmp/out/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r["loss"] for r in rows if "loss" in r]
val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
first, last = sum(train[:5]) / 5, sum(train[-5:]) / 5
print(f"train loss: first 5 steps {first:.3f}, last 5 steps {last:.3f}; validation: {val}")
if not last < first - 1.0:
    sys.exit("the training loss did not fall")
if len(val) != 3 or not val[-1][1] < val[0][1]:
    sys.exit("the validation loss did not fall")
PY
