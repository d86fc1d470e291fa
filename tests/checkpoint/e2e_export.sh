#!/usr/bin/env bash
# fmtrain's checkpoint exported with fmckpt export-hf: transformers loads it with every key, and
# its logits equal ours computed from the checkpoint (1e-4).
fmtrain=$1
fmckpt=$2
probe=$3
source "$(dirname "$0")/e2e_common.sh"
[ -n "${FM_PYTHON:-}" ] || fail "FM_PYTHON is unset: run the tests through scripts/test.sh"
fmtrain_mpi 4 2 1 "$work/a" --train_steps 4 --resume none > "$work/a.log" 2>&1 ||
  { tail -30 "$work/a.log"; fail "training failed"; }
"$fmckpt" inspect "$work/a" > "$work/inspect.log" || { cat "$work/inspect.log"; fail "inspect failed"; }
"$fmckpt" export-hf "$work/a" "$work/hf" || fail "export-hf failed"
"$FM_PYTHON" - "$work/a" "$work/hf" "$probe" <<'PY' || fail "the export does not compute our logits"
import json, os, subprocess, sys
import numpy as np, torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM
out, hf, probe = sys.argv[1:4]
model, info = AutoModelForCausalLM.from_pretrained(hf, output_loading_info=True, dtype=torch.float32)
assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
tokens = np.random.default_rng(5).integers(0, model.config.vocab_size, size=(2, 32))
json.dump({"B": 2, "T": 32, "tokens": tokens.flatten().tolist()}, open(out + "/batch.json", "w"))
subprocess.run([probe, "logits", out, out + "/batch.json", out + "/ours.safetensors"], check=True)
with torch.no_grad():
    theirs = model(torch.tensor(tokens)).logits.reshape(64, -1).numpy()
diff = float(np.abs(load_file(out + "/ours.safetensors")["logits"] - theirs).max())
print(f"max |logits difference| {diff:.2e}")
sys.exit(0 if diff < 1e-4 else 1)
PY
echo "ok: exported checkpoint of a trained model: transformers' logits equal ours"
