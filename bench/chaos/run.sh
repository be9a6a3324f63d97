#!/usr/bin/env bash
# Chaos: JOBS jobs of mixed kinds on the real model while local workers and
# the server itself are killed with kill -9 at random moments (KILLS kills, a
# third of them the server, restarted on the same data and port). Then:
#   - every job ends exactly once (one terminal state event, SUCCEEDED);
#   - every output file is byte-identical to an undisturbed run of the same
#     recipe (run first, one job per kind);
#   - no compress-worker outlives the server, no temporary file is left in the
#     blob store or a worker's scratch space.
# Usage: bench/chaos/run.sh BUILD_DIR [JOBS] [KILLS] [SEED]   (opt-in: minutes of work)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(cd "${1:?usage: run.sh BUILD_DIR [JOBS] [KILLS] [SEED]}" && pwd)/bin
JOBS=${2:-20}; KILLS=${3:-30}; RANDOM=${4:-1}
PY=${COMPRESSD_PYTHON:-python3}
MODEL_FILE=${COMPRESSD_REAL_MODEL:-$(scripts/fetch-model.sh)}
TEXT=$(cd ../shared/data/text && pwd)
LOCAL_WORKERS=2
SERVER_FLAGS=(--lease-ttl-ms 4000 --heartbeat-interval-ms 500)
source tests/integration/start_server.sh

model=$(ctl models upload "$MODEL_FILE")
data=$(ctl datasets upload "$TEXT" --name text)
cat > "$work/magnitude.yaml" <<YAML
stages: [{magnitude: {sparsity: 0.5}}]
evaluation: {threads: 1, perplexity: [{name: p, dataset_id: $data, file: austen/persuasion.txt, windows: 1, window: 128}]}
YAML
cat > "$work/evaluate.yaml" <<YAML
evaluation: {threads: 1, perplexity: [{name: p, dataset_id: $data, file: austen/persuasion.txt, windows: 2, window: 128}]}
YAML
cat > "$work/calibrated.yaml" <<YAML
stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 128}}}]
calibration: {dataset_id: $data, file: sotu, samples: 2, seq_len: 64, threads: 1}
output: {format: gguf}
YAML
kinds=(magnitude evaluate calibrated)

# Output digests of a finished job: "path sha256" lines, sorted.
digests() { ctl jobs get "$1" --json | "$PY" -c '
import json, sys
job = json.load(sys.stdin)
for a in sorted(job.get("artifacts", []), key=lambda a: a["path"]):
    if a["path"] != "summary.json": print(a["path"], a["sha256"])'; }
state() { ctl jobs get "$1" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }

echo "== undisturbed: one job per kind"
for k in "${kinds[@]}"; do
  ctl jobs submit --model "$model" --recipe "$work/$k.yaml" --dataset "$data" --wait \
    > "$work/ref-$k.out" || { cat "$work/ref-$k.out"; exit 1; }
  j=$(head -1 "$work/ref-$k.out")
  digests "$j" > "$work/ref-$k"
  echo "$k: $(wc -l < "$work/ref-$k") files"
done

echo "== chaos: $JOBS jobs, $KILLS kills"
declare -a ids kind_of
for i in $(seq 0 $((JOBS - 1))); do
  k=${kinds[$((i % 3))]}
  # Attempts enough for the kills: each kill of a job's worker (or of the
  # server, which takes its workers with it) costs that job an attempt.
  ids[$i]=$(ctl jobs submit --model "$model" --recipe "$work/$k.yaml" --dataset "$data" \
    --max-attempts 50)
  kind_of[$i]=$k
done
server_kills=0; worker_kills=0
for n in $(seq "$KILLS"); do
  sleep "$(awk -v r=$RANDOM 'BEGIN{print 0.5 + (r % 25) / 10}')"
  if [ $((RANDOM % 3)) -eq 0 ]; then
    restart_server; server_kills=$((server_kills + 1))
  else
    pids=($(pgrep -f "compress-worker --server $addr" || true))
    [ ${#pids[@]} -gt 0 ] && kill -9 "${pids[$((RANDOM % ${#pids[@]}))]}" && worker_kills=$((worker_kills + 1))
  fi
done
echo "killed the server $server_kills times, a worker $worker_kills times"

echo "== waiting for every job"
for i in "${!ids[@]}"; do
  for _ in $(seq 1800); do
    s=$(state "${ids[$i]}")
    case "$s" in SUCCEEDED|FAILED|CANCELLED) break ;; esac
    sleep 1
  done
done
bad=0
for i in "${!ids[@]}"; do
  j=${ids[$i]}; s=$(state "$j")
  terminal=$( (ctl jobs watch "$j" --json 2>/dev/null || true) | "$PY" -c '
import json, sys
n = 0
for line in sys.stdin:
    e = json.loads(line)
    if e.get("state", {}).get("to") in ("SUCCEEDED", "FAILED", "CANCELLED"): n += 1
print(n)')
  digests "$j" > "$work/got-$i"
  if [ "$s" != SUCCEEDED ] || [ "$terminal" != 1 ] || ! cmp -s "$work/got-$i" "$work/ref-${kind_of[$i]}"; then
    echo "job $j (${kind_of[$i]}): state $s, $terminal terminal events, outputs $(cmp -s "$work/got-$i" "$work/ref-${kind_of[$i]}" && echo identical || echo DIFFERENT)"
    ctl jobs get "$j" --json | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print("  attempts", j.get("attempts"), "error:", j.get("error", "")[:300])' 
    bad=$((bad + 1))
  fi
done

echo "== leftovers"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
sleep 1
orphans=$(pgrep -f "compress-worker --server $addr" | wc -l || true)
tmp_files=$(find "$work/data/blobs/tmp" -type f 2>/dev/null | wc -l)
scratch=$(find "$work/data/worker-cache" -mindepth 3 -maxdepth 3 -path '*/tasks/*' 2>/dev/null | wc -l)
echo "orphan workers: $orphans, blob temp files: $tmp_files, task directories left: $scratch"
[ "$orphans" -eq 0 ] || bad=$((bad + 1))
[ "$tmp_files" -eq 0 ] || bad=$((bad + 1))
[ "$scratch" -eq 0 ] || bad=$((bad + 1))
echo "chaos: $JOBS jobs, $server_kills server kills, $worker_kills worker kills: $bad problems"
[ "$bad" -eq 0 ]
