"""Hugging Face checkpoint import/export against transformers.

Export round trip: random LlamaForCausalLM models (tied and untied) are saved with save_pretrained,
imported and exported again by `hf_probe export` (fp32 single file, fp32 shards, bf16, fp16), and
loaded back with from_pretrained: no missing, unexpected or mismatched keys, the config the same,
and every tensor equal to the original (fp32) or to torch's cast of it (bf16, fp16).

Import errors: a missing tensor, an unexpected tensor, a shape that disagrees with config.json, a
missing shard, a directory without weights, a config with a refused setting: each exit code 2 with
a message naming the file and the tensor (or key).

usage: hf_io_check.py HF_PROBE
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    print(("ok   " if cond else "FAIL ") + what)


def make_model(tied, seed):
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=53, max_position_embeddings=64,
                         tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2,
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=4.0,
                                              low_freq_factor=1.0, high_freq_factor=4.0,
                                              original_max_position_embeddings=32))
    return LlamaForCausalLM(config).float()


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def export_round_trip(probe, tmp):
    for tied in (False, True):
        model = make_model(tied, seed=1 + tied)
        src = os.path.join(tmp, f"src-{tied}")
        model.save_pretrained(src)
        ref = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for dtype, shard, tdt in (("float32", 10**12, torch.float32), ("float32", 20000, torch.float32),
                                  ("bfloat16", 10**12, torch.bfloat16), ("float16", 15000, torch.float16)):
            label = f"tied={tied} {dtype} max_shard={shard}"
            out = os.path.join(tmp, f"out-{tied}-{dtype}-{shard}")
            r = run(probe, "export", src, out, dtype, str(shard))
            check(r.returncode == 0, f"{label}: export ({r.stderr.strip()})")
            if r.returncode:
                continue
            sharded = os.path.exists(os.path.join(out, "model.safetensors.index.json"))
            check(sharded == (shard < 10**6), f"{label}: sharded={sharded}")
            loaded, info = LlamaForCausalLM.from_pretrained(out, output_loading_info=True, dtype=tdt)
            check(not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"],
                  f"{label}: from_pretrained loads every key: {info}")
            c0, c1 = model.config, loaded.config
            same = all(getattr(c0, k) == getattr(c1, k) for k in (
                "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "vocab_size", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
                "bos_token_id", "eos_token_id"))
            check(same and c0.rope_parameters == c1.rope_parameters,
                  f"{label}: config round trip ({c1.rope_parameters})")
            state = loaded.state_dict()
            bad = [k for k, v in ref.items() if not torch.equal(state[k], v.to(tdt))]
            check(not bad, f"{label}: every tensor equals the original cast to {dtype} (differ: {bad[:3]})")
            if tied:
                check(loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr(),
                      f"{label}: lm_head stays tied")


def import_errors(probe, tmp):
    model = make_model(False, seed=5)
    base = os.path.join(tmp, "base")
    model.save_pretrained(base)
    weights = os.path.join(base, "model.safetensors")

    def variant(name):
        d = os.path.join(tmp, name)
        shutil.copytree(base, d)
        return d

    def expect(label, d, *parts):
        r = run(probe, "load", d)
        msg = r.stderr.strip()
        check(r.returncode == 2 and msg.startswith("error: ") and all(p in msg for p in parts),
              f"refuses {label}: exit {r.returncode}: {msg}")

    r = run(probe, "load", base)
    check(r.returncode == 0 and "vocab_size=53" in r.stdout, f"loads the valid checkpoint ({r.stdout.strip()})")

    d = variant("missing")
    t = load_file(weights)
    del t["model.layers.1.mlp.up_proj.weight"]
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    expect("a missing tensor", d, os.path.join(d, "model.safetensors"), "model.layers.1.mlp.up_proj.weight", "missing")

    d = variant("extra")
    t = load_file(weights)
    t["model.layers.0.mlp.extra_proj.weight"] = torch.zeros(2, 2)
    save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    expect("an unexpected tensor", d, os.path.join(d, "model.safetensors"), "model.layers.0.mlp.extra_proj.weight",
           "unexpected")

    d = variant("shape")
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    cfg["intermediate_size"] = 40
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    expect("a shape that disagrees with config.json", d, os.path.join(d, "model.safetensors"), "has shape",
           "expected [")

    d = os.path.join(tmp, "sharded")
    model.save_pretrained(d, max_shard_size="20KB")
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensor, shard = sorted(index["weight_map"].items())[-1]
    os.remove(os.path.join(d, shard))
    expect("a missing shard", d, "model.safetensors.index.json", shard, "does not exist")

    d = os.path.join(tmp, "noweights")
    os.makedirs(d)
    shutil.copy(os.path.join(base, "config.json"), d)
    expect("a directory without weights", d, d, "model.safetensors")

    d = variant("bias")
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    cfg["attention_bias"] = True
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    expect("a refused config setting", d, os.path.join(d, "config.json") + ": attention_bias", "bias")

    d = variant("truncated")
    with open(weights, "rb") as f:
        raw = f.read()
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(raw[:-100])
    expect("a truncated weights file", d, os.path.join(d, "model.safetensors"), "outside the data region")


def main():
    probe = sys.argv[1]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        export_round_trip(probe, tmp)
        import_errors(probe, tmp)
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
