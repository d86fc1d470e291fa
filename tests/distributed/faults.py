"""A rank killed with SIGKILL mid-training ends the whole job: every other rank exits non-zero
within 30 s, the lost rank is named, and no process of the job is left. Checked under mpirun and
on the environment-variable (Gloo) path."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import FMTRAIN, ds_config, fail, free_port, write_json  # noqa: E402

LIMIT = 30.0


def wait_for_steps(out, n, procs, deadline=120):
    path = os.path.join(out, "metrics.jsonl")
    t0 = time.time()
    while time.time() - t0 < deadline:
        if os.path.exists(path) and sum(1 for _ in open(path)) >= n:
            return
        if any(p.poll() is not None for p in procs):
            fail("the job ended before the kill")
        time.sleep(0.1)
    fail("training did not start")


def rank_pid(out, rank):
    log = open(os.path.join(out, "logs", f"rank_{rank}.log")).read()
    return int(re.search(r"\(pid (\d+)\)", log).group(1))


def leftovers(marker):
    r = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]


def job_args(tmp, name):
    ds = write_json(os.path.join(tmp, name + ".ds.json"), ds_config(zero_stage=1))
    out = os.path.join(tmp, name)
    return out, ["--deepspeed_config", ds, "--pipe_parallel_size", "2", "--train_steps", "100000",
                 "--max_seq_len", "32", "--output_dir", out, "--comm_timeout", "300"]


def check_mpirun(tmp):
    out, args = job_args(tmp, "mpi_kill")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.Popen(["mpirun", "--oversubscribe", "-np", "4", FMTRAIN] + args, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_steps(out, 3, [p])
    victim = rank_pid(out, 2)
    t0 = time.time()
    os.kill(victim, signal.SIGKILL)
    try:
        text, _ = p.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        p.kill()
        fail(f"mpirun: the job was still running {LIMIT} s after rank 2 was killed")
    dt = time.time() - t0
    print(f"mpirun: job ended {dt:.1f} s after SIGKILL of rank 2, exit {p.returncode}")
    print("\n".join(l for l in text.splitlines() if "rank 2" in l or "signal 9" in l))
    if p.returncode == 0:
        fail("mpirun exited 0 after a rank was killed")
    if not re.search(r"rank 2\b.*(signal 9|Killed|lost)", text, re.S):
        fail("the lost rank is not named:\n" + text[-3000:])
    time.sleep(0.5)
    if leftovers(out):
        fail(f"processes left: {leftovers(out)}")


def check_env(tmp):
    out, args = job_args(tmp, "env_kill")
    port = str(free_port())
    procs, logs = [], []
    for r in range(4):
        e = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_"))}
        e.update(RANK=str(r), WORLD_SIZE="4", LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="4", MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=port)
        log = tempfile.TemporaryFile(mode="w+")
        logs.append(log)
        procs.append(subprocess.Popen([FMTRAIN] + args, stdout=log, stderr=subprocess.STDOUT, env=e))
    wait_for_steps(out, 3, procs)
    t0 = time.time()
    procs[2].send_signal(signal.SIGKILL)
    ended = {}
    while time.time() - t0 < LIMIT and len(ended) < 3:
        for r, p in enumerate(procs):
            if r != 2 and r not in ended and p.poll() is not None:
                ended[r] = time.time() - t0
        time.sleep(0.05)
    for r, p in enumerate(procs):
        if r != 2 and p.poll() is None:
            p.kill()
            fail(f"env path: rank {r} was still running {LIMIT} s after rank 2 was killed")
    for r in (0, 1, 3):
        logs[r].seek(0)
        text = logs[r].read()
        print(f"env path: rank {r} exited {procs[r].returncode} after {ended[r]:.1f} s: "
              + next((l for l in text.splitlines() if "rank 2" in l), "(no line naming rank 2)"))
        if procs[r].returncode == 0:
            fail(f"rank {r} exited 0")
        if "rank 2" not in text:
            fail(f"rank {r} does not name the lost rank:\n{text[-2000:]}")
    if leftovers(out):
        fail(f"processes left: {leftovers(out)}")


def main():
    tmp = tempfile.mkdtemp(prefix="fm_faults_")
    check_mpirun(tmp)
    check_env(tmp)
    print("a killed rank ends every other rank within 30 s, named, nothing left running")


if __name__ == "__main__":
    main()
