"""Every parallel layout reproduces the single-process loss curve.

One config (global batch 16 sequences, micro-batch 2) trains 10 steps as (pipeline, data) =
(1,1), (2,1), (4,1), (1,2), (2,2), (1,4), with ZeRO 0, 1 and 2 wherever data > 1, under
`mpirun --oversubscribe`, plus layouts started through the environment-variable path (Gloo), a
GPipe schedule, uniform partitioning and a tied-embedding model whose two copies live on the
first and last stage. Per-step losses must equal the single-process run within 1e-5 relative.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from common import (FMTRAIN, ds_config, env_launch, fail, losses, max_rel_diff, mpirun, write_json)  # noqa: E402

STEPS = 10
TOL = 1e-5


def main():
    tmp = tempfile.mkdtemp(prefix="fm_equiv_")
    src = os.environ["FM_SOURCE_DIR"]
    tiny = json.load(open(os.path.join(src, "configs", "models", "tiny.json")))
    tied = write_json(os.path.join(tmp, "tied.json"), dict(tiny, tie_word_embeddings=True))
    untied = os.path.join(src, "configs", "models", "tiny.json")
    common = ["--train_steps", str(STEPS), "--max_seq_len", "32", "--log_steps", "1"]

    def args(name, model, zero=0, pipe=1, **kw):
        ds = write_json(os.path.join(tmp, f"{name}.ds.json"), ds_config(zero_stage=zero, **kw))
        return ["--model_config", model, "--deepspeed_config", ds, "--pipe_parallel_size", str(pipe),
                "--output_dir", os.path.join(tmp, name)] + common

    failures = []
    for model_name, model in (("untied", untied), ("tied", tied)):
        ref_name = f"{model_name}-single"
        r = mpirun(1, args(ref_name, model))
        if r.returncode != 0:
            fail(f"{ref_name}: exit {r.returncode}\n{r.stderr[-2000:]}")
        ref = losses(os.path.join(tmp, ref_name))
        print(f"{ref_name}: losses {['%.6f' % x for x in ref]}")
        layouts = [(2, 1, 0), (4, 1, 0)]
        for pipe, data in ((1, 2), (2, 2), (1, 4)):
            for zero in (0, 1, 2):
                layouts.append((pipe, data, zero))
        if model_name == "tied":
            layouts = [(2, 1, 0), (4, 1, 0), (2, 2, 1), (2, 2, 2)]
        for pipe, data, zero in layouts:
            name = f"{model_name}-p{pipe}-d{data}-z{zero}"
            r = mpirun(pipe * data, args(name, model, zero=zero, pipe=pipe))
            if r.returncode != 0:
                failures.append(f"{name}: exit {r.returncode}\n{r.stderr[-2000:]}")
                continue
            d = max_rel_diff(losses(os.path.join(tmp, name)), ref)
            print(f"{name} (mpirun): max relative loss difference {d:.2e}")
            if d > TOL:
                failures.append(f"{name}: {d:.3e} > {TOL}")

    ref = losses(os.path.join(tmp, "untied-single"))
    extra = [
        ("env-p2-d2-z1", "env", dict(zero=1, pipe=2)),
        ("env-p1-d2-z2", "env", dict(zero=2, pipe=1)),
        ("gpipe-p2-d2-z1", "mpi", dict(zero=1, pipe=2, schedule="gpipe")),
        ("uniform-p4-d1", "mpi", dict(pipe=4, partition="uniform")),
    ]
    for name, how, kw in extra:
        a = args(name, untied, **kw)
        np = kw.get("pipe", 1) * 2 if "d2" in name else kw.get("pipe", 1)
        if how == "env":
            codes, outs = env_launch(np, a)
            if any(codes):
                failures.append(f"{name}: exit codes {codes}\n{outs[0][-2000:]}")
                continue
            backend = "gloo" if "gloo backend" in outs[0] else "?"
        else:
            r = mpirun(np, a)
            if r.returncode != 0:
                failures.append(f"{name}: exit {r.returncode}\n{r.stderr[-2000:]}")
                continue
            backend = "mpirun"
        d = max_rel_diff(losses(os.path.join(tmp, name)), ref)
        print(f"{name} ({backend}): max relative loss difference {d:.2e}")
        if d > TOL:
            failures.append(f"{name}: {d:.3e} > {TOL}")
    if failures:
        fail("\n".join(failures))
    print("every layout reproduces the single-process loss curve within 1e-5")


if __name__ == "__main__":
    main()
