#!/usr/bin/env bash
# The quickstart: installs what fmengine needs (apt), builds it, and trains the embedded tiny LLaMA
# (configs/models/tiny.json) on the embedded synthetic corpus, no downloads: fmlaunch starts 4
# local ranks, pipeline 2 x data-parallel 2 with ZeRO stage 1 (configs/ds/quickstart.json).
# Extra arguments go to fmtrain (e.g. --train_steps 300 --output_dir /tmp/run).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh
scripts/build.sh
build=${FM_BUILD_DIR:-build}
# Defaults for flags the caller did not give. A quickstart starts fresh (--resume none) rather
# than continuing an earlier quickstart's checkpoint.
defaults=(--train_steps 200 --output_dir output/quickstart --resume none)
args=()
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
  flag=${defaults[i]}
  case " $* " in *" $flag "* | *" $flag="*) ;; *) args+=("$flag" "${defaults[i+1]}") ;; esac
done
exec "$build/launcher/fmlaunch" --num_gpus 4 \
  "$build/runtime/fmtrain" --pipe_parallel_size 2 --deepspeed_config configs/ds/quickstart.json "${args[@]}" "$@"
