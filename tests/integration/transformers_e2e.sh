#!/usr/bin/env bash
# The whole service path checked by an independent consumer: start compressd
# with one local worker, upload a synthetic Llama with compressctl, run a 50%
# magnitude job and a 2:4 job, download the artifacts, and load them with
# PyPI transformers (tests/python/check_transformers_load.py).
# Usage: transformers_e2e.sh BIN_DIR PYTHON SOURCE_DIR
set -euo pipefail
BIN=$1 PY=$2 SRC=$3
[ -x "$PY" ] || { echo "python with transformers not found at '$PY' (run scripts/install-deps.sh)"; exit 1; }
source "$(dirname "$0")/start_server.sh"
"$BIN/make-tiny-llama" "$work/model" --dtype bf16

model=$(ctl models upload "$work/model" --name tiny-bf16)
run_job() {  # NAME RECIPE CHECK_ARGS...
  local name=$1 recipe=$2; shift 2
  printf '%s\n' "$recipe" > "$work/$name.yaml"
  local job
  job=$(ctl jobs submit --model "$model" --recipe "$work/$name.yaml")
  ctl jobs watch "$job" > "$work/$name.watch"
  ctl artifacts download "$job" --out "$work/$name"
  "$PY" "$SRC/tests/python/check_transformers_load.py" "$work/model" "$work/$name" "$@"
}
run_job unstructured 'stages: [{magnitude: {sparsity: 0.5}}]' --sparsity 0.5
run_job two_four 'stages: [{magnitude: {pattern: "2:4"}}]' --pattern 2:4
echo "transformers_e2e: OK"
