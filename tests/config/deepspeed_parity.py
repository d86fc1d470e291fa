"""Reference check of the config reader against the installed DeepSpeed.

For the keys fmengine accepts, checks that DeepSpeed knows the same key names (so no misspelled
key is accepted here) and has the same defaults, and that the batch triad resolves to DeepSpeed's
values wherever DeepSpeed accepts the triad and is refused wherever DeepSpeed refuses it.
Documented differences (docs/config.md) are listed in KNOWN_DIFFERENCES and skipped.

usage: python deepspeed_parity.py DS_CONFIG_DUMP
"""

import inspect
import json
import os
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import deepspeed  # noqa: E402,F401
from deepspeed.comm.config import CommsLoggerConfig  # noqa: E402
from deepspeed.monitor.config import CSVConfig, TensorBoardConfig, WandbConfig  # noqa: E402
from deepspeed.ops.adam.fused_adam import FusedAdam  # noqa: E402
from deepspeed.profiling.config import DeepSpeedFlopsProfilerConfig  # noqa: E402
from deepspeed.runtime import lr_schedules  # noqa: E402
from deepspeed.runtime.activation_checkpointing.config import DeepSpeedActivationCheckpointingConfig  # noqa: E402
from deepspeed.runtime.config import DeepSpeedConfig, get_pipeline_config  # noqa: E402
from deepspeed.runtime.precision_config import DeepSpeedBF16Config, DeepSpeedFP16Config  # noqa: E402
from deepspeed.runtime.zero.config import DeepSpeedZeroConfig  # noqa: E402
from deepspeed.runtime.zero.offload_config import (  # noqa: E402
    DeepSpeedZeroOffloadOptimizerConfig, DeepSpeedZeroOffloadParamConfig)

DUMP = sys.argv[1]
failures = []

# (section, key): why it differs on purpose.
KNOWN_DIFFERENCES = {
    ("", "gradient_clipping"): "0.0 here; DeepSpeed's default changed between versions",
    ("", "steps_per_print"): "10 here; None in DeepSpeed's code",
    ("pipeline", "partition_method"): "fmengine's key (a PipelineModule argument in DeepSpeed)",
    ("pipeline", "schedule"): "fmengine's key",
    ("pipeline", "stages"): "resolved from --pipe_parallel_size here",
    ("optimizer.params", "adam_w_mode"): "popped by DeepSpeed's engine, not a FusedAdam argument",
    ("optimizer.params", "torch_adam"): "popped by DeepSpeed's engine, not a FusedAdam argument",
}


def check(cond, msg):
    if not cond:
        failures.append(msg)


def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if hasattr(b, "value"):  # enums
        b = b.value
    if hasattr(a, "value"):
        a = a.value
    return a == b or (a is None and b is None)


def ours(config, dp=1, train_steps=100, hidden=64):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
        path = f.name
    try:
        r = subprocess.run([DUMP, path, str(dp), str(train_steps), str(hidden)], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if r.returncode == 0:
        return json.loads(r.stdout), None
    return None, r.stderr.strip()


def compare_section(name, mine, theirs_defaults, theirs_keys=None):
    """mine: our printed section; theirs_defaults: key -> DeepSpeed default."""
    keys = theirs_keys if theirs_keys is not None else set(theirs_defaults)
    for key, value in mine.items():
        if (name, key) in KNOWN_DIFFERENCES or isinstance(value, dict):
            continue
        check(key in keys, f"{name}.{key}: DeepSpeed has no such key")
        if key in theirs_defaults:
            check(same(value, theirs_defaults[key]),
                  f"{name}.{key}: default {value!r} here, {theirs_defaults[key]!r} in DeepSpeed")


def model_defaults(model_cls):
    fields = model_cls.model_fields
    defaults, names = {}, set()
    for field_name, field in fields.items():
        for n in (field_name, field.alias):
            if n:
                names.add(n)
                if field.default_factory is None:
                    defaults[n] = field.default
    return defaults, names


class MPU:
    def __init__(self, dp):
        self.dp = dp

    def get_data_parallel_world_size(self):
        return self.dp

    def get_model_parallel_world_size(self):
        return 1

    def get_data_parallel_rank(self):
        return 0

    def get_model_parallel_rank(self):
        return 0


# DeepSpeedConfig asks the (uninitialised) process group for the rank before it consults the mpu,
# and falls back to world size 1 when that fails; a rank of 0 lets the mpu's data-parallel size count.
import deepspeed.runtime.config as ds_config_module  # noqa: E402

ds_config_module.dist.get_rank = lambda *args, **kwargs: 0


def theirs_triad(batch, dp):
    try:
        c = DeepSpeedConfig(dict(batch, optimizer={"type": "AdamW"}), mpu=MPU(dp))
    except Exception:  # DeepSpeed asserts
        return None
    return (c.train_batch_size, c.train_micro_batch_size_per_gpu, c.gradient_accumulation_steps)


# ---- defaults and key names ------------------------------------------------------------------------
base = {"train_micro_batch_size_per_gpu": 1, "optimizer": {"type": "AdamW"}}
cfg, err = ours(base)
assert cfg is not None, err

ds = DeepSpeedConfig(dict(base), mpu=MPU(1))
for key in ("prescale_gradients", "gradient_predivide_factor", "wall_clock_breakdown", "dump_state"):
    check(same(cfg[key], getattr(ds, key)), f"{key}: default {cfg[key]!r} here, {getattr(ds, key)!r} in DeepSpeed")

compare_section("fp16", cfg["fp16"], DeepSpeedFP16Config().model_dump())
bf16_defaults, bf16_names = model_defaults(DeepSpeedBF16Config)
compare_section("bf16", cfg["bf16"], bf16_defaults, bf16_names)

zero_defaults, zero_names = model_defaults(DeepSpeedZeroConfig)
zero_defaults["overlap_comm"] = DeepSpeedZeroConfig().overlap_comm  # resolved by a validator (stage 0)
compare_section("zero_optimization", cfg["zero_optimization"], zero_defaults, zero_names)
for sub, model in (("offload_optimizer", DeepSpeedZeroOffloadOptimizerConfig),
                   ("offload_param", DeepSpeedZeroOffloadParamConfig)):
    d, n = model_defaults(model)
    compare_section("zero_optimization." + sub, cfg["zero_optimization"][sub], d, n)

for name, model in (("tensorboard", TensorBoardConfig), ("csv_monitor", CSVConfig), ("wandb", WandbConfig),
                    ("comms_logger", CommsLoggerConfig)):
    d, n = model_defaults(model)
    compare_section(name, cfg[name], d, n)

compare_section("activation_checkpointing", cfg["activation_checkpointing"],
                vars(DeepSpeedActivationCheckpointingConfig({})))
flops = vars(DeepSpeedFlopsProfilerConfig({}))
compare_section("flops_profiler", cfg["flops_profiler"], flops)

pipe = get_pipeline_config({})
pipe["use_reentrant"] = True  # set by DeepSpeed's PipelineEngine when absent
compare_section("pipeline", cfg["pipeline"], pipe)

mode = cfg["checkpoint"]["tag_validation"].lower()
check((mode != "ignore") == ds.checkpoint_tag_validation_enabled and (mode == "fail") == ds.checkpoint_tag_validation_fail,
      f"checkpoint.tag_validation: default {mode!r} here, enabled={ds.checkpoint_tag_validation_enabled} "
      f"fail={ds.checkpoint_tag_validation_fail} in DeepSpeed")
check(cfg["checkpoint"]["load_universal"] == ds.load_universal_checkpoint, "checkpoint.load_universal default")
check(cfg["checkpoint"]["use_node_local_storage"] == ds.use_node_local_storage,
      "checkpoint.use_node_local_storage default")

adam = {k: v.default for k, v in inspect.signature(FusedAdam.__init__).parameters.items()
        if v.default is not inspect.Parameter.empty}
compare_section("optimizer.params", cfg["optimizer"]["params"], adam)

# Scheduler parameters: the same names and defaults as the classes' constructors.
required = {"WarmupDecayLR": {"total_num_steps": 50}, "WarmupCosineLR": {"total_num_steps": 50},
            "OneCycle": {"cycle_min_lr": 0.1, "cycle_max_lr": 0.2}}
for sched in ("WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"):
    params = {k: v.default for k, v in inspect.signature(getattr(lr_schedules, sched).__init__).parameters.items()
              if k not in ("self", "optimizer", "last_batch_iteration")}
    conf = dict(base, scheduler={"type": sched, "params": required.get(sched, {})})
    mine, err = ours(conf)
    check(mine is not None, f"scheduler {sched}: {err}")
    if mine is None:
        continue
    printed = mine["scheduler"]["params"]
    check(set(printed) == set(params), f"scheduler {sched}: keys {sorted(printed)} here, {sorted(params)} in DeepSpeed")
    for key, default in params.items():
        if key in required.get(sched, {}) or key not in printed:
            continue
        if default is None and sched == "WarmupLR" and key == "warmup_max_lr":
            check(same(printed[key], mine["optimizer"]["params"]["lr"]), "WarmupLR.warmup_max_lr: not the optimizer lr")
            continue
        check(same(printed[key], default), f"scheduler {sched}.{key}: {printed[key]!r} here, {default!r} in DeepSpeed")

# ---- the batch triad ---------------------------------------------------------------------------------
triads = 0
for dp in (1, 2, 3, 8):
    for tb in (None, 6, 24, 32):
        for mb in (None, 1, 3, 4, 8):
            for gas in (None, 1, 2, 3):
                batch = {k: v for k, v in (("train_batch_size", tb), ("train_micro_batch_size_per_gpu", mb),
                                           ("gradient_accumulation_steps", gas)) if v is not None}
                want = theirs_triad(batch, dp)
                mine, err = ours(dict(batch, optimizer={"type": "AdamW"}), dp=dp)
                got = None if mine is None else (mine["train_batch_size"], mine["train_micro_batch_size_per_gpu"],
                                                 mine["gradient_accumulation_steps"])
                check(got == want, f"triad {batch} dp={dp}: {got} here ({err}), {want} in DeepSpeed")
                triads += 1

if failures:
    print(f"{len(failures)} differences from DeepSpeed {deepspeed.__version__}:")
    for f in failures:
        print("  " + f)
    sys.exit(1)
print(f"config parity with DeepSpeed {deepspeed.__version__}: defaults and key names of every section, "
      f"{triads} batch triads")
