#!/usr/bin/env bash
# Byte-identical outputs across a refactor: runs a fixed set of recipes with
# `compress-worker run` on the real model (SmolLM2-135M GGUF) and compares the
# sha256 of every output file and every numeric field of each summary (timings,
# peak RSS and other wall-clock figures excepted) with the values recorded in
# expected.json before the change.
#
# usage: tests/regression/outputs_identical.sh WORKER MODEL.gguf [--record]
#   WORKER  the compress-worker binary; MODEL the real model's GGUF.
#   --record  writes expected.json from this run instead of comparing.
# Every recipe pins its thread counts. Float results also depend on the CPU's
# kernels (OpenBLAS picks them per CPU), so expected.json holds one record per
# CPU (outputs_identical.py); on a CPU without one the test is skipped (exit
# 77), visibly, before any job runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
worker=$1; model=$2; mode=${3:-compare}
data=${COMPRESSD_SHARED_DATA:-$here/../../../shared/data}
[ -f "$data/text/austen/persuasion.txt" ] || { echo "no shared data at $data" >&2; exit 2; }
py=${COMPRESSD_PYTHON:-python3}
if [ "$mode" != --record ]; then
  "$py" "$here/outputs_identical.py" has-record "$here/expected.json" || exit $?
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

calib="calibration: {path: $data/text/sotu, samples: 4, seq_len: 128, threads: 2}"
evalp="evaluation: {threads: 2, kl: true, perplexity: [{name: ppl-persuasion, path: $data/text/austen/persuasion.txt, windows: 2, window: 256}]}"

recipe() { printf '%s\n' "$2" > "$work/$1.yaml"; }
recipe evaluate "evaluation: {threads: 2, perplexity: [{name: ppl-persuasion, path: $data/text/austen/persuasion.txt, windows: 2, window: 256}]}"
recipe magnitude "stages: [{magnitude: {sparsity: 0.5}}]
targets: {include: '.*_proj\$'}
$evalp"
recipe sparsegpt_gptq_gguf "stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 128}, act_order: false}}]
$calib
output: {format: gguf}
$evalp"
# massive_fallback: false: the arithmetic these outputs were recorded with
# (before the fallback existed, on an AMD CPU this test cannot be re-recorded on).
recipe gptq_packed "stages: [{gptq: {grid: {bits: 4, group_size: 64}, act_order: true, static_groups: true,
  massive_fallback: false}}]
$calib
output: {format: gptq}"
recipe evopress "stages: [{evopress: {mode: sparsity, target: 0.5, levels: [0.4, 0.5, 0.6], generations: 2, offspring: 4, survivors: [2, 1], step_tokens: [128, 256], seed: 7}}]
targets: {include: 'model\\.layers\\.[0-1]\\..*_proj\$'}
$calib
output: {format: gguf}
$evalp"
# The HF tensor-by-tensor path: N:M magnitude on the F32 HF export of the first job.
recipe hf_nm "stages: [{magnitude: {pattern: '2:4'}}]
targets: {include: '.*_proj\$', ignore: ['lm_head']}"

run() {  # name input
  echo "== $1" >&2
  "$worker" run --model "$2" --recipe "$work/$1.yaml" --out "$work/out/$1" \
    > "$work/$1.summary.json" 2> "$work/$1.log" || { tail -20 "$work/$1.log" >&2; exit 1; }
}
for r in evaluate magnitude sparsegpt_gptq_gguf gptq_packed evopress; do run "$r" "$model"; done
run hf_nm "$work/out/magnitude"

case "$mode" in
  --record) "$py" "$here/outputs_identical.py" record "$work" "$here/expected.json" ;;
  *) "$py" "$here/outputs_identical.py" compare "$work" "$here/expected.json" ;;
esac
