"""Compares our schedules and partitions with DeepSpeed's own code.

usage: check_pipeline_reference.py PIPELINE_DUMP

Schedules: deepspeed.runtime.pipe.schedule.TrainSchedule and InferenceSchedule for every
p <= 8, m <= 16 and stage, instruction by instruction with buffer ids.
Partitions: deepspeed.runtime.utils.partition_uniform / partition_balanced on random weights, and
the layer weights PipelineModule._partition_layers builds for 'uniform', 'parameters' and
'type:REGEX' (re-stated below from its source) over our layer type names.
"""
import logging
import random
import re
import subprocess
import sys

logging.disable(logging.WARNING)

from deepspeed.runtime import utils as ds_utils  # noqa: E402
from deepspeed.runtime.pipe import schedule as ds_schedule  # noqa: E402

MAX_STAGES = 8
MAX_MICRO_BATCHES = 16
TOOL = sys.argv[1]
failures = []


def fail(msg):
    failures.append(msg)


def ds_step_text(cmds):
    out = []
    for c in cmds:
        name = type(c).__name__
        if hasattr(c, "buffer_id"):
            out.append(f"{name}(buffer_id={c.buffer_id})")
        else:
            out.append(f"{name}()")
    return " ".join(out)


def ds_schedule_lines(kind, cls):
    lines = []
    for p in range(1, MAX_STAGES + 1):
        for m in range(1, MAX_MICRO_BATCHES + 1):
            for s in range(p):
                sch = cls(micro_batches=m, stages=p, stage_id=s)
                steps = [ds_step_text(cmds) for cmds in sch.steps()]
                lines.append(f"{kind} {p} {m} {s} buffers={sch.num_pipe_buffers()}|" + "|".join(steps))
    return lines


def check_schedules(kind, cls):
    ours = subprocess.run([TOOL, "schedules", kind, str(MAX_STAGES), str(MAX_MICRO_BATCHES)],
                          check=True, capture_output=True, text=True).stdout.splitlines()
    theirs = ds_schedule_lines(kind, cls)
    if len(ours) != len(theirs):
        fail(f"{kind}: {len(ours)} schedules from us, {len(theirs)} from DeepSpeed")
    mismatched = [(a, b) for a, b in zip(ours, theirs) if a != b]
    for a, b in mismatched[:3]:
        fail(f"{kind} schedule differs:\n  ours:      {a}\n  deepspeed: {b}")
    print(f"{kind}: {len(theirs)} stage schedules compared, {len(mismatched)} differ")


# --- partitions ------------------------------------------------------------------------------


def layer_names(num_decoder_layers):
    return ["EmbeddingLayer"] + ["LlamaDecoderLayer"] * num_decoder_layers + ["HeadLayer"]


def ds_partition_layers(method, num_stages, names, counts):
    """PipelineModule._partition_layers with its _find_layer_type, over named layers."""
    method = method.lower()
    if method == "uniform":
        return ds_utils.partition_uniform(num_items=len(names), num_parts=num_stages)
    if method == "parameters":
        return ds_utils.partition_balanced(weights=counts, num_parts=num_stages)
    if method.startswith("type:"):
        layertype = method.split(":")[1]
        typeregex = re.compile(layertype, re.IGNORECASE)
        idxs = [i for i, name in enumerate(names) if typeregex.search(name)]
        if not idxs:
            raise RuntimeError(f"Partitioning '{layertype}' found no valid layers to partition.")
        weights = [0] * len(names)
        for i in idxs:
            weights[i] = 1
        return ds_utils.partition_balanced(weights=weights, num_parts=num_stages)
    raise NotImplementedError(f"Partitioning method {method} not implemented.")


def llama_layer_counts(rng, num_layers):
    c = rng.choice([64, 128, 256, 4096])
    heads = rng.choice([2, 4, 8])
    kv = rng.choice([h for h in (1, 2, heads) if heads % h == 0])
    d = c // heads
    f = rng.choice([c * 2, c * 8 // 3, c * 4])
    v = rng.choice([256, 32000, 128256])
    tied = rng.random() < 0.3
    decoder = 2 * c + c * (heads + 2 * kv) * d + c * heads * d + 3 * c * f
    head = c + (0 if tied else v * c)
    return [v * c] + [decoder] * num_layers + [head]


def check_partitions():
    rng = random.Random(1234)
    requests, expected = [], []

    for n in range(0, 41):
        for p in range(1, 9):
            requests.append(f"uniform {n} {p}")
            expected.append(ds_utils.partition_uniform(n, p))

    for _ in range(500):
        n = rng.randint(1, 40)
        p = rng.randint(1, 8)
        style = rng.randrange(5)
        if style == 0:
            weights = [rng.randint(0, 10) for _ in range(n)]
        elif style == 1:
            weights = [rng.randint(1, 3) for _ in range(n)]  # many ties
        elif style == 2:
            weights = [rng.randint(0, 1) for _ in range(n)]
        elif style == 3:
            weights = [rng.randint(10**6, 10**9) for _ in range(n)]
        else:
            w = rng.randint(1, 10**7)
            weights = [rng.randint(10**7, 10**9)] + [w] * (n - 2) + [rng.randint(10**7, 10**9)]
            weights = weights[:n]
        requests.append(f"balanced {p} " + " ".join(map(str, weights)))
        expected.append(ds_utils.partition_balanced(weights, p))
    for _ in range(100):
        n = rng.randint(1, 30)
        p = rng.randint(1, 8)
        weights = [round(rng.uniform(0, 5), 3) for _ in range(n)]
        requests.append(f"balanced {p} " + " ".join(repr(w) for w in weights))
        expected.append(ds_utils.partition_balanced(weights, p))

    methods = ["uniform", "parameters", "Parameters", "type:LlamaDecoderLayer", "type:decoder",
               "TYPE:Decoder", "type:layer", "type:^embed|head", "type:llama.*layer$", "type:head",
               "type:decoderlayer", "type:(embedding|decoder)", "type:e", "type:decoder:ignored"]
    for _ in range(300):
        num_layers = rng.randint(0, 38)
        names = layer_names(num_layers)
        p = rng.randint(1, min(8, len(names)))
        method = rng.choice(methods)
        counts = llama_layer_counts(rng, num_layers)
        requests.append(f"layers {method} {p} {num_layers} " + " ".join(map(str, counts)))
        try:
            expected.append(ds_partition_layers(method, p, names, counts))
        except RuntimeError:
            expected.append(None)  # no layer matches: we must refuse it too

    # Requests DeepSpeed refuses (or, for too many stages, answers with empty stages) that we
    # must refuse with a message naming the key.
    error_requests = [
        ("layers uniform 5 2 1 1 1 1", "pipeline.stages"),
        ("layers parameters 9 5 " + " ".join(["1"] * 7), "pipeline.stages"),
        ("layers type:transformer 2 4 " + " ".join(["1"] * 6), "matches no layer type"),
        ("layers profile 2 4 " + " ".join(["1"] * 6), "unknown partition method"),
        ("layers type:( 2 4 " + " ".join(["1"] * 6), "not a valid regular expression"),
    ]
    for req, _ in error_requests[2:]:
        method = req.split()[1]
        try:
            ds_partition_layers(method, 2, layer_names(4), [1] * 6)
            fail(f"DeepSpeed accepted {method!r}, expected a refusal")
        except (RuntimeError, NotImplementedError, re.error):
            pass
    p5 = ds_utils.partition_uniform(4, 5)
    if p5[-1] - p5[-2] != 0:
        fail("expected DeepSpeed to leave a stage empty for 5 stages over 4 layers")

    all_requests = requests + [r for r, _ in error_requests]
    out = subprocess.run([TOOL, "partition"], input="\n".join(all_requests) + "\n", check=True,
                         capture_output=True, text=True).stdout.splitlines()
    if len(out) != len(all_requests):
        fail(f"partition: {len(out)} answers for {len(all_requests)} requests")
        return
    differ = 0
    refused = 0
    for req, want, got in zip(requests, expected, out):
        if want is None:
            refused += 1
            if not got.startswith("error: ") or "matches no layer type" not in got:
                fail(f"'{req[:120]}' matches no layer in DeepSpeed, but we answered: {got}")
            continue
        want_text = " ".join(str(int(x)) for x in want)
        if got != want_text:
            differ += 1
            if differ <= 5:
                fail(f"partition differs for '{req[:120]}':\n  ours:      {got}\n  deepspeed: {want_text}")
    for (req, needle), got in zip(error_requests, out[len(requests):]):
        if not got.startswith("error: ") or needle not in got:
            fail(f"'{req}' should be refused mentioning '{needle}', got: {got}")
    print(f"partitions: {len(requests)} compared with DeepSpeed ({refused} refused by both), {differ} differ; "
          f"{len(error_requests)} more refusals checked")


check_schedules("1f1b", ds_schedule.TrainSchedule)
check_schedules("inference", ds_schedule.InferenceSchedule)
check_partitions()
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
