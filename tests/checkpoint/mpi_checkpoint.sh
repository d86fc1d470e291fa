#!/usr/bin/env bash
# Checkpoints across MPI processes, with the probe's synthetic state (no training engine):
#  1. written by 4 ranks as (pipeline 2, data 2, ZeRO 1), read back exactly by 4 ranks as (1, 4,
#     ZeRO 2), as (4, 1), by 2 ranks as (2, 1) and by one process simulating (3, 2, ZeRO 2);
#  2. a rank SIGKILLed at a random moment of a run of saves, 20 times: --resume auto always finds
#     a complete checkpoint, at least as new as the last one reported committed, with exact values;
#  3. a damaged shard under 4 ranks: --resume PATH fails naming the file (exit 2), auto falls back.
set -u
probe=$1
tag="ckpt-mpi-$$"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}
cat > "$work/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
 "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": true}
JSON
cfg="$work/config.json"
run_mpi() {  # run_mpi N ARGS... -> $out, $rc
  local n=$1
  shift
  rc=0
  out=$(timeout -s KILL 120 mpirun --oversubscribe -np "$n" "$probe" "$@" --tag "$tag" 2>&1) || rc=$?
}

# 1. Resharding across processes.
d="$work/reshard"
run_mpi 4 save "$d" --model "$cfg" --layout 2,2,1 --steps 1-2
[ "$rc" = 0 ] || { echo "$out"; fail "save under (2,2,1) exited $rc"; }
for spec in "4 1,4,2" "4 4,1,0" "2 2,1,0" "4 2,2,1" "1 3,2,2" "1 1,1,0"; do
  set -- $spec
  run_mpi "$1" check "$d" --model "$cfg" --layout "$2" --expect_step 2
  [ "$rc" = 0 ] || { echo "$out"; fail "read back under $2 on $1 rank(s) exited $rc"; }
  grep -q "resumed step 2" <<<"$out" || { echo "$out"; fail "no resume under $2"; }
done
echo "ok: written as (2,2,ZeRO 1), read exactly as (1,4,ZeRO 2), (4,1), (2,1), (3,2,ZeRO 2), (1,1)"

# 2. SIGKILL at random moments.
d="$work/kill"
pids="$work/pids"
next=1
last_committed=0
for round in $(seq 1 20); do
  rm -rf "$pids"
  log="$work/save-$round.log"
  timeout -s KILL 120 mpirun --oversubscribe -np 4 "$probe" save "$d" --model "$cfg" --layout 2,2,1 \
    --steps "$next-100000" --max_checkpoints 3 --pid_dir "$pids" --tag "$tag" >"$log" 2>&1 &
  job=$!
  for _ in $(seq 1 200); do
    [ "$(ls "$pids" 2>/dev/null | wc -l)" = 4 ] && break
    sleep 0.05
  done
  [ "$(ls "$pids" 2>/dev/null | wc -l)" = 4 ] || { cat "$log"; fail "round $round: the ranks did not start"; }
  sleep "0.$((RANDOM % 6))$((RANDOM % 10))"
  victim=$((RANDOM % 4))
  kill -KILL "$(cat "$pids/rank-$victim.pid")" 2>/dev/null
  wait "$job"
  save_rc=$?
  [ "$save_rc" != 0 ] || { cat "$log"; fail "round $round: the job survived a killed rank"; }
  c=$(grep -o 'committed step [0-9]*' "$log" | tail -1 | awk '{print $3}')
  [ -n "$c" ] && last_committed=$c
  layout=$([ $((round % 2)) = 0 ] && echo 1,4,2 || echo 2,2,1)
  run_mpi 4 check "$d" --model "$cfg" --layout "$layout"
  [ "$rc" = 0 ] || { echo "$out"; fail "round $round: resume after killing rank $victim exited $rc"; }
  got=$(grep -o 'resumed step [0-9]*' <<<"$out" | awk '{print $3}')
  if [ "$last_committed" = 0 ] && [ -z "$got" ]; then
    grep -q "fresh start" <<<"$out" || { echo "$out"; fail "round $round: neither resumed nor fresh"; }
    continue
  fi
  [ -n "$got" ] || { echo "$out"; fail "round $round: no checkpoint found after step $last_committed was committed"; }
  [ "$got" -ge "$last_committed" ] || fail "round $round: resumed step $got, but step $last_committed was committed"
  echo "round $round: killed rank $victim after step ${c:-none} committed; resumed step $got under ($layout), exact"
  next=$((got + 1))
  last_committed=$got
done
sleep 0.5
left=$(pgrep -f -- "--tag $tag" || true)
[ -z "$left" ] || fail "processes left running: $left"
echo "ok: 20 random SIGKILLs, every resume complete and exact"

# 3. A damaged shard under 4 ranks.
d="$work/damaged"
run_mpi 4 save "$d" --model "$cfg" --layout 2,2,1 --steps 1-2
[ "$rc" = 0 ] || { echo "$out"; fail "save exited $rc"; }
shard="$d/checkpoints/global_step2/shard-pp001-dp0001.safetensors"
printf '\xff' | dd of="$shard" bs=1 seek=2000 conv=notrunc status=none
run_mpi 4 check "$d" --model "$cfg" --layout 2,2,1 --resume "$d/checkpoints/global_step2"
path_rc=$rc
[ "$path_rc" = 2 ] || { echo "$out"; fail "a damaged shard with --resume PATH: exit $path_rc, expected 2"; }
grep -q "error: $shard: checksum mismatch" <<<"$out" || { echo "$out"; fail "the error does not name the shard"; }
run_mpi 4 check "$d" --model "$cfg" --layout 1,4,2
[ "$rc" = 0 ] || { echo "$out"; fail "auto did not fall back ($rc)"; }
grep -q "resumed step 1" <<<"$out" || { echo "$out"; fail "auto did not resume step 1"; }
grep -q "skipping checkpoint $d/checkpoints/global_step2: error: $shard: checksum mismatch" <<<"$out" ||
  { echo "$out"; fail "the fallback warning does not name the shard"; }
echo "ok: a damaged shard is named (exit $path_rc with PATH); auto falls back to step 1 with a warning"
