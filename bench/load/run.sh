#!/usr/bin/env bash
# SubmitJob throughput and latency under load, with 1000 WatchJob streams
# open: starts compressd on loopback (fresh data directory, no workers, so
# jobs stay QUEUED), runs load_bench against it, stops it. Results go in
# docs/benchmarks.md.
# Usage: bench/load/run.sh BUILD_DIR [SUBMITS] [CLIENTS] [WATCHERS] [RATE]
#   RATE: submits/s offered (open loop); 0 (default): closed loop.
#   COMPRESSD: the compressd binary (default BUILD_DIR/bin/compressd), e.g. an
#   older build to compare against.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:?usage: run.sh BUILD_DIR [SUBMITS] [CLIENTS] [WATCHERS]}
SUBMITS=${2:-2000}; CLIENTS=${3:-64}; WATCHERS=${4:-1000}; RATE=${5:-0}
SERVER_BIN=${COMPRESSD:-$BUILD/bin/compressd}
data=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
"$SERVER_BIN" --data-dir "$data" --grpc-port 0 --http-port 0 --local-workers 0 \
  --max-watch-streams-per-key 0 \
  > "$data/out" 2> "$data/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening" "$data/out" 2>/dev/null && break; sleep 0.1; done
grpc=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$data/out")
[ -n "$grpc" ] || { cat "$data/err"; exit 1; }
echo "compressd at $grpc ($(nproc) cores)"
export COMPRESSD_KEY_FILE="$data/admin.key"  # load_bench calls as the admin
ulimit -n 65536 2>/dev/null || true
"$BUILD/bench/load/load_bench" --server "$grpc" --submits "$SUBMITS" --clients "$CLIENTS" \
  --watchers "$WATCHERS" --rate "$RATE"
