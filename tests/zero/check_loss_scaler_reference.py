"""Compares our fp16 loss scaler with deepspeed.runtime.fp16.loss_scaler.

usage: check_loss_scaler_reference.py LOSS_SCALER_DUMP

For many parameter sets (initial_scale_power, loss_scale_window, hysteresis, consecutive_hysteresis,
min_loss_scale, and static scales) and random overflow patterns, builds the scaler DeepSpeed's ZeRO
optimizer builds (CreateLossScaler with the fp16 config's dynamic_loss_scale_args) and records, after
each update_scale(overflow): the scale, whether the step is skipped (= overflow), the lines its
rank 0 logs, and the exception raised at the minimum scale. Our tool must give the same sequence:
scales equal exactly, messages equal after DeepSpeed's "[Rank R] " and "[deepspeed] " prefixes are
removed.
DeepSpeed asks deepspeed.comm for the rank before logging; no process group exists here, so the
check answers rank 0 (the only rank that logs).
"""
import json
import logging
import random
import re
import subprocess
import sys

import torch
from deepspeed import comm as ds_comm
from deepspeed.runtime.fp16 import loss_scaler as ds_loss_scaler
from deepspeed.utils import logger as ds_logger

TOOL = sys.argv[1]
ds_comm.get_rank = lambda *args, **kwargs: 0

captured = []


class Capture(logging.Handler):
    def emit(self, record):
        captured.append(record.getMessage())


ds_logger.addHandler(Capture())
ds_logger.setLevel(logging.INFO)
for handler in list(ds_logger.handlers):
    if not isinstance(handler, Capture):
        ds_logger.removeHandler(handler)


def strip(message):
    # log_dist (the static scaler's path) puts "[Rank R] " first; logger.info (the dynamic one) does not.
    message = re.sub(r"^\[Rank -?\d+\] ", "", message)
    prefix = "[deepspeed] "
    return message[len(prefix):] if message.startswith(prefix) else message


def deepspeed_run(case):
    loss_scale, power, window, hysteresis, consecutive, min_scale, pattern = case
    args = {
        "init_scale": 2**power,
        "scale_window": window,
        "delayed_shift": hysteresis,
        "consecutive_hysteresis": consecutive,
        "min_scale": min_scale,
    }
    scaler = ds_loss_scaler.CreateLossScaler(dtype=torch.half, static_loss_scale=loss_scale,
                                             dynamic_scaling=loss_scale == 0, dynamic_loss_args=args)
    out = {"scales": [], "skips": [], "messages": [], "error": None, "error_step": -1}
    for i, bit in enumerate(pattern):
        captured.clear()
        try:
            scaler.update_scale(bit == "1")
        except Exception as e:  # DeepSpeed raises a bare Exception at the minimum scale
            out["error"] = str(e)
            out["error_step"] = i
            break
        out["scales"].append(float(scaler.cur_scale))
        out["skips"].append(1 if bit == "1" else 0)
        out["messages"].append([strip(m) for m in captured])
    return out


def cases():
    rng = random.Random(20240617)
    out = []
    # Hand-picked: the defaults, hysteresis 1, a minimum reached and hit again, static scales.
    out.append((0, 16, 1000, 2, False, 1, "1" * 3 + "0" * 2100 + "1"))
    out.append((0, 3, 2, 1, False, 1, "1111"))
    out.append((0, 2, 5, 2, True, 1, "10101111" + "0" * 12 + "1111111"))
    out.append((128.0, 16, 1000, 2, False, 1, "0110"))
    out.append((0.5, 16, 1000, 2, False, 1, "101"))
    for _ in range(300):
        power = rng.choice([0, 1, 2, 4, 8, 16, 24, 32])
        window = rng.choice([1, 2, 3, 5, 10, 50])
        hysteresis = rng.choice([1, 1, 2, 3, 5])
        consecutive = rng.random() < 0.3
        min_scale = rng.choice([1, 1, 2, 4, 0.25, 0.5])
        p = rng.choice([0.02, 0.1, 0.3, 0.6, 0.9])
        length = rng.choice([10, 60, 200, 500])
        pattern = "".join("1" if rng.random() < p else "0" for _ in range(length))
        loss_scale = 0 if rng.random() < 0.9 else rng.choice([1.0, 1024.0, 65536.0])
        out.append((loss_scale, power, window, hysteresis, consecutive, min_scale, pattern))
    return out


def request_line(case):
    loss_scale, power, window, hysteresis, consecutive, min_scale, pattern = case
    return f"{loss_scale!r} {power} {window} {hysteresis} {int(consecutive)} {min_scale!r} {pattern}"


def main():
    all_cases = cases()
    proc = subprocess.run([TOOL], input="\n".join(request_line(c) for c in all_cases) + "\n",
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        sys.exit(f"loss_scaler_dump exited with {proc.returncode}")
    ours_lines = proc.stdout.splitlines()
    if len(ours_lines) != len(all_cases):
        sys.exit(f"expected {len(all_cases)} answers, got {len(ours_lines)}")
    failures = 0
    errors_seen = 0
    steps = 0
    for case, line in zip(all_cases, ours_lines):
        ours = json.loads(line)
        ref = deepspeed_run(case)
        steps += len(ref["scales"])
        errors_seen += ref["error"] is not None
        for key in ("scales", "skips", "messages", "error", "error_step"):
            if ours[key] != ref[key]:
                failures += 1
                if failures <= 10:
                    print(f"MISMATCH in {key} for case {request_line(case)[:120]}")
                    a, b = ours[key], ref[key]
                    if isinstance(a, list) and isinstance(b, list):
                        for i, (x, y) in enumerate(zip(a, b)):
                            if x != y:
                                print(f"  first difference at update {i}: ours {x!r}, DeepSpeed {y!r}")
                                break
                        else:
                            print(f"  lengths differ: ours {len(a)}, DeepSpeed {len(b)}")
                    else:
                        print(f"  ours {a!r}, DeepSpeed {b!r}")
                break
    print(f"{len(all_cases)} cases, {steps} updates, {errors_seen} runs ended at the minimum scale")
    if errors_seen == 0:
        sys.exit("no case reached the minimum scale: the check would not cover that path")
    if failures:
        sys.exit(f"{failures} cases differ from DeepSpeed")
    print("PASS: scales, skips, messages and the minimum-scale error match DeepSpeed's DynamicLossScaler")


if __name__ == "__main__":
    main()
