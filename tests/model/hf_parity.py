"""Parity of fmengine's LLaMA stage with Hugging Face transformers (fp32, eager attention).

For several random LlamaForCausalLM models (multi-head and grouped-query attention, tied and
untied embeddings, rope_theta 10000 and 500000, llama3 rope scaling, a sharded checkpoint) this
saves the model with save_pretrained, computes logits, the mean loss over non-ignored targets and
every parameter gradient with torch, runs `hf_probe run` on the same directory and batch (also split
into pipeline stages), and compares: logits, loss and each gradient tensor within 1e-4 relative
(norm-wise per tensor).

usage: hf_parity.py HF_PROBE
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

TOL = 1e-4

CASES = [
    # name, config overrides, batch (B, T), stage cuts for the probe, save_pretrained shard size
    ("mha-untied", dict(num_attention_heads=4, num_key_value_heads=4), (2, 12), [None, "0,2,4"], None),
    ("gqa-tied-theta500k", dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                rope_theta=500000.0), (2, 12), [None, "0,1,4", "0,3,4"], None),
    # head_dim 8 at theta 500000 has wavelengths 6.3, 167, 4443 and 118k positions: with an original
    # context of 256 they fall in all three llama3 regimes (kept, smoothed, divided by the factor).
    ("gqa8-llama3-scaling", dict(num_attention_heads=8, num_key_value_heads=2, head_dim=8,
                                 rope_theta=500000.0, max_position_embeddings=1024,
                                 rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                   high_freq_factor=4.0, original_max_position_embeddings=256)),
     (1, 40), [None], None),
    ("mqa-untied-sharded", dict(num_attention_heads=4, num_key_value_heads=1), (3, 7), [None, "0,2,3,4"],
     "30KB"),
]


def make_model(overrides, seed):
    torch.manual_seed(seed)
    kw = dict(hidden_size=32, intermediate_size=72, num_hidden_layers=2, vocab_size=97,
              max_position_embeddings=128, rms_norm_eps=1e-5, initializer_range=0.05,
              tie_word_embeddings=False, attn_implementation="eager")
    kw.update(overrides)
    rope_theta = kw.pop("rope_theta", 10000.0)
    scaling = kw.pop("rope_scaling", None)
    rope = dict(rope_type="default", rope_theta=rope_theta)
    if scaling:
        rope = dict(scaling, rope_theta=rope_theta)
    config = LlamaConfig(rope_parameters=rope, **kw)
    model = LlamaForCausalLM(config).float()
    model.config._attn_implementation = "eager"
    # Norm weights away from 1 so their gradients and the norms' math are exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def rel(a, b):
    return float((a - b).norm() / max(b.norm(), 1e-30))


def main():
    probe = sys.argv[1]
    torch.set_num_threads(1)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, overrides, (B, T), cut_list, shard) in enumerate(CASES):
            model = make_model(overrides, seed=100 + index)
            mdir = os.path.join(tmp, name)
            if shard:
                model.save_pretrained(mdir, max_shard_size=shard)
                assert os.path.exists(os.path.join(mdir, "model.safetensors.index.json")), "expected shards"
            else:
                model.save_pretrained(mdir)
            V = model.config.vocab_size
            g = torch.Generator().manual_seed(7 + index)
            tokens = torch.randint(0, V, (B, T), generator=g)
            targets = torch.randint(0, V, (B, T), generator=g)
            targets[torch.rand(B, T, generator=g) < 0.25] = -100
            targets[0, 0] = -100

            model.zero_grad()
            logits = model(input_ids=tokens).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                                     ignore_index=-100, reduction="mean")
            loss.backward()
            loss = loss.item()
            ref_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}

            batch = os.path.join(tmp, name + ".batch.json")
            with open(batch, "w") as f:
                json.dump(dict(B=B, T=T, tokens=tokens.flatten().tolist(), targets=targets.flatten().tolist()), f)
            for cuts in cut_list:
                label = f"{name} cuts={cuts or 'whole'}"
                out = os.path.join(tmp, name + ".out.safetensors")
                cmd = [probe, "run", mdir, batch, out] + ([cuts] if cuts else [])
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    failures.append(f"{label}: probe exited {res.returncode}: {res.stderr.strip()}")
                    continue
                ours = load_file(out)
                checks = [("logits", rel(ours["logits"], logits.detach().reshape(-1, V))),
                          ("loss", abs(float(ours["loss"][0]) - loss) / abs(loss))]
                if set(ours) - {"logits", "loss"} != set(ref_grads):
                    failures.append(f"{label}: gradient names differ: "
                                    f"{sorted(set(ours) ^ set(ref_grads) - {'logits', 'loss'})}")
                for n, ref in ref_grads.items():
                    if n in ours:
                        checks.append((n, rel(ours[n], ref)))
                worst = max(checks, key=lambda c: c[1])
                print(f"{label}: loss {loss:.6f}, worst relative difference {worst[1]:.2e} ({worst[0]})")
                failures += [f"{label}: {n} differs by {r:.2e} relative" for n, r in checks if not r < TOL]
    if failures:
        print("\n".join(["FAIL"] + failures))
        sys.exit(1)
    print("OK: logits, loss and gradients match transformers within", TOL)


if __name__ == "__main__":
    main()
