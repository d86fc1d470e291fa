"""Compares the losses of two fmtrain runs from their metrics.jsonl files.

A resumed run appends to metrics.jsonl, and a killed process may leave a cut line, so records are
found by scanning for JSON objects; for each step the last record wins (the re-run after a resume).

usage: metrics_compare.py REFERENCE.jsonl RUN.jsonl [--first N] [--last N] [--rtol X]
  --rtol 0 (default) asks for bit-identical losses (the same decimal text of the double).
"""
import argparse
import json
import sys


def losses(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    dec = json.JSONDecoder()
    out = {}
    at = text.find("{")
    while at >= 0:
        try:
            obj, end = dec.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        if isinstance(obj, dict) and "step" in obj and "loss" in obj:
            out[int(obj["step"])] = obj["loss"]
        at = text.find("{", end)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("reference")
    p.add_argument("run")
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--last", type=int, default=None)
    p.add_argument("--rtol", type=float, default=0.0)
    a = p.parse_args()
    ref, run = losses(a.reference), losses(a.run)
    last = a.last if a.last is not None else max(ref)
    bad = []
    for step in range(a.first, last + 1):
        if step not in ref or step not in run:
            bad.append(f"step {step}: missing ({'reference' if step not in ref else 'run'})")
            continue
        r, x = ref[step], run[step]
        same = r == x if a.rtol == 0 else abs(r - x) <= a.rtol * abs(r)
        if not same:
            bad.append(f"step {step}: {x!r} vs reference {r!r}")
    for b in bad[:10]:
        print("differs: " + b)
    what = "bit-identical" if a.rtol == 0 else f"within {a.rtol:g} relative"
    print(f"steps {a.first}..{last}: {last - a.first + 1 - len(bad)} {what}, {len(bad)} not")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
