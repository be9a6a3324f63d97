#!/usr/bin/env bash
# FP8 (E4M3) on the real model (SmolLM2-135M GGUF), as a user runs it with
# `compress-worker run`, written as compressed_tensors float-quantized:
#   1. RTN fp8 weights per channel, weight-only (format float-quantized, no
#      input_activations): the job reads its file back (the reload check) and
#      compressed-tensors decompresses it; transformers loads it with the
#      job's perplexity within 1% (dequantized at load and as compressed
#      modules);
#   2. RTN fp8 W8A8 (activations: {bits: 8}: fp8 weights, every linear's
#      input quantized to E4M3 per token at run time, vLLM's FP8 W8A8): worse
#      than the weights alone (the activation quantization is in the
#      evaluation), read back by the reload check, and evaluated by PyTorch
#      (tests/python/check_compressed_tensors.py --fp8 --w8a8:
#      compressed-tensors decompresses, hooks quantize every Linear's input
#      with vLLM's per-token fp8 formula) within 1%, and by transformers'
#      compressed modules (compressed-tensors' own fake quantization) within 3%;
#   3. GPTQ fp8 W8A8 calibrated on calib-sotu: better than RTN's.
# Usage: real_model_fp8_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF
set -euo pipefail
source "$(dirname "$0")/real_model_common.sh"
EVAL="evaluation: {threads: 2, skip_dense: true,
  perplexity: [{name: persuasion, path: $PERSUASION, windows: 8, window: 512}]}"
PPL='s["evaluation"]["datasets"][0]["perplexity"]["compressed"]'
CHECK=("$PY" "$SRC/tests/python/check_compressed_tensors.py" --fp8 --text "$PERSUASION"
  --tokenizer "$MODEL" --windows 8 --window 512 --ppl-tolerance 0.01 --expect-bits 8
  --expect-strategy channel --expect-symmetric true)

cat > "$work/fp8.yaml" <<YAML
stages: [{rtn: {grid: {type: fp8}}}]
output: {format: compressed_tensors}
$EVAL
YAML
run fp8
fp8=$(field "$work/fp8.json" "$PPL")
"${CHECK[@]}" "$work/fp8" --expect "$fp8" 2>&1 | grep -v "it/s\]"

cat > "$work/w8a8.yaml" <<YAML
stages: [{rtn: {grid: {type: fp8}, activations: {bits: 8}}}]
output: {format: compressed_tensors}
$EVAL
YAML
run w8a8
w8a8=$(field "$work/w8a8.json" "$PPL")
"${CHECK[@]}" "$work/w8a8" --expect "$w8a8" --w8a8 --ct-tolerance 0.03 2>&1 | grep -v "it/s\]"

cat > "$work/gptq.yaml" <<YAML
stages: [{gptq: {grid: {type: fp8}, activations: {bits: 8}}}]
calibration: {path: $DATA/sotu, samples: 16, seq_len: 256, threads: 2}
output: {format: compressed_tensors}
$EVAL
YAML
run gptq
gptq=$(field "$work/gptq.json" "$PPL")
echo "persuasion perplexity: FP8 weights (RTN) $fp8, FP8 W8A8 (RTN) $w8a8, FP8 W8A8 (GPTQ) $gptq"
"$PY" - "$fp8" "$w8a8" "$gptq" <<'PY'
import sys
fp8, w8a8, gptq = (float(x) for x in sys.argv[1:4])
assert w8a8 > fp8 * 1.002, f"activations quantized but perplexity {w8a8} vs weights-only {fp8}"
assert gptq < w8a8, f"GPTQ's fp8 W8A8 {gptq} is not better than RTN's {w8a8}"
PY
echo "real_model_fp8_e2e: OK"
