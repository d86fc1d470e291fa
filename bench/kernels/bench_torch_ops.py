"""The ops of bench_cpu_ops, timed in PyTorch eager mode on the same shapes, for comparison.

usage: $FM_PYTHON bench_torch_ops.py [--threads N] [--repeats R] [B T C H Hkv F V]
Forward+backward pairs are timed together where torch only exposes them that way (autograd);
the C++ bench prints them separately, so compare sums.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def median_ms(repeats, fn):
    """(wall ms, process CPU ms) of the call with the median wall time."""
    fn()
    runs = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append(((time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3))
    runs.sort()
    return runs[len(runs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("dims", type=int, nargs="*", default=[8, 256, 256, 4, 2, 704, 32000])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    B, T, C, H, Hkv, Fd, V = a.dims
    D = C // H
    N = B * T
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} B={B} T={T} C={C} H={H} Hkv={Hkv} "
          f"F={Fd} V={V}")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, generator=g)
    w = torch.rand(C, generator=g) + 0.5

    def rmsnorm(x):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + 1e-5))

    rows = []
    xr = x.clone().requires_grad_()
    rows.append(("rmsnorm fwd+bwd", median_ms(a.repeats, lambda: rmsnorm(xr).sum().backward())))
    W = (H + 2 * Hkv) * D
    wqkv = torch.randn(W, C, generator=g) * 0.05
    rows.append(("linear qkv fwd", median_ms(a.repeats, lambda: F.linear(x, wqkv))))

    q = torch.randn(B, H, T, D, generator=g, requires_grad=True)
    k = torch.randn(B, Hkv, T, D, generator=g, requires_grad=True)
    v = torch.randn(B, Hkv, T, D, generator=g, requires_grad=True)
    do = torch.randn(B, H, T, D, generator=g)
    with torch.no_grad():
        rows.append(("sdpa causal GQA fwd", median_ms(
            a.repeats, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))))

    def attn_fb():
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        o.backward(do)

    rows.append(("sdpa causal GQA fwd+bwd", median_ms(a.repeats, attn_fb)))

    gu = (torch.randn(N, 2 * Fd, generator=g) * 3).requires_grad_()
    dact = torch.randn(N, Fd, generator=g)

    def swiglu_fb():
        gate, up = gu.chunk(2, dim=-1)
        (F.silu(gate) * up).backward(dact)

    rows.append(("swiglu fwd+bwd", median_ms(a.repeats, swiglu_fb)))

    logits = torch.randn(N, V, generator=g).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=g)
    rows.append(("cross_entropy fwd+bwd", median_ms(max(3, a.repeats // 4),
                                                    lambda: F.cross_entropy(logits, targets).backward())))
    wout = torch.randn(V, C, generator=g) * 0.05
    rows.append(("linear lm head fwd", median_ms(max(3, a.repeats // 4), lambda: F.linear(x, wout))))

    P = W * C + H * D * C + 3 * Fd * C + 2 * C
    p = torch.nn.Parameter(torch.randn(P, generator=g))
    p.grad = torch.randn(P, generator=g)
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.1)
    rows.append((f"AdamW step ({P} params)", median_ms(a.repeats, opt.step)))
    print(f"{'op':34s} {'wall ms':>9s} {'cpu ms':>9s}")
    for name, (wall, cpu) in rows:
        print(f"{name:34s} {wall:9.3f} {cpu:9.3f}")


if __name__ == "__main__":
    main()
