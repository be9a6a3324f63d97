#!/usr/bin/env bash
# output.format: compressed_tensors on the real model (SmolLM2-135M GGUF), as a
# user runs it with `compress-worker run`, checked by the real consumers
# (tests/python/check_compressed_tensors.py): PyPI compressed-tensors
# decompresses every packed module to the weights of the same job's float32
# export (up to the float16 scales), and transformers loads the checkpoint
# through its compressed-tensors integration with the float export's
# perplexity within 1%.
#
#   1. RTN 4-bit g64 symmetric, every projection (strategy group);
#   2. RTN 3-bit per channel asymmetric (codes straddling words, packed zero
#      points), down_proj left dense (listed in `ignore`);
#   3. RTN 8-bit per channel (W8A16);
#   4. GPTQ 4-bit g64 with the defaults (act-order with static groups) on a
#      small calibration set, through the block-at-a-time path (an HF input).
#   5. RTN 4-bit g64 with AWQ on the same path (rescaled norms streamed out);
#   6. SparseGPT 2:4 jointly quantized to 4-bit g64: the pruned weights are
#      codes of zero, so the decompressed weights keep the 2:4 pattern
#      (compressed-tensors > 0.14 has no sparse formats left: docs/algorithms.md);
#   7. what it refuses: act-order without static groups, before any work.
#
# usage: compressed_tensors_e2e.sh WORKER MODEL.gguf   (COMPRESSD_PYTHON: the venv)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
worker=$1; model=$2
py=${COMPRESSD_PYTHON:?COMPRESSD_PYTHON must name the Python with compressed-tensors}
data=${COMPRESSD_SHARED_DATA:-$src/../shared/data}
tokens=$src/tests/golden/fixtures/nn_ppl_persuasion_tokens.bin
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$py" -c "import importlib.util as u, sys; sys.exit(u.find_spec('compressed_tensors') is None)" ||
  { echo "compressed-tensors is not installed in $py (tests/python/requirements.txt)" >&2; exit 1; }

run() {  # name model stages targets format checkpoint-dir [calibration]
  local name=$1 input=$2 stages=$3 targets=$4 format=$5 ck=$6 calib=${7:-}
  printf 'stages: %s\ntargets: %s\noutput: {format: %s}\n%s\n' \
    "$stages" "$targets" "$format" "$calib" > "$work/$name.yaml"
  "$worker" run --model "$input" --recipe "$work/$name.yaml" --out "$work/$name" \
    --checkpoint-dir "$ck" > "$work/$name.json" 2> "$work/$name.log" ||
    { tail -20 "$work/$name.log" >&2; exit 1; }
}
check() {  # name bits strategy symmetric [more check_compressed_tensors.py flags]
  echo "== $1" >&2
  "$py" "$src/tests/python/check_compressed_tensors.py" "$work/$1.ct" --reference "$work/$1.f32" \
    --tokens "$tokens" --windows 2 --window 256 --expect-bits "$2" --expect-strategy "$3" \
    --expect-symmetric "$4" "${@:5}" 2>&1 | grep -v "it/s\]" || { echo "FAIL: $1" >&2; exit 1; }
}
# The float export resumes the packed job's block checkpoints (the output
# format is not part of their fingerprint), so a calibrated job is solved once
# and both files hold the same weights; the float job must have resumed them.
both() {  # name model stages targets [calibration]
  run "$1.ct" "$2" "$3" "$4" compressed_tensors "$work/$1.ck" "${5:-}"
  run "$1.f32" "$2" "$3" "$4" hf_safetensors "$work/$1.ck" "${5:-}"
  if [ -n "${5:-}" ]; then
    grep -q '"resumed_blocks":30' "$work/$1.f32.json" ||
      { echo "FAIL: $1: the float export did not resume the packed job's blocks" >&2; exit 1; }
  fi
}

both rtn4 "$model" '[{rtn: {grid: {bits: 4, group_size: 64}}}]' "{include: '.*_proj\$'}"
check rtn4 4 group true
both rtn3 "$model" '[{rtn: {grid: {bits: 3, group_size: -1, asymmetric: true}}}]' \
  "{include: '.*_proj\$', ignore: ['.*down_proj']}"
check rtn3 3 channel false
grep -q '"re:.\*\\\\.mlp\\\\.down_proj\$"' "$work/rtn3.ct/config.json" ||
  { echo "FAIL: rtn3: down_proj is not in ignore" >&2; cat "$work/rtn3.ct/config.json" >&2; exit 1; }
both rtn8 "$model" '[{rtn: {grid: {bits: 8, group_size: -1}}}]' "{include: '.*_proj\$'}"
check rtn8 8 channel true

# An HF input takes the block-at-a-time path: the float export of job 1 is it.
calib="calibration: {path: $data/text/sotu, samples: 8, seq_len: 128, threads: 2}"
both gptq "$work/rtn4.f32" '[{gptq: {grid: {bits: 4, group_size: 64}}}]' "{include: '.*_proj\$'}" "$calib"
check gptq 4 group true
grep -q "block by block" "$work/gptq.ct.log" || { echo "FAIL: the gptq job did not stream" >&2; exit 1; }
# AWQ on the same path: the rescaled norms and up_proj rows are streamed out
# with the blocks (the float export is the reference of the packed one).
both awq "$work/rtn4.f32" '[{rtn: {grid: {bits: 4, group_size: 64}, awq: {grid_points: 5}}}]' \
  "{include: '.*_proj\$'}" "$calib"
check awq 4 group true
grep -q "awq: model.layers.29.input_layernorm" "$work/awq.ct.log" ||
  { echo "FAIL: the awq job did not rescale block 29" >&2; exit 1; }

both nm "$work/rtn4.f32" \
  '[{sparsegpt: {pattern: "2:4", quantize: {bits: 4, group_size: 64}}}]' "{include: '.*_proj\$'}" \
  "$calib"
check nm 4 group true --expect-pattern 2:4

# Refused before any work, naming the field.
printf 'stages: [{gptq: {grid: {bits: 4}, static_groups: false}}]\n%s\noutput: {format: compressed_tensors}\n' \
  "$calib" > "$work/bad.yaml"
if "$worker" run --model "$model" --recipe "$work/bad.yaml" --out "$work/bad" > /dev/null 2> "$work/bad.log"; then
  echo "FAIL: act-order without static groups was accepted" >&2; exit 1
fi
grep -q "stages\[0\].gptq.static_groups: compressed_tensors output needs contiguous groups" "$work/bad.log" ||
  { echo "FAIL: unexpected error:" >&2; cat "$work/bad.log" >&2; exit 1; }
[ ! -e "$work/bad/model.safetensors" ] || { echo "FAIL: the refused job wrote a model" >&2; exit 1; }
echo "compressed_tensors e2e: all checks passed" >&2
