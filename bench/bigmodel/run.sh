#!/usr/bin/env bash
# Big-model benchmark through the service (opt-in: minutes to hours):
#   bench/bigmodel/run.sh BUILD_DIR SHAPE SAMPLES SEQ_LEN [MEMORY_BUDGET]
# writes a synthetic model of SHAPE (llama-3.2-1b, llama-3.1-8b: exact shapes,
# BF16, bench/bigmodel/make_synthetic.py), starts compressd with one
# worker of its own (--memory-budget, default 90% of RAM), uploads the model and the
# shared text, and runs SparseGPT 50% + GPTQ 4-bit g128 with SAMPLES x SEQ_LEN
# calibration tokens from the State of the Union speeches, block by block.
# Prints the summary's phases, the worker's peak RSS, the memory estimate, the
# peak disk use of the data directory (blobs + worker cache + output) sampled
# every 2 s, and the time extrapolated to the standard 128 x 2048 calibration
# (the phases that scale with tokens: forward and Hessian, linearly; the
# solves do not depend on the token count).
# Environment: FORMAT=gguf writes the model as one Q8_0 GGUF instead
# (make_synthetic.py --gguf-q8_0) and asks for a GGUF output, streamed tensor
# by tensor; TARGETS='regex' limits the targeted linears (targets.include),
# e.g. 'model\.layers\.[01]\..*_proj$' for the first two blocks.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(cd "${1:?usage: run.sh BUILD_DIR SHAPE SAMPLES SEQ_LEN [BUDGET]}" && pwd)/bin
SHAPE=${2:?}; SAMPLES=${3:?}; SEQ_LEN=${4:?}; BUDGET=${5:-}
PY=${COMPRESSD_PYTHON:-.venv/bin/python}
GGUF=${COMPRESSD_REAL_MODEL:-$(scripts/fetch-model.sh)}
TEXT=$(cd ../shared/data/text && pwd)
LOCAL_WORKERS=0
source tests/integration/start_server.sh
# One worker of our own, so that it gets the budget.
"$BIN/compress-worker" --server "$addr" --key-file "$work/data/worker.key" \
  --cache-dir "$work/data/worker-cache" --threads 2 \
  ${BUDGET:+--memory-budget "$BUDGET"} 2> "$work/worker.err" &
worker_pid=$!
trap 'kill $worker_pid 2>/dev/null; cleanup' EXIT

echo "== model ($SHAPE)"
FORMAT=${FORMAT:-hf}
gguf_flag=(); [ "$FORMAT" = gguf ] && gguf_flag=(--gguf-q8_0)
"$PY" bench/bigmodel/make_synthetic.py "$SHAPE" "$work/model" --tokenizer-from "$GGUF" "${gguf_flag[@]}"
disk_sample() {  # the data directory's size if larger than the peak so far
  local b peak; b=$(du -sb "$work/data" 2>/dev/null | cut -f1); peak=$(cat "$work/disk.peak")
  [ "${b:-0}" -gt "$peak" ] && echo "$b" > "$work/disk.peak"; return 0
}
echo 0 > "$work/disk.peak"
( while sleep 2; do disk_sample; done ) & sampler=$!
start=$(date +%s)
upload=$work/model; [ "$FORMAT" = gguf ] && upload=$work/model/model.gguf
model=$(ctl models upload "$upload" --name "$SHAPE")
data=$(ctl datasets upload "$TEXT" --name text)
echo "upload: $(( $(date +%s) - start )) s"
cat > "$work/recipe.yaml" <<YAML
stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 128}}}]
calibration: {dataset_id: $data, file: sotu, samples: $SAMPLES, seq_len: $SEQ_LEN}
YAML
[ "$FORMAT" = gguf ] && echo "output: {format: gguf}" >> "$work/recipe.yaml"
[ -n "${TARGETS:-}" ] && echo "targets: {include: '$TARGETS'}" >> "$work/recipe.yaml"
job=$(ctl jobs submit --model "$model" --recipe "$work/recipe.yaml" --dataset "$data")
ctl jobs watch "$job" > "$work/watch.log" || true
kill "$sampler"; disk_sample
summary "$job"
grep -h "memory estimate" "$work/watch.log" | head -1
"$PY" - "$work/$job.json" "$(cat "$work/disk.peak")" "$SAMPLES" "$SEQ_LEN" <<'PY'
import json, sys
s, disk, samples, seq_len = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t = s["timing_seconds"]
print("phases (s):", {k: round(v, 1) for k, v in t.items()})
print(f"worker peak RSS: {s['peak_rss_bytes'] / 2**30:.2f} GiB; data dir peak: {disk / 2**30:.2f} GiB")
scale = 128 * 2048 / (samples * seq_len)
extrapolated = t["total"] + (t["forward"] + t["hessian"]) * (scale - 1)
print(f"extrapolated to 128 x 2048 tokens: {extrapolated / 3600:.1f} h "
      f"(forward + hessian x {scale:.0f}; activations then {scale:.0f}x larger)")
PY
