"""Helpers for the multi-process tests: run fmtrain under mpirun or the environment-variable
(torchrun-style) path, and read per-step losses from metrics.jsonl. Standard library only."""
import json
import os
import socket
import subprocess
import sys
import tempfile

FMTRAIN = os.environ.get("FMTRAIN") or os.path.join(os.environ["FM_BUILD_DIR"], "runtime", "fmtrain")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


def ds_config(zero_stage=0, train_batch=16, micro_batch=2, bucket=20000, schedule=None, partition=None):
    cfg = {
        "train_batch_size": train_batch,
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_clipping": 1.0,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decay": 0.1}},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 1e-4, "warmup_max_lr": 1e-3,
                                                     "warmup_num_steps": 3, "warmup_type": "linear"}},
        "zero_optimization": {"stage": zero_stage, "reduce_bucket_size": bucket,
                              "allgather_bucket_size": bucket},
    }
    pipeline = {}
    if schedule:
        pipeline["schedule"] = schedule
    if partition:
        pipeline["partition_method"] = partition
    if pipeline:
        cfg["pipeline"] = pipeline
    return cfg


def mpirun(np, args, timeout=300, env=None):
    cmd = ["mpirun", "--oversubscribe", "-np", str(np), FMTRAIN] + args
    e = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if env:
        e.update(env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)


def env_launch(np, args, timeout=300):
    """Starts np ranks with RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT (the Gloo path)."""
    port = str(free_port())
    procs = []
    logs = []
    for r in range(np):
        e = dict(os.environ, RANK=str(r), WORLD_SIZE=str(np), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(np),
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        for k in list(e):
            if k.startswith("OMPI_") or k.startswith("PMIX_"):
                del e[k]
        log = tempfile.TemporaryFile(mode="w+")
        logs.append(log)
        procs.append(subprocess.Popen([FMTRAIN] + args, stdout=log, stderr=subprocess.STDOUT, env=e))
    codes = [p.wait(timeout=timeout) for p in procs]
    out = []
    for log in logs:
        log.seek(0)
        out.append(log.read())
    return codes, out


def losses(output_dir):
    """Per-step losses of a run (a resumed run appends: the last record of a step wins)."""
    by_step = {}
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                by_step[r["step"]] = r["loss"]
    return [by_step[k] for k in sorted(by_step)]


def max_rel_diff(a, b):
    assert len(a) == len(b), f"{len(a)} vs {len(b)} steps"
    return max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(a, b))


def fail(msg):
    print("FAILED: " + msg)
    sys.exit(1)
