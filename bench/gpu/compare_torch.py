"""GPU comparison against PyTorch and Hugging Face transformers, on the machine bench_cuda_ops ran on.

usage: compare_torch.py --config configs/models/tinyllama-1.1b.json [--seq 2048]
                        [--ours-ops ops.jsonl] [--ours-metrics metrics.jsonl] [--json OUT.json]
                        [--no-compile] [--steps 10] [--max-batch 32]

1. The bf16 matrix rate this GPU reaches (8192^3 products on random data): the MFU denominator
   beside the 989 TFLOP/s dense bf16 figure of the H100/H200 SXM datasheet.
2. torch's scaled_dot_product_attention on the flash backend, bf16, causal, forward and
   forward+backward, at the attention shapes bench_cuda_ops times; our numbers beside them when
   --ours-ops gives bench_cuda_ops' --json output. FLOPs counted as FlashAttention does (causal
   half; backward 2.5 x forward).
3. A training step (forward, backward, AdamW) of transformers' LlamaForCausalLM built from the
   config: bf16 weights, sdpa attention, sequence --seq, the largest micro-batch (from --max-batch
   down) that fits, eager and with torch.compile. Tokens/s and MFU with PaLM's count of
   6N + 12*L*d*T FLOPs per token (N = matmul weights including the LM head).
   Our side of this number needs fmtrain's GPU path: pass the metrics.jsonl of an fmtrain run on
   this GPU with --ours-metrics (median tokens_per_s after the first 3 records). Without it the
   report says our side is missing.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DATASHEET_BF16_TFLOPS = 989.0  # H100/H200 SXM dense bf16


def log(msg):
    print(msg, flush=True)


def cuda_time_ms(fn, warmup=3, iters=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def matmul_rate():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = cuda_time_ms(lambda: a @ b, warmup=3, iters=10)
    return 2 * n**3 / (ms * 1e-3) / 1e12


def attention_shapes(batch, seq):
    # (B, T, H, Hkv, D) as bench_cuda_ops: TinyLlama's, and a Llama-3-8B-like head layout.
    return [(batch, seq, 32, 4, 64), (max(1, batch // 2), seq, 32, 8, 128)]


def shape_key(b, t, h, hkv, d):
    return f"B={b} T={t} H={h} Hkv={hkv} D={d} bf16"


def sdpa(batch, seq):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    rows = []
    for b, t, h, hkv, d in attention_shapes(batch, seq):
        q = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(b, hkv, t, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(b, hkv, t, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        grad = torch.randn(b, h, t, d, device="cuda", dtype=torch.bfloat16)
        group = h // hkv

        def forward():
            kk = k.repeat_interleave(group, dim=1) if group > 1 else k
            vv = v.repeat_interleave(group, dim=1) if group > 1 else v
            return F.scaled_dot_product_attention(q, kk, vv, is_causal=True)

        fwd_flops = 4 * b * h * t * t * d / 2
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            with torch.no_grad():
                fwd_ms = cuda_time_ms(forward)

            def step():
                q.grad = k.grad = v.grad = None
                forward().backward(grad)

            both_ms = cuda_time_ms(step)
        rows.append({"shape": shape_key(b, t, h, hkv, d), "fwd_ms": fwd_ms, "fwd_tflops": fwd_flops / fwd_ms / 1e9,
                     "fwd_bwd_ms": both_ms, "fwd_bwd_tflops": 3.5 * fwd_flops / both_ms / 1e9})
        del q, k, v, grad
        torch.cuda.empty_cache()
    return rows


def flops_per_token(cfg, seq):
    d = cfg["hidden_size"]
    layers = cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or d // heads
    kv = cfg.get("num_key_value_heads", heads) * head_dim
    q = heads * head_dim
    ff = cfg["intermediate_size"]
    per_layer = d * (q + 2 * kv) + q * d + 3 * d * ff
    n_matmul = layers * per_layer + cfg["vocab_size"] * d
    return 6 * n_matmul + 12 * layers * q * seq, n_matmul


def hf_step_rate(config_path, seq, batches, steps, compile_model):
    """Tokens/s of the first micro-batch in `batches` (largest first) whose step fits in memory."""
    import transformers

    cfg = transformers.LlamaConfig.from_json_file(config_path)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    result = None
    for batch in batches:
        if compile_model:
            torch._dynamo.reset()
        runner = torch.compile(model, dynamic=False) if compile_model else model
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda")

        def step():
            loss = runner(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        try:
            torch.cuda.reset_peak_memory_stats()
            for _ in range(3):
                step()
            torch.cuda.synchronize()
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                step()
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            result = {"micro_batch": batch, "seq": seq, "step_s": statistics.median(times),
                      "tokens_per_s": batch * seq / statistics.median(times),
                      "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
        except torch.cuda.OutOfMemoryError:
            log(f"  micro-batch {batch}: out of memory, trying smaller")
        opt.zero_grad(set_to_none=True)
        del runner, ids
        torch.cuda.empty_cache()
        if result:
            break
    del model, opt
    torch.cuda.empty_cache()
    return result


def ours_from_metrics(path):
    rates = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if "tokens_per_s" in rec:
                rates.append(float(rec["tokens_per_s"]))
    if len(rates) <= 3:
        sys.exit(f"{path}: fewer than 4 train records with tokens_per_s")
    return statistics.median(rates[3:])


def ours_ops(path):
    out = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            out[(rec["op"], rec["shape"])] = rec
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--attn-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--ours-ops")
    ap.add_argument("--ours-metrics")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP: no GPU (torch.cuda.is_available() is false)")
        sys.exit(77)

    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    log(f"device: {report['device']}, torch {torch.__version__}")
    peak = matmul_rate()
    report["bf16_matmul_tflops"] = peak
    log(f"bf16 matmul 8192^3: {peak:.1f} TFLOP/s measured (datasheet {DATASHEET_BF16_TFLOPS:.0f})")

    log("\nattention, bf16, causal (TFLOP/s, FlashAttention's FLOP count)")
    ops = ours_ops(args.ours_ops) if args.ours_ops else {}
    report["attention"] = sdpa(args.attn_batch, args.seq)
    log(f"  {'shape':40s} {'torch fwd':>10s} {'ours fwd':>10s} {'torch f+b':>10s} {'ours f+b':>10s}")
    for row in report["attention"]:
        ours_f = ops.get(("attention_forward", row["shape"]), {}).get("tflops")
        ours_fb = ops.get(("attention_fwd+bwd", row["shape"]), {}).get("tflops")
        row["ours_fwd_tflops"], row["ours_fwd_bwd_tflops"] = ours_f, ours_fb
        fmt = lambda x: f"{x:10.1f}" if x is not None else f"{'missing':>10s}"
        log(f"  {row['shape']:40s} {fmt(row['fwd_tflops'])} {fmt(ours_f)} {fmt(row['fwd_bwd_tflops'])} {fmt(ours_fb)}")
    if not ops:
        log("  ours: missing (pass --ours-ops with bench_cuda_ops --json output)")

    with open(args.config) as f:
        cfg = json.load(f)
    fpt, n_matmul = flops_per_token(cfg, args.seq)
    report["flops_per_token"] = fpt
    report["matmul_params"] = n_matmul
    log(f"\nwhole model: {args.config}, sequence {args.seq}: {n_matmul / 1e9:.3f}B matmul weights, "
        f"{fpt / 1e9:.2f} GFLOP per token (6N + 12*L*d*T)")

    def mfu(tps):
        return tps * fpt / (peak * 1e12), tps * fpt / (DATASHEET_BF16_TFLOPS * 1e12)

    report["transformers"] = {}
    batches = [b for b in (64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if b <= args.max_batch]
    for compiled in ([False] if args.no_compile else [False, True]):
        name = "transformers + torch.compile" if compiled else "transformers (eager)"
        log(f"  {name}: searching the largest micro-batch ...")
        r = hf_step_rate(args.config, args.seq, batches, args.steps, compiled)
        if r is not None and not compiled:
            batches = [b for b in batches if b <= r["micro_batch"]]  # compile starts where eager fitted
        if r is None:
            log(f"  {name}: no micro-batch fits")
            continue
        r["mfu_measured"], r["mfu_datasheet"] = mfu(r["tokens_per_s"])
        report["transformers"]["compile" if compiled else "eager"] = r
        log(f"  {name}: micro-batch {r['micro_batch']}, {r['tokens_per_s']:.0f} tokens/s, "
            f"MFU {100 * r['mfu_measured']:.1f}% of measured / {100 * r['mfu_datasheet']:.1f}% of 989 TF, "
            f"peak memory {r['peak_gib']:.1f} GiB")

    if args.ours_metrics:
        tps = ours_from_metrics(args.ours_metrics)
        m, d = mfu(tps)
        report["ours"] = {"tokens_per_s": tps, "mfu_measured": m, "mfu_datasheet": d}
        log(f"  fmengine: {tps:.0f} tokens/s, MFU {100 * m:.1f}% of measured / {100 * d:.1f}% of 989 TF")
    else:
        report["ours"] = None
        log("  fmengine: MISSING - fmtrain has no GPU training path yet; run it on this GPU and pass its "
            "metrics.jsonl with --ours-metrics")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
