"""Compares our learning-rate schedules with deepspeed.runtime.lr_schedules.

usage: check_lr_schedule_reference.py LR_SCHEDULE_DUMP

For many parameter sets of every schedule type, builds DeepSpeed's scheduler over a torch Adam
optimizer and records the lr (and, for OneCycle with cycle_momentum, the betas) after the
constructor and after each of STEPS step() calls; our tool prints the same sequence. Values must
agree within 1e-12 relative. Parameter sets DeepSpeed refuses must be refused by us too.
"""
import logging
import random
import subprocess
import sys

logging.disable(logging.WARNING)

import torch  # noqa: E402
from deepspeed.runtime import lr_schedules  # noqa: E402

TOOL = sys.argv[1]
STEPS = 300
REL_TOL = 1e-12
failures = []


def deepspeed_values(kind, base_lr, params):
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([weight], lr=base_lr)
    cls = getattr(lr_schedules, kind)
    try:
        sched = cls(opt, **params)
    except ValueError:
        return None
    cycle_betas = kind == "OneCycle" and params.get("cycle_momentum", True)

    def now():
        group = opt.param_groups[0]
        lr = float(group["lr"])
        return (lr, *map(float, group["betas"])) if cycle_betas else (lr,)

    values = [now()]
    for _ in range(STEPS):
        sched.step()
        values.append(now())
    return values


def request_text(kind, base_lr, params):
    parts = [kind, str(STEPS), repr(base_lr)]
    for key, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def close(a, b):
    return a == b or abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def cases():
    rng = random.Random(20240611)
    out = []
    # The worked example: lr 0.0 after construction, then 0.0, 2e-4, 4e-4, ...
    out.append(("WarmupLR", 1e-3, dict(warmup_min_lr=0.0, warmup_max_lr=1e-3, warmup_num_steps=5,
                                       warmup_type="linear")))
    for steps in (1, 2, 3, 5, 10, 100, 299, 1000):
        for wtype in ("log", "linear"):
            out.append(("WarmupLR", 1e-3, dict(warmup_min_lr=rng.choice([0.0, 1e-5, 3e-4]),
                                               warmup_max_lr=rng.choice([1e-3, 6e-4, 2.5e-2]),
                                               warmup_num_steps=steps, warmup_type=wtype)))
    for total, warm in ((100, 10), (10, 10), (11, 10), (5, 10), (300, 1), (250, 2), (50, 49), (1, 1),
                        (0, 3), (1000, 100), (120, 37)):
        for wtype in ("log", "linear"):
            out.append(("WarmupDecayLR", 1e-3, dict(total_num_steps=total, warmup_min_lr=rng.uniform(0, 1e-4),
                                                    warmup_max_lr=rng.uniform(1e-4, 1e-2),
                                                    warmup_num_steps=warm, warmup_type=wtype)))
    for total, warm in ((100, 10), (10, 10), (300, 1), (200, 2), (5, 10), (150, 149), (1000, 25), (2, 1)):
        for wtype in ("log", "linear"):
            out.append(("WarmupCosineLR", rng.choice([1e-3, 3e-4, 0.1]),
                        dict(total_num_steps=total, warmup_min_ratio=rng.choice([0.0, 0.1, 0.5]),
                             warmup_num_steps=warm, cos_min_ratio=rng.choice([0.0, 1e-4, 0.1]),
                             warmup_type=wtype)))
    for _ in range(40):
        params = dict(cycle_min_lr=rng.uniform(1e-6, 1e-4), cycle_max_lr=rng.uniform(1e-4, 1e-2),
                      cycle_first_step_size=rng.choice([1, 2, 7, 50, 100, 400]))
        if rng.random() < 0.6:
            params["cycle_second_step_size"] = rng.choice([0, 1, 5, 33, 120])
        if rng.random() < 0.4:
            params["cycle_first_stair_count"] = rng.choice([1, 3, 4])
            if rng.random() < 0.5:
                params["cycle_second_stair_count"] = rng.choice([0, 2, 5])
        if rng.random() < 0.6:
            params["decay_step_size"] = rng.choice([0, 1, 10, 25])
            params["decay_lr_rate"] = rng.choice([0.0, 0.001, 0.5])
            params["decay_mom_rate"] = rng.choice([0.0, 0.001, 0.3])
        params["cycle_momentum"] = rng.random() < 0.7
        if rng.random() < 0.5:
            params["cycle_min_mom"] = rng.choice([0.8, 0.85])
            params["cycle_max_mom"] = rng.choice([0.9, 0.95, 0.99])
        out.append(("OneCycle", 1e-3, params))
    for size in (1, 3, 10, 100, 2000):
        for stair in (False, True):
            out.append(("LRRangeTest", 1e-3, dict(lr_range_test_min_lr=rng.choice([1e-5, 1e-3]),
                                                  lr_range_test_step_size=size,
                                                  lr_range_test_step_rate=rng.choice([0.5, 1.0, 3.0]),
                                                  lr_range_test_staircase=stair)))
    # Refused by DeepSpeed 0.19.8 (ValueError); we must refuse them as well.
    out.append(("WarmupLR", 1e-3, dict(warmup_num_steps=0)))
    out.append(("WarmupDecayLR", 1e-3, dict(total_num_steps=100, warmup_num_steps=0)))
    out.append(("WarmupCosineLR", 1e-3, dict(total_num_steps=100, warmup_num_steps=-3)))
    out.append(("OneCycle", 1e-3, dict(cycle_min_lr=1e-4, cycle_max_lr=1e-3, cycle_first_step_size=0)))
    out.append(("OneCycle", 1e-3, dict(cycle_min_lr=1e-4, cycle_max_lr=1e-3, cycle_second_step_size=-1)))
    out.append(("LRRangeTest", 1e-3, dict(lr_range_test_step_size=0)))
    return out


def parse_ours(line):
    return [tuple(float(x) for x in item.split("/")) for item in line.split(" ")]


def main():
    all_cases = cases()
    requests = [request_text(k, lr, p) for k, lr, p in all_cases]
    result = subprocess.run([TOOL], input="\n".join(requests) + "\n", capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr)
        sys.exit(1)
    answers = result.stdout.splitlines()
    if len(answers) != len(requests):
        print(f"FAIL: {len(answers)} answers for {len(requests)} requests")
        sys.exit(1)
    compared = exact = refused = 0
    for (kind, base_lr, params), request, answer in zip(all_cases, requests, answers):
        theirs = deepspeed_values(kind, base_lr, params)
        if theirs is None:
            refused += 1
            if not answer.startswith("error: scheduler.params."):
                failures.append(f"DeepSpeed refuses '{request}', we answered: {answer[:100]}")
            continue
        if answer.startswith("error:"):
            failures.append(f"we refused '{request}': {answer}")
            continue
        ours = parse_ours(answer)
        if len(ours) != len(theirs):
            failures.append(f"'{request}': {len(ours)} values, DeepSpeed {len(theirs)}")
            continue
        for t, (a, b) in enumerate(zip(ours, theirs)):
            compared += 1
            if a == b:
                exact += 1
            elif len(a) != len(b) or not all(close(x, y) for x, y in zip(a, b)):
                failures.append(f"'{request}' after {t} step() calls: ours {a}, DeepSpeed {b}")
                break
    if all_cases[0][0] == "WarmupLR":
        first = [v[0] for v in parse_ours(answers[0])[:4]]
        if first != [0.0, 0.0, 2e-4, 4e-4]:
            failures.append(f"WarmupLR(0, 1e-3, 5, linear) starts {first}, expected 0, 0, 2e-4, 4e-4")
    print(f"{len(all_cases)} schedules, {compared} values compared ({exact} bit-identical), "
          f"{refused} parameter sets refused by both")
    for f in failures[:20]:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


main()
