#!/usr/bin/env bash
# Damaged checkpoints and a full disk, through fmtrain (pipeline 2 x data 2, ZeRO 1, under mpirun):
#  - a flipped byte in the newest checkpoint: --resume PATH refuses it (exit 2, naming the file);
#    --resume auto warns, naming the file, and resumes from the previous complete checkpoint;
#  - a truncated shard and a missing shard: the same fallback, each named;
#  - a save that fails for lack of space (the ranks' file size limited with ulimit -f) ends the run
#    with a message naming the file and leaves the previous checkpoint and `latest` intact.
fmtrain=$1
source "$(dirname "$0")/e2e_common.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$work/run
fmtrain_mpi 4 2 1 "$out" --train_steps 6 --save_steps 2 > "$work/first.log" 2>&1 || { tail -20 "$work/first.log"; fail "first run"; }
ck=$out/checkpoints
[ "$(cat "$ck/latest")" = global_step6 ] || fail "latest is $(cat "$ck/latest"), expected global_step6"

damage() {  # damage KIND: damages one shard of global_step6 in a fresh copy of the run; prints its path
  local kind=$1 dir=$work/$1
  rm -rf "$dir"; cp -a "$out" "$dir"
  local shard
  shard=$(ls "$dir/checkpoints/global_step6"/*.safetensors | head -1)
  case $kind in
    flip) printf '\x5a' | dd of="$shard" bs=1 seek=$(( $(stat -c %s "$shard") - 100 )) conv=notrunc status=none ;;
    truncate) truncate -s $(( $(stat -c %s "$shard") / 2 )) "$shard" ;;
    missing) rm "$shard" ;;
  esac
  echo "$shard"
}
for kind in flip truncate missing; do
  shard=$(damage "$kind")
  name=$(basename "$shard")
  dir=$work/$kind
  # An explicit path to a damaged checkpoint is refused.
  fmtrain_mpi 4 2 1 "$dir" --train_steps 8 --resume "$dir/checkpoints/global_step6" > "$work/$kind-path.log" 2>&1
  rc=$?
  [ "$rc" = 2 ] || { tail -20 "$work/$kind-path.log"; fail "$kind: --resume PATH exited $rc, expected 2"; }
  grep -q "$name" "$work/$kind-path.log" || { tail -20 "$work/$kind-path.log"; fail "$kind: the error does not name $name"; }
  # auto falls back to global_step4 with a warning naming the damaged file.
  fmtrain_mpi 4 2 1 "$dir" --train_steps 8 --resume auto > "$work/$kind-auto.log" 2>&1 ||
    { tail -20 "$work/$kind-auto.log"; fail "$kind: --resume auto failed"; }
  grep -q "warning: .*$name" "$work/$kind-auto.log" || { tail -30 "$work/$kind-auto.log"; fail "$kind: no warning naming $name"; }
  grep -q "resumed from .*global_step4 at step 4" "$work/$kind-auto.log" || fail "$kind: did not resume from global_step4"
  echo "ok - $kind shard: --resume PATH exit 2 naming $name; auto: $(grep -m1 -o "warning: .*" "$work/$kind-auto.log" | cut -c1-120)"
done

# Disk full: each rank may write files of at most 2 MB (the shards are ~2.6 MB), SIGXFSZ ignored so
# writes fail with EFBIG instead of killing the rank. The ranks are started through the
# environment-variable path (mpirun's own runtime would trip over the limit first).
env_ranks() {  # env_ranks OUTPUT_DIR FLAGS...: 4 ranks, pipeline 2 x data 2, ZeRO 1; waits for all
  local dir=$1 port pids=() r rc=0
  shift
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  for r in 0 1 2 3; do
    env -u OMPI_COMM_WORLD_RANK RANK=$r WORLD_SIZE=4 LOCAL_RANK=$r LOCAL_WORLD_SIZE=4 MASTER_ADDR=127.0.0.1 \
      MASTER_PORT=$port "$fmtrain" --model_config "$model" --deepspeed_config "$work/zero1.json" \
      --pipe_parallel_size 2 --max_seq_len 64 --output_dir "$dir" "$@" &
    pids+=($!)
  done
  for r in "${pids[@]}"; do wait "$r" || rc=$?; done
  return $rc
}
dir=$work/full
rm -rf "$dir"; cp -a "$out" "$dir"
before=$(cd "$dir/checkpoints" && ls -l global_step6 latest && md5sum global_step6/* latest)
(trap '' XFSZ; ulimit -f 2000; env_ranks "$dir" --train_steps 8 --save_steps 2) > "$work/full.log" 2>&1
rc=$?
[ "$rc" != 0 ] || fail "disk full: the run exited 0"
grep -q "File too large" "$work/full.log" || { tail -30 "$work/full.log"; fail "disk full: no clear message"; }
after=$(cd "$dir/checkpoints" && ls -l global_step6 latest && md5sum global_step6/* latest)
[ "$before" = "$after" ] || fail "disk full: the previous checkpoint or latest changed"
[ ! -e "$dir/checkpoints/global_step8" ] || fail "disk full: an incomplete global_step8 is visible"
echo "ok - disk full: exit $rc, '$(grep -m1 "File too large" "$work/full.log" | cut -c1-150)'; global_step6 and latest intact"
# ... and the next run resumes from it.
env_ranks "$dir" --train_steps 8 --save_steps 2 > "$work/after.log" 2>&1 || { tail -20 "$work/after.log"; fail "resume after the full disk"; }
grep -q "resumed from .*global_step6" "$work/after.log" || fail "did not resume from global_step6 after the full disk"
echo "ok - the next run resumes from global_step6"
