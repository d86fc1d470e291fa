"""ZeRO shrinks what each rank holds, as the memory report at start shows (bytes measured from
the rank's allocations): at data = 4 the optimizer state per rank is within 5% of a quarter of
the data = 1 figure with ZeRO 1 and 2, and with ZeRO 2 so are the gradients (the owned partition
plus one reduction bucket)."""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from common import ds_config, fail, mpirun, write_json  # noqa: E402

ROW = re.compile(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def report(tmp, name, np, zero):
    ds = write_json(os.path.join(tmp, name + ".json"), ds_config(zero_stage=zero, bucket=5000))
    r = mpirun(np, ["--deepspeed_config", ds, "--train_steps", "1", "--max_seq_len", "32",
                    "--output_dir", os.path.join(tmp, name)])
    if r.returncode != 0:
        fail(f"{name}: exit {r.returncode}\n{r.stderr[-2000:]}")
    text = r.stdout
    start = text.index("memory per rank")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        m = ROW.match(line)
        if not m:
            break
        rank, stage, dp, params, grads, optim, acts, ws = map(int, m.groups())
        rows[rank] = dict(params=params, grads=grads, optimizer_state=optim)
    if len(rows) != np:
        fail(f"{name}: expected {np} rows in the memory report:\n{text[start:start + 2000]}")
    print(f"{name}: " + ", ".join(f"rank {r}: {v}" for r, v in sorted(rows.items())))
    return rows


def main():
    tmp = tempfile.mkdtemp(prefix="fm_mem_")
    base = report(tmp, "dp1", 1, 0)[0]
    failures = []
    for zero, kinds in ((1, ["optimizer_state"]), (2, ["optimizer_state", "grads"])):
        rows = report(tmp, f"dp4-zero{zero}", 4, zero)
        for kind in kinds:
            want = base[kind] / 4
            for rank, v in rows.items():
                rel = abs(v[kind] - want) / want
                print(f"  zero {zero} rank {rank} {kind}: {v[kind]} bytes vs a quarter of dp=1 {want:.0f} ({rel:.2%})")
                if rel > 0.05:
                    failures.append(f"zero {zero} rank {rank} {kind}: {v[kind]} not within 5% of {want:.0f}")
    if failures:
        fail("\n".join(failures))
    print("ZeRO 1/2 at data = 4: optimizer state (and ZeRO-2 gradients) per rank within 5% of a quarter")


if __name__ == "__main__":
    main()
