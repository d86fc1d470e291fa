"""Training parity of fmtrain with Hugging Face transformers + torch (fp32, CPU).

For each case a random LlamaForCausalLM is saved with save_pretrained; the same fixed batches are
written as an FMTOKENS token file (docs/data.md) with some targets masked (label -100); a
DeepSpeed-style config names the optimizer, schedule, clipping and batch triad. The reference
trains with torch AdamW/Adam (no weight decay on norm weights), DeepSpeed's own LR scheduler
objects (deepspeed.runtime.lr_schedules, stepped after every optimizer step as DeepSpeed's engine
does), torch.nn.utils.clip_grad_norm_ and gradient accumulation with the loss defined as the mean
over all non-ignored targets of the global batch. `fmtrain --init_ckpt DIR --data_path FILE` runs
the same steps. Per-step losses must agree within 1e-4 relative; so must the gradient norms.

usage: hf_train_parity.py FMTRAIN
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from deepspeed.runtime import lr_schedules
from transformers import LlamaConfig, LlamaForCausalLM

TOL = 1e-4
STEPS = 5
T = 16

CASES = [
    # name, model overrides, optimizer, scheduler, (train_batch, micro_batch), clipping
    ("mha-untied-adamw-warmuplr",
     dict(num_attention_heads=4, num_key_value_heads=4),
     dict(type="AdamW", params=dict(lr=2e-3, betas=[0.9, 0.95], eps=1e-8, weight_decay=0.1)),
     dict(type="WarmupLR", params=dict(warmup_min_lr=1e-4, warmup_max_lr=2e-3, warmup_num_steps=3,
                                       warmup_type="linear")),
     (4, 2), 1.0),
    ("gqa-tied-theta500k-adam-l2-cosine",
     dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=500000.0),
     dict(type="Adam", params=dict(lr=1e-3, betas=[0.9, 0.999], eps=1e-6, weight_decay=0.01, adam_w_mode=False)),
     dict(type="WarmupCosineLR", params=dict(total_num_steps=STEPS, warmup_num_steps=2, warmup_min_ratio=0.1,
                                             cos_min_ratio=0.01, warmup_type="log")),
     (6, 3), 0.5),
    ("gqa-llama3-scaling-decaylr",
     dict(num_attention_heads=8, num_key_value_heads=2, head_dim=8, rope_theta=500000.0,
          max_position_embeddings=256,
          rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                            original_max_position_embeddings=8)),
     dict(type="AdamW", params=dict(lr=3e-3, betas=[0.8, 0.99], eps=1e-8, weight_decay=0.0)),
     dict(type="WarmupDecayLR", params=dict(total_num_steps=STEPS + 2, warmup_min_lr=0.0, warmup_max_lr=3e-3,
                                            warmup_num_steps=2)),
     (2, 1), 0.0),
    ("mqa-tied-onecycle",
     dict(num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True),
     dict(type="AdamW", params=dict(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.05)),
     dict(type="OneCycle", params=dict(cycle_min_lr=1e-4, cycle_max_lr=2e-3, cycle_first_step_size=2,
                                       cycle_momentum=True, cycle_min_mom=0.85, cycle_max_mom=0.95)),
     (4, 4), 1.0),
]


def make_model(overrides, seed):
    torch.manual_seed(seed)
    kw = dict(hidden_size=32, intermediate_size=80, num_hidden_layers=2, vocab_size=101,
              max_position_embeddings=128, rms_norm_eps=1e-5, initializer_range=0.05,
              tie_word_embeddings=False, attn_implementation="eager")
    kw.update(overrides)
    rope_theta = kw.pop("rope_theta", 10000.0)
    scaling = kw.pop("rope_scaling", None)
    rope = dict(scaling, rope_theta=rope_theta) if scaling else dict(rope_type="default", rope_theta=rope_theta)
    model = LlamaForCausalLM(LlamaConfig(rope_parameters=rope, **kw)).float()
    model.config._attn_implementation = "eager"
    return model


def write_token_file(path, ids, mask):
    with open(path, "wb") as f:
        f.write(b"FMTOKENS")
        f.write(struct.pack("<IIQ", 1, 1, len(ids)))
        f.write(np.asarray(ids, dtype="<i4").tobytes())
        f.write(np.asarray(mask, dtype="u1").tobytes())


def reference_losses(model, ids, mask, ds, train_batch, micro_batch):
    no_decay = [p for n, p in model.named_parameters() if "norm" in n]
    decay = [p for n, p in model.named_parameters() if "norm" not in n]
    opt_cfg = ds["optimizer"]
    p = opt_cfg["params"]
    groups = [{"params": decay, "weight_decay": p["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    adamw = opt_cfg["type"].lower() == "adamw" or p.get("adam_w_mode", True)
    cls = torch.optim.AdamW if adamw else torch.optim.Adam
    opt = cls(groups, lr=p["lr"], betas=tuple(p["betas"]), eps=p["eps"], foreach=False)
    sched_cfg = ds["scheduler"]
    sched = getattr(lr_schedules, sched_cfg["type"])(opt, **sched_cfg["params"])
    clip = ds["gradient_clipping"]
    losses, norms, lrs = [], [], []
    window = 0
    for _ in range(STEPS):
        rows = []
        for _ in range(train_batch):
            rows.append((ids[window * T: window * T + T + 1], mask[window * T: window * T + T + 1]))
            window += 1
        total_targets = sum(int(m[1:].sum()) for _, m in rows)
        opt.zero_grad(set_to_none=False)
        loss_sum = 0.0
        for start in range(0, train_batch, micro_batch):
            chunk = rows[start:start + micro_batch]
            x = torch.tensor(np.stack([r[0][:-1] for r in chunk]), dtype=torch.long)
            y = torch.tensor(np.stack([np.where(r[1][1:] == 1, r[0][1:], -100) for r in chunk]), dtype=torch.long)
            logits = model(input_ids=x).logits
            token_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                                           ignore_index=-100, reduction="sum")
            (token_loss / total_targets).backward()
            loss_sum += float(token_loss.detach())
        grads = [q.grad for q in model.parameters() if q.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        losses.append(loss_sum / total_targets)
        norms.append(norm)
    return losses, norms, lrs


def main():
    fmtrain = sys.argv[1]
    torch.set_num_threads(1)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, overrides, opt_cfg, sched_cfg, (tb, mb), clip) in enumerate(CASES):
            model = make_model(overrides, seed=7 + index)
            mdir = os.path.join(tmp, name, "model")
            model.save_pretrained(mdir)
            V = model.config.vocab_size
            rng = np.random.default_rng(100 + index)
            n = STEPS * tb * T + 1
            ids = rng.integers(0, V, size=n).astype(np.int32)
            mask = (rng.random(n) > 0.15).astype(np.uint8)
            tok = os.path.join(tmp, name, "batches.fmtok")
            write_token_file(tok, ids, mask)
            ds = dict(train_batch_size=tb, train_micro_batch_size_per_gpu=mb, gradient_clipping=clip,
                      optimizer=opt_cfg, scheduler=sched_cfg, steps_per_print=1)
            ds_path = os.path.join(tmp, name, "ds.json")
            with open(ds_path, "w") as f:
                json.dump(ds, f)
            out = os.path.join(tmp, name, "out")
            cmd = [fmtrain, "--init_ckpt", mdir, "--data_path", tok, "--deepspeed_config", ds_path,
                   "--max_seq_len", str(T), "--train_steps", str(STEPS), "--output_dir", out, "--split", "100,0,0"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                failures.append(f"{name}: fmtrain exited {run.returncode}\n{run.stderr[-3000:]}")
                continue
            ours = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
            ours = [r for r in ours if "loss" in r]
            ref_losses, ref_norms, ref_lrs = reference_losses(model, ids, mask, ds, tb, mb)
            if len(ours) != STEPS:
                failures.append(f"{name}: expected {STEPS} metrics records, got {len(ours)}")
                continue
            for k in range(STEPS):
                for what, a, b, tol in (("loss", ours[k]["loss"], ref_losses[k], TOL),
                                        ("grad_norm", ours[k]["grad_norm"], ref_norms[k], TOL),
                                        ("lr", ours[k]["lr"], ref_lrs[k], 1e-12)):
                    r = abs(a - b) / max(abs(b), 1e-30)
                    status = "ok" if r <= tol else "MISMATCH"
                    print(f"{name} step {k + 1} {what}: fmtrain {a:.8g} transformers {b:.8g} rel {r:.2e} {status}")
                    if r > tol:
                        failures.append(f"{name} step {k + 1} {what}: {a} vs {b} (rel {r:.3e} > {tol})")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        sys.exit(1)
    print(f"all {len(CASES)} cases: per-step losses, gradient norms and lrs match transformers")


if __name__ == "__main__":
    main()
