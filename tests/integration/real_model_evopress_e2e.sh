#!/usr/bin/env bash
# EvoPress on the real model through the service, fanned out over workers,
# with the job's worker killed in the middle of the search:
#   1. one worker (1 thread): a small sparsity search (levels 0.4/0.5/0.6,
#      target 0.5) with --wait; the fitness of every generation is in the
#      stream, and the download has the GGUF and evopress_config.json;
#   2. the same recipe with two workers: every selection step's offspring are
#      parts that both workers compute (the database's levels would be too,
#      but job 1 built them all and they are the model's); once
#      the search has finished a generation, the worker holding the job is
#      killed (kill -9) and a fresh worker started: the job's lease expires,
#      the retried attempt reuses the levels database and resumes the search
#      at its last generation, and ends with the same configuration and
#      fitness curve as run 1. The levels database is the model's, on the
#      server: job 2 builds none of it, job 1 did;
#   3. a job with another target (0.45) and no search reuses the database too;
#   4. the recipe of run 1 again, with the server killed (kill -9) and restarted
#      on the same data after the first generation: the search goes on from
#      where it was (generation 0 runs once) and ends with run 1's curve.
# Usage: real_model_evopress_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF
set -euo pipefail
BIN=$1 PY=$2 SRC=$3 MODEL=${4:-}
[ -x "$PY" ] || { echo "python not found at '$PY' (run scripts/install-deps.sh)"; exit 1; }
[ -n "$MODEL" ] && [ -s "$MODEL" ] || { echo "COMPRESSD_REAL_MODEL is unset or missing"; exit 1; }
TEXT=$SRC/../shared/data/text
[ -d "$TEXT/sotu" ] || { echo "$TEXT: the shared text is missing"; exit 1; }
SERVER_FLAGS=(--lease-ttl-ms 4000 --heartbeat-interval-ms 500)
LOCAL_WORKERS=0
source "$(dirname "$0")/start_server.sh"
declare -A worker_pid
start_worker() {  # $1: name
  "$BIN/compress-worker" --server "$addr" --key-file "$work/data/worker.key" \
    --cache-dir "$work/cache-$1" --threads 1 --name "$1" \
    > "$work/$1.out" 2> "$work/$1.err" &
  worker_pid[$1]=$!
}
stop_workers() { for p in "${worker_pid[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'stop_workers; cleanup' EXIT

model=$(ctl models upload "$MODEL" --name smollm2)
data=$(ctl datasets upload "$TEXT" --name text)
cat > "$work/evopress.yaml" <<YAML
stages:
  - evopress: {mode: sparsity, target: 0.5, levels: [0.4, 0.5, 0.6], generations: 4,
               offspring: 4, survivors: [2, 1], step_tokens: [128, 256], seed: 7}
calibration: {dataset_id: $data, file: sotu, samples: 4, seq_len: 128, threads: 1}
output: {format: gguf}
evaluation:
  threads: 1
  perplexity:
    - {name: ppl-persuasion, dataset_id: $data, file: austen/persuasion.txt, windows: 2}
YAML

# 1. One worker.
start_worker solo
start=$(date +%s)
ctl jobs submit --model "$model" --recipe "$work/evopress.yaml" --dataset "$data" --wait \
  > "$work/job1.out" 2> "$work/job1.err" || { cat "$work/job1.err"; tail "$work/solo.err"; exit 1; }
echo "job 1 (1 worker): $(( $(date +%s) - start )) s"
job1=$(head -1 "$work/job1.out")
n_fit=$(grep -c "^generation [0-9]* fitness=" "$work/job1.out" || true)
[ "$n_fit" -eq 4 ] || { echo "expected 4 per-generation fitness lines, got $n_fit"; grep fitness "$work/job1.out"; exit 1; }
grep "^generation [0-9]* fitness=" "$work/job1.out"
summary "$job1"
curve1=$(field "$work/$job1.json" 's["evopress"]["fitness_curve"]')
built1=$(field "$work/$job1.json" 's["evopress"]["levels_db"]["entries_built"]')
echo "job 1: fitness curve $curve1, $built1 database entries built"
[ "$built1" -gt 0 ] || { echo "job 1 built no database entries"; exit 1; }
ctl artifacts download "$job1" --out "$work/out1"
[ -s "$work/out1/model.gguf" ] && [ -s "$work/out1/evopress_config.json" ] ||
  { echo "job 1: model.gguf or evopress_config.json missing"; ls "$work/out1"; exit 1; }
kill "${worker_pid[solo]}"; wait "${worker_pid[solo]}" 2>/dev/null || true
unset 'worker_pid[solo]'

# 2. Two workers, the job's worker killed after the first generation.
start_worker a
start_worker b
job2=$(ctl jobs submit --model "$model" --recipe "$work/evopress.yaml" --dataset "$data")
wait_progress "$job2" search 1
holder=""
for w in a b; do grep -q "(job $job2, attempt 1)" "$work/$w.err" && holder=$w; done
[ -n "$holder" ] || { echo "no worker holds job 2"; exit 1; }
other=$([ "$holder" = a ] && echo b || echo a)
parts_other=$(grep -c "part evopress/.* completed" "$work/$other.err" || true)
parts_holder=$(grep -c "part evopress/.* completed" "$work/$holder.err" || true)
echo "job 2: worker $holder holds it; parts completed for it by worker $other: $parts_other"
[ "$parts_other" -ge 1 ] || { echo "the other worker computed no part"; exit 1; }
kill -9 "${worker_pid[$holder]}"
start_worker c
ctl jobs watch "$job2" > "$work/job2.out" 2>&1 || { echo "job 2 failed"; tail "$work/job2.out"; exit 1; }
summary "$job2"
attempts=$(field "$work/$job2.job.json" 's.get("attempts", 0)')
resumed=$(field "$work/$job2.json" 's["evopress"]["resumed_generations"]')
built=$(field "$work/$job2.json" 's["evopress"]["levels_db"]["entries_built"]')
curve2=$(field "$work/$job2.json" 's["evopress"]["fitness_curve"]')
echo "job 2: attempts $attempts, resumed after $resumed generations, $built database entries built"
echo "job 2: fitness curve $curve2"
[ "$attempts" -ge 2 ] && [ "$resumed" -ge 1 ] || { echo "job 2 did not resume its search"; exit 1; }
[ "$built" -eq 0 ] || { echo "job 2 built $built database entries: job 1's were not reused"; exit 1; }
[ "$curve1" = "$curve2" ] || { echo "fitness curves differ"; exit 1; }
ctl artifacts download "$job2" --out "$work/out2"
"$PY" - "$work/out1/evopress_config.json" "$work/out2/evopress_config.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a == b, "the configurations differ"
print("configurations equal: mean level", a["mean_level"])
PY
cmp "$work/out1/model.gguf" "$work/out2/model.gguf" || { echo "GGUF files differ"; exit 1; }

# 3. Another target on the same model and calibration set: the database is reused.
sed -e 's/target: 0.5,/target: 0.45,/' -e 's/generations: 4,/generations: 0,/' \
  "$work/evopress.yaml" > "$work/evopress3.yaml"
ctl jobs submit --model "$model" --recipe "$work/evopress3.yaml" --dataset "$data" --wait \
  > "$work/job3.out" 2> "$work/job3.err" || { cat "$work/job3.err"; exit 1; }
job3=$(head -1 "$work/job3.out")
summary "$job3"
built3=$(field "$work/$job3.json" 's["evopress"]["levels_db"]["entries_built"]')
reused3=$(field "$work/$job3.json" 's["evopress"]["levels_db"]["entries_reused"]')
echo "job 3 (target 0.45): $built3 database entries built, $reused3 reused"
[ "$built3" -eq 0 ] && [ "$reused3" -gt 0 ] || { echo "job 3 did not reuse the database"; exit 1; }

# 4. The server restarted in the middle of a search.
job4=$(ctl jobs submit --model "$model" --recipe "$work/evopress.yaml" --dataset "$data")
wait_progress "$job4" search 1
restart_server
ctl jobs watch "$job4" > "$work/job4.out" 2>&1 || { echo "job 4 failed"; tail "$work/job4.out"; exit 1; }
summary "$job4"
curve4=$(field "$work/$job4.json" 's["evopress"]["fitness_curve"]')
gen0=$(grep -c "^generation 0 fitness=" "$work/job4.out" || true)
echo "job 4 (server restarted): generation 0 ran $gen0 time(s); fitness curve $curve4"
[ "$gen0" -eq 1 ] || { echo "the search started over after the server restart"; exit 1; }
[ "$curve1" = "$curve4" ] || { echo "job 4: fitness curves differ"; exit 1; }
echo "real_model_evopress_e2e: OK"
