"""Compares our clipping + Adam/AdamW with torch.optim and torch.nn.utils.clip_grad_norm_.

usage: check_adam_reference.py ADAM_DUMP

A layout of tensors (decoder weights, norm weights without decay, a tied replica) is trained for a
few steps with random gradients, in torch (one parameter per tensor; a decay and a no-decay param
group; the replica is left out of the norm but clipped with the same coefficient) and with our
tool, whole (dp=1) and as ZeRO partitions (dp=3, 4). Final parameters and per-step norms must agree.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

TOOL = sys.argv[1]
failures = []

LAYOUT = [  # numel, decay, replica
    (64, 0, 0), (64 * 48, 1, 0), (64 * 32, 1, 0), (64, 0, 0), (64 * 96, 1, 0), (64 * 48, 1, 0),
    (64, 0, 0), (64 * 50, 1, 1),
]


def torch_run(params0, grads, steps, max_norm, adam_w_mode, betas, eps, wd, lrs):
    tensors, offset = [], 0
    for numel, _, _ in LAYOUT:
        tensors.append(torch.nn.Parameter(torch.from_numpy(params0[offset:offset + numel].copy())))
        offset += numel
    decay = [t for t, (_, d, _) in zip(tensors, LAYOUT) if d]
    no_decay = [t for t, (_, d, _) in zip(tensors, LAYOUT) if not d]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    cls = torch.optim.AdamW if adam_w_mode else torch.optim.Adam
    opt = cls(groups, lr=lrs[0], betas=betas, eps=eps, foreach=False)
    counted = [t for t, (_, _, r) in zip(tensors, LAYOUT) if not r]
    replicas = [t for t, (_, _, r) in zip(tensors, LAYOUT) if r]
    norms = []
    for s in range(steps):
        offset = 0
        for t, (numel, _, _) in zip(tensors, LAYOUT):
            t.grad = torch.from_numpy(grads[s, offset:offset + numel].copy())
            offset += numel
        if max_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(counted, max_norm))
            coef = min(1.0, max_norm / (norm + 1e-6))
            for t in replicas:
                t.grad.mul_(coef)
        else:
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.grad) for t in counted])))
        norms.append(norm)
        for g in opt.param_groups:
            g["lr"] = lrs[s]
        opt.step()
    return np.concatenate([t.detach().numpy().ravel() for t in tensors]), norms


def main():
    rng = np.random.default_rng(7)
    n = sum(numel for numel, _, _ in LAYOUT)
    steps = 6
    configs = [
        # max_norm, adam_w_mode, betas, eps, wd, grad scale
        (1.0, 1, (0.9, 0.999), 1e-8, 0.1, 0.05),   # clipping active (norm > 1)
        (1.0, 1, (0.9, 0.95), 1e-8, 0.01, 1e-4),   # clipping inactive
        (0.0, 0, (0.8, 0.99), 1e-6, 0.05, 0.05),   # Adam with L2 decay, clipping off
        (0.5, 0, (0.9, 0.999), 1e-8, 0.0, 0.02),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "layout.txt"), "w") as f:
            for numel, decay, replica in LAYOUT:
                f.write(f"{numel} {decay} {replica}\n")
        for ci, (max_norm, adamw, betas, eps, wd, scale) in enumerate(configs):
            params0 = rng.standard_normal(n).astype(np.float32)
            grads = (rng.standard_normal((steps, n)) * scale).astype(np.float32)
            lrs = [1e-3 * (1 + s) for s in range(steps)]
            params0.tofile(os.path.join(tmp, "params.f32"))
            grads.tofile(os.path.join(tmp, "grads.f32"))
            want, want_norms = torch_run(params0, grads, steps, max_norm, adamw, betas, eps, wd, lrs)
            for dp in (1, 3, 4):
                out = subprocess.run([TOOL, tmp, str(steps), str(dp), repr(max_norm), str(adamw), repr(betas[0]),
                                      repr(betas[1]), repr(eps), repr(wd), ",".join(map(repr, lrs))],
                                     check=True, capture_output=True, text=True).stdout.split()
                norms = [float(x) for x in out]
                got = np.fromfile(os.path.join(tmp, "params_out.f32"), dtype=np.float32)
                diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
                # Allow a few float32 roundings per step: torch forms its scalars in double.
                limit = 1e-6 * np.maximum(1.0, np.abs(want))
                worst = float(np.max(diff / limit))
                norm_err = max(abs(a - b) / max(b, 1e-30) for a, b in zip(norms, want_norms))
                moved = float(np.max(np.abs(want - params0)))
                print(f"config {ci} dp={dp}: max |ours - torch| = {diff.max():.3g} "
                      f"(parameters moved up to {moved:.3g}), norm rel err {norm_err:.2g}")
                if worst > 1.0:
                    failures.append(f"config {ci} dp={dp}: parameters differ by {diff.max():.3g}")
                if norm_err > 1e-5:
                    failures.append(f"config {ci} dp={dp}: norms {norms} vs torch {want_norms}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


main()
