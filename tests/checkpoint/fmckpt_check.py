"""fmckpt against the reference peers (transformers, safetensors).

A synthetic checkpoint written under (pipeline 2, data 2, ZeRO 1) by the probe, for a tied and an
untied model:
  - list: the checkpoints of an output directory, complete, `latest` marked;
  - inspect: state, layout, tensors with shapes, every file's checksum verified;
  - consolidate: one safetensors file with our names and shapes, values equal to the export's;
  - export-hf (float32, and bfloat16 sharded with an index): transformers' from_pretrained loads
    it with no missing, unexpected or mismatched keys; every tensor equals the consolidated value
    (cast to bf16 by torch for bf16); the tokenizer files are copied (given, or the one the run
    recorded); transformers' logits on the fp32 export equal ours from the checkpoint (1e-4);
  - bad input: a damaged or truncated shard, an incomplete checkpoint, a bad dtype, a bad size,
    an unknown flag: exit code 2 and a message naming the file or flag.

usage: fmckpt_check.py FMCKPT CKPT_PROBE
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    print(("ok   " if cond else "FAIL ") + what)


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


def config(tied):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
            "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 300, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2}


def hf_reference(ours, cfg):
    """Our consolidated tensors under Hugging Face names (qkv and gateup split by rows)."""
    L, C = cfg["num_hidden_layers"], cfg["hidden_size"]
    D = C // cfg["num_attention_heads"]
    Q, KV, F = cfg["num_attention_heads"] * D, cfg["num_key_value_heads"] * D, cfg["intermediate_size"]
    out = {"model.embed_tokens.weight": ours["embed_tokens"], "model.norm.weight": ours["norm"]}
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = ours["lm_head"]
    for i in range(L):
        h, o = f"model.layers.{i}.", f"layers.{i}."
        qkv, gu = ours[o + "qkv"], ours[o + "gateup"]
        out.update({h + "input_layernorm.weight": ours[o + "input_layernorm"],
                    h + "post_attention_layernorm.weight": ours[o + "post_attention_layernorm"],
                    h + "self_attn.q_proj.weight": qkv[:Q], h + "self_attn.k_proj.weight": qkv[Q:Q + KV],
                    h + "self_attn.v_proj.weight": qkv[Q + KV:], h + "self_attn.o_proj.weight": ours[o + "o_proj"],
                    h + "mlp.gate_proj.weight": gu[:F], h + "mlp.up_proj.weight": gu[F:],
                    h + "mlp.down_proj.weight": ours[o + "down_proj"]})
    return out


def main(fmckpt, probe):
    shared = os.environ.get("FM_SHARED_DIR", "")
    tokenizer = os.path.join(shared, "data", "tokenizers", "llama2", "tokenizer.json")
    check(os.path.exists(tokenizer), f"reference tokenizer {tokenizer} exists (FM_SHARED_DIR)")
    tmp = tempfile.mkdtemp(prefix="fmckpt-check-")
    try:
        for tied in (False, True):
            label = f"tied={tied}"
            d = os.path.join(tmp, f"run-{tied}")
            os.makedirs(d)
            cfg = config(tied)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f)
            r = run(probe, "save", d, "--model", os.path.join(d, "config.json"), "--layout", "2,2,1", "--steps", "5",
                    "--tokenizer", tokenizer)
            check(r.returncode == 0, f"{label}: probe wrote a (2,2,ZeRO 1) checkpoint ({r.stderr.strip()})")
            ckpt = os.path.join(d, "checkpoints", "global_step5")

            r = run(fmckpt, "list", d)
            check(r.returncode == 0 and "global_step5" in r.stdout and "complete | 4 files" in r.stdout
                  and "<- latest" in r.stdout, f"{label}: list shows the checkpoint as complete and latest")

            r = run(fmckpt, "inspect", d)
            check(r.returncode == 0, f"{label}: inspect exits 0 ({r.stderr.strip()})")
            check("global_step 5 |" in r.stdout and "pipe 2 | dp 2 | zero stage 1 | world 4" in r.stdout,
                  f"{label}: inspect shows the step and the layout")
            check("layers.3.qkv" in r.stdout and "[128, 64]" in r.stdout, f"{label}: inspect lists tensors with shapes")
            check("checksums: all 4 files verified" in r.stdout, f"{label}: inspect verifies every file")

            r = run(fmckpt, "consolidate", ckpt, os.path.join(d, "all.safetensors"), "--optimizer")
            check(r.returncode == 0, f"{label}: consolidate ({r.stderr.strip()})")
            allt = load_file(os.path.join(d, "all.safetensors"))
            ours = {k: v for k, v in allt.items() if "/" not in k}
            check(set(allt) == set(ours) | {f"{k}/{n}" for k in ("exp_avg", "exp_avg_sq") for n in ours},
                  f"{label}: consolidated parameters and both moments")
            check(ours["layers.0.qkv"].shape == (128, 64) and ours["norm"].shape == (64,),
                  f"{label}: consolidated shapes are ours")
            ref = hf_reference(ours, cfg)

            out32 = os.path.join(d, "hf32")
            r = run(fmckpt, "export-hf", ckpt, out32, "--tokenizer", tokenizer)
            check(r.returncode == 0, f"{label}: export-hf float32 ({r.stderr.strip()})")
            check(os.path.exists(os.path.join(out32, "tokenizer.json")), f"{label}: tokenizer.json copied")
            model, info = AutoModelForCausalLM.from_pretrained(out32, output_loading_info=True, dtype=torch.float32)
            check(not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"],
                  f"{label}: float32 export loads with every key: {info}")
            state = model.state_dict()
            bad = [k for k, v in ref.items() if not np.array_equal(state[k].numpy(), v)]
            check(not bad, f"{label}: float32 tensors equal the consolidated values (differ: {bad[:3]})")
            if tied:
                check(torch.equal(model.lm_head.weight, model.model.embed_tokens.weight), f"{label}: lm_head tied")

            # Logits: transformers on the export against our stages on the checkpoint.
            g = np.random.default_rng(3)
            B, T = 2, 16
            tokens = g.integers(0, cfg["vocab_size"], size=(B, T))
            batch = os.path.join(d, "batch.json")
            with open(batch, "w") as f:
                json.dump({"B": B, "T": T, "tokens": tokens.flatten().tolist()}, f)
            r = run(probe, "logits", ckpt, batch, os.path.join(d, "ours.safetensors"), "0,2,6")
            check(r.returncode == 0, f"{label}: our logits from the checkpoint ({r.stderr.strip()})")
            with torch.no_grad():
                theirs = model(torch.tensor(tokens)).logits.reshape(B * T, -1).numpy()
            mine = load_file(os.path.join(d, "ours.safetensors"))["logits"]
            diff = float(np.abs(mine - theirs).max())
            check(diff < 1e-4, f"{label}: transformers' logits on the export equal ours (max diff {diff:.2e})")

            out16 = os.path.join(d, "hf16")
            r = run(fmckpt, "export-hf", d, out16, "--dtype", "bfloat16", "--max_shard_size", "50KB")
            check(r.returncode == 0, f"{label}: export-hf bfloat16 sharded ({r.stderr.strip()})")
            check(os.path.exists(os.path.join(out16, "model.safetensors.index.json")), f"{label}: bf16 export has an index")
            check(os.path.exists(os.path.join(out16, "tokenizer.json")), f"{label}: the recorded tokenizer is copied")
            model, info = AutoModelForCausalLM.from_pretrained(out16, output_loading_info=True, dtype=torch.bfloat16)
            check(not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"],
                  f"{label}: bfloat16 export loads with every key: {info}")
            state = model.state_dict()
            bad = [k for k, v in ref.items() if not torch.equal(state[k], torch.from_numpy(v).to(torch.bfloat16))]
            check(not bad, f"{label}: bfloat16 tensors equal torch's cast of ours (differ: {bad[:3]})")

        # Bad input: exit 2, naming the file or the flag.
        d = os.path.join(tmp, "run-False")
        ckpt = os.path.join(d, "checkpoints", "global_step5")
        for args, needle, what in (
                (["export-hf", ckpt, os.path.join(tmp, "x"), "--dtype", "float8"], "--dtype", "a bad dtype"),
                (["export-hf", ckpt, os.path.join(tmp, "x"), "--max_shard_size", "5XB"], "--max_shard_size",
                 "a bad size"),
                (["export-hf", ckpt, os.path.join(tmp, "x"), "--dtpye", "float16"], "did you mean '--dtype'",
                 "an unknown flag"),
                (["inspect", os.path.join(tmp, "nope")], os.path.join(tmp, "nope"), "a missing directory"),
                (["frobnicate", ckpt], "unknown command", "an unknown command")):
            r = run(fmckpt, *args)
            check(r.returncode == 2 and needle in r.stderr, f"{what}: exit 2 naming it ({r.returncode}: {r.stderr.strip()})")
        incomplete = os.path.join(d, "checkpoints", "global_step6.tmp-1234")
        os.makedirs(incomplete)
        r = run(fmckpt, "inspect", incomplete)
        check(r.returncode == 2 and "incomplete" in r.stderr, f"an interrupted save: exit 2 ({r.stderr.strip()})")
        shard = os.path.join(ckpt, "shard-pp001-dp0000.safetensors")
        data = bytearray(open(shard, "rb").read())
        data[len(data) // 2] ^= 0x40
        open(shard, "wb").write(bytes(data))
        r = run(fmckpt, "inspect", ckpt)
        check(r.returncode == 2 and f"{shard}: checksum mismatch" in r.stderr and "DAMAGED" in r.stdout,
              f"a flipped byte: inspect exits 2 naming the shard ({r.stderr.strip()})")
        r = run(fmckpt, "export-hf", ckpt, os.path.join(tmp, "y"))
        check(r.returncode == 2 and shard in r.stderr, f"a flipped byte: export-hf exits 2 naming the shard")
        open(shard, "wb").write(bytes(data[: len(data) // 3]))
        r = run(fmckpt, "consolidate", ckpt, os.path.join(tmp, "z.safetensors"))
        check(r.returncode == 2 and shard in r.stderr and "truncated" in r.stderr,
              f"a truncated shard: consolidate exits 2 naming it ({r.stderr.strip()})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
