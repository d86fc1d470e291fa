"""Single-thread encode speed: fmengine's tokenizers against Hugging Face `tokenizers`.

Usage: $FM_PYTHON tests/tokenizer/bench_tokenizers.py TOKENIZER_TOOL [TEXT] [ROUNDS]
(default TEXT: $FM_SHARED_DIR/data/tinyshakespeare.txt). For the LLaMA 2 and LLaMA 3 files, both
sides encode the lines of TEXT (the reference with encode_batch, parallelism off) and TEXT as one
string, without special tokens; the best of ROUNDS alternating rounds is kept. A measurement
only: nothing is asserted.
"""
import os
import re
import subprocess
import sys
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer  # noqa: E402  (after the environment is set)

tool = sys.argv[1]
shared = os.environ.get("FM_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
text_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(shared, "data/tinyshakespeare.txt")
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
with open(text_path, encoding="utf-8") as f:
    text = f.read()
lines = text.split("\n")
mb = len(text.encode("utf-8")) / 1e6

for name in ("llama2", "llama3"):
    path = os.path.join(shared, "data/tokenizers", name, "tokenizer.json")
    ref = Tokenizer.from_file(path)
    ref.encode_batch(lines[:1000], add_special_tokens=False)  # warm-up
    best = {"ref lines": 1e9, "ref whole": 1e9, "ours lines": 1e9, "ours whole": 1e9}
    for _ in range(rounds):
        t0 = time.perf_counter()
        ref.encode_batch(lines, add_special_tokens=False)
        t1 = time.perf_counter()
        ref.encode(text, add_special_tokens=False)
        t2 = time.perf_counter()
        best["ref lines"] = min(best["ref lines"], t1 - t0)
        best["ref whole"] = min(best["ref whole"], t2 - t1)
        out = subprocess.run([tool, "bench", path, text_path, "--repeat", "1"], capture_output=True, text=True,
                             check=True).stdout
        m = re.search(r"per line ([\d.]+) MB/s; whole text ([\d.]+) MB/s", out)
        best["ours lines"] = min(best["ours lines"], mb / float(m.group(1)))
        best["ours whole"] = min(best["ours whole"], mb / float(m.group(2)))
    print(f"{name}: {mb:.2f} MB, {len(lines)} lines, single thread, best of {rounds}")
    for what in ("lines", "whole"):
        r, o = mb / best["ref " + what], mb / best["ours " + what]
        print(f"  {what:5s}  tokenizers {r:7.1f} MB/s   fmengine {o:7.1f} MB/s   x{o / r:.1f}")
