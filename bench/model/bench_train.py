"""Training throughput of fmtrain against Hugging Face transformers + torch on the same CPU.

For each model (the tiny quickstart model and a ~20M-parameter one) both sides train the same
config (fp32, AdamW, clipping, micro-batch B x T, one process) and report the median tokens/s of
forward + backward + optimizer step after warm-up, and the peak resident memory of the process.
Runs alternate between the two sides (rounds) so machine noise hits both alike; torch is run
with 1 and 2 threads and its better figure is the peer. Prints a JSON line per model and a
markdown table for docs/PERFORMANCE.md.

usage: bench_train.py FMTRAIN [--rounds 3] [--steps 12]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = [("tiny", os.path.join(ROOT, "configs", "models", "tiny.json"), 8, 128),
          ("llama-20m", os.path.join(HERE, "llama-20m.json"), 8, 256)]


def run_fmtrain(fmtrain, model, B, T, steps, tmp, threads_note):
    ds = os.path.join(tmp, "ds.json")
    json.dump({"train_batch_size": B, "train_micro_batch_size_per_gpu": B, "gradient_clipping": 1.0,
               "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "weight_decay": 0.1}}}, open(ds, "w"))
    out = tempfile.mkdtemp(dir=tmp)
    p = subprocess.Popen([fmtrain, "--model_config", model, "--deepspeed_config", ds, "--max_seq_len", str(T),
                          "--train_steps", str(steps), "--output_dir", out], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"fmtrain failed: {p.stderr.read().decode()[-2000:]}")
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"loss"' in l]
    tps = statistics.median(r["tokens_per_s"] for r in rows[3:])
    return tps, ru.ru_maxrss / 1024.0


def run_torch(python, model, B, T, steps, threads):
    r = subprocess.run([python, os.path.join(HERE, "torch_train_bench.py"), model, "--batch", str(B), "--seq", str(T),
                        "--steps", str(steps - 3), "--warmup", "3", "--threads", str(threads)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"torch bench failed: {r.stderr[-2000:]}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    return d["tokens_per_s"], d["peak_rss_mib"], d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fmtrain")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--python", default=os.environ.get("FM_PYTHON", sys.executable))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fm_bench_")
    results = []
    for name, model, B, T in MODELS:
        ours, ours_rss, torch1, torch2, trss, meta = [], [], [], [], [], None
        for _ in range(args.rounds):
            tps, rss = run_fmtrain(args.fmtrain, model, B, T, args.steps, tmp, "")
            ours.append(tps), ours_rss.append(rss)
            for threads, acc in ((1, torch1), (2, torch2)):
                t, r, meta = run_torch(args.python, model, B, T, args.steps, threads)
                acc.append(t), trss.append(r)
        res = {"model": name, "params": meta["params"], "batch": B, "seq": T, "cores": os.cpu_count(),
               "fmtrain_tokens_per_s": round(statistics.median(ours)),
               "torch_1thread_tokens_per_s": round(statistics.median(torch1)),
               "torch_2threads_tokens_per_s": round(statistics.median(torch2)),
               "fmtrain_peak_rss_mib": round(max(ours_rss), 1), "torch_peak_rss_mib": round(max(trss), 1),
               "torch": meta["torch"], "transformers": meta["transformers"], "attn": meta["attn"]}
        best = max(res["torch_1thread_tokens_per_s"], res["torch_2threads_tokens_per_s"])
        res["ratio_vs_best_torch"] = round(res["fmtrain_tokens_per_s"] / best, 2)
        results.append(res)
        print(json.dumps(res), flush=True)
    print()
    print("| model | params | B x T | fmtrain tokens/s | torch 1 thread | torch 2 threads | ratio | fmtrain peak RSS | torch peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['batch']} x {r['seq']} | {r['fmtrain_tokens_per_s']} | "
              f"{r['torch_1thread_tokens_per_s']} | {r['torch_2threads_tokens_per_s']} | {r['ratio_vs_best_torch']}x | "
              f"{r['fmtrain_peak_rss_mib']} MiB | {r['torch_peak_rss_mib']} MiB |")
    print(f"\nmachine: {platform.node()} {os.cpu_count()} cores, {platform.processor() or platform.machine()}")


if __name__ == "__main__":
    main()
