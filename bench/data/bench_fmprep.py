"""fmprep throughput against Hugging Face tokenizers' batch encoding, on the same corpus.

The corpus is tinyshakespeare, one JSONL document per line, repeated to --mb megabytes of text.
For each tokenizer (LLaMA 2, LLaMA 3) it times, best of --repeat runs:
  fmprep    --threads N: read JSONL, tokenize (+ eos), write the shard; the time fmprep reports
            for that work (tokenizer loading excluded), plus the process's wall time for reference
  tokenizers encode_batch(texts, add_special_tokens=True) with RAYON_NUM_THREADS=N, on the texts
            already in memory (reading and JSON parsing excluded)
MB/s are of document text (UTF-8 bytes of the "text" values), the same figure for both.

usage: FM_PYTHON=$(scripts/test_venv.sh); $FM_PYTHON bench/data/bench_fmprep.py \
           [--fmprep build/data/fmprep] [--threads 2] [--mb 8] [--repeat 3]
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("FM_SHARED_DIR", os.path.join(ROOT, "..", "shared"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fmprep", default=os.path.join(ROOT, "build", "data", "fmprep"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mb", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    # The Rayon pool of `tokenizers` reads these once, at first use.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    from tokenizers import Tokenizer

    lines = [l for l in open(os.path.join(SHARED, "data", "tinyshakespeare.txt"), encoding="utf-8").read().split("\n") if l]
    texts, size = [], 0
    while size < args.mb * 1e6:
        for l in lines:
            texts.append(l)
            size += len(l.encode("utf-8"))
            if size >= args.mb * 1e6:
                break
    text_mb = size / 1e6

    with tempfile.TemporaryDirectory(prefix="fm-bench-data-") as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        with open(corpus, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}) + "\n")
        jsonl_mb = os.path.getsize(corpus) / 1e6
        print(f"corpus: {len(texts)} documents, {text_mb:.2f} MB of text ({jsonl_mb:.2f} MB of JSONL); "
              f"threads {args.threads}; best of {args.repeat}")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, load average {load}; "
              f"{time.strftime('%Y-%m-%d')}")
        print(f"{'tokenizer':<10} {'fmprep MB/s':>12} {'(wall s)':>9} {'tokenizers MB/s':>16} {'ratio':>7}")
        for name in ["llama2", "llama3"]:
            tok_dir = os.path.join(SHARED, "data", "tokenizers", name)
            best_fm, best_wall = float("inf"), float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                out = subprocess.run([args.fmprep, "--quiet", "--threads", str(args.threads), "--tokenizer", tok_dir,
                                      "--output", os.path.join(tmp, name), corpus],
                                     check=True, capture_output=True, text=True).stdout
                best_wall = min(best_wall, time.perf_counter() - t0)
                seconds = float(re.search(r"in ([0-9.]+) s", out).group(1))
                best_fm = min(best_fm, seconds)
            hf = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
            hf.encode_batch(texts[:1000], add_special_tokens=True)  # start the thread pool
            best_hf = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                hf.encode_batch(texts, add_special_tokens=True)
                best_hf = min(best_hf, time.perf_counter() - t0)
            fm_rate, hf_rate = text_mb / best_fm, text_mb / best_hf
            print(f"{name:<10} {fm_rate:>12.2f} {best_wall:>9.2f} {hf_rate:>16.2f} {fm_rate / hf_rate:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
