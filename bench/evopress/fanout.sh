#!/usr/bin/env bash
# EvoPress fan-out over workers, through the service, on the real model: the
# same search (same recipe and seed) with 1, then 2 workers of --threads 1
# each, on one compressd. Prints per run the job's wall time, the database
# and search phases from the job summary, generations per minute, the
# speedup against 1 worker, and whether the configuration and fitness curve
# are identical to the 1-worker run's.
#
#   bench/evopress/fanout.sh [--build DIR] [--workers "1 2"] [--generations N]
#
# On a machine with C cores, C workers of one thread each is the fair
# comparison with one worker of one thread; the speedup is bounded by the
# parts per phase (database: one per level; search: one per worker per
# selection step) and by the parent pass each extra worker repeats.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/build/bin"
WORKERS="1 2"
GENERATIONS=6
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BIN="$2/bin"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --generations) GENERATIONS="$2"; shift 2 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
MODEL="${COMPRESSD_REAL_MODEL:-$ROOT/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[[ -f "$MODEL" ]] || "$ROOT/scripts/fetch-model.sh"
TEXT="$(cd "$ROOT/../shared/data/text" && pwd)"
PY=python3

SERVER_FLAGS=()
LOCAL_WORKERS=0
source "$ROOT/tests/integration/start_server.sh"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; cleanup' EXIT

data=$(ctl datasets upload "$TEXT" --name text)
cat > "$work/recipe.yaml" <<YAML
stages:
  - evopress: {mode: sparsity, target: 0.5, levels: [0.4, 0.5, 0.6], generations: $GENERATIONS,
               offspring: 8, survivors: [2, 1], step_tokens: [256, 512], seed: 3}
calibration: {dataset_id: $data, file: sotu, samples: 8, seq_len: 256, threads: 1}
output: {format: hf_safetensors}
YAML
printf '%-8s %8s %8s %8s %9s %8s %s\n' workers total_s db_s search_s gen/min speedup identical
base_total="" base_curve="" base_config=""
for n in $WORKERS; do
  # A fresh upload per run: the levels database is shared by every job of a
  # model, so a second job on the same upload would not build it again.
  model=$(ctl models upload "$MODEL" --name "smollm2-$n")
  pids=()
  for i in $(seq "$n"); do
    "$BIN/compress-worker" --server "$addr" --key-file "$work/data/worker.key" \
      --cache-dir "$work/cache-$n-$i" --threads 1 \
      --name "w$n-$i" > /dev/null 2> "$work/w$n-$i.err" &
    pids+=($!)
  done
  start=$(date +%s.%N)
  ctl jobs submit --model "$model" --recipe "$work/recipe.yaml" --dataset "$data" --wait \
    > "$work/job-$n.out" 2> "$work/job-$n.err"
  job=$(head -1 "$work/job-$n.out")
  total=$("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
  ctl jobs get "$job" --json > "$work/$job.json"
  ctl artifacts download "$job" --out "$work/out-$n" > /dev/null
  read -r db search curve < <("$PY" - "$work/$job.json" <<'PY'
import json, sys
s = json.loads(json.load(open(sys.argv[1]))["summary_json"])["evopress"]
print(f'{s["timing_seconds"]["levels_db"]:.1f}', f'{s["timing_seconds"]["search"]:.1f}',
      json.dumps(s["fitness_curve"]).replace(" ", ""))
PY
)
  config=$(cat "$work/out-$n/evopress_config.json")
  if [[ -z "$base_total" ]]; then
    base_total=$total base_curve=$curve base_config=$config
  fi
  same=no
  [[ "$curve" == "$base_curve" && "$config" == "$base_config" ]] && same=yes
  "$PY" -c "
import sys
n, total, db, search, gens, base = sys.argv[1:]
print(f'{n:<8} {float(total):8.1f} {float(db):8.1f} {float(search):8.1f} '
      f'{int(gens) / float(search) * 60:9.2f} {float(base) / float(total):8.2f} $same')" \
    "$n" "$total" "$db" "$search" "$GENERATIONS" "$base_total"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
done
