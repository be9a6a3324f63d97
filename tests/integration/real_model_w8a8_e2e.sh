#!/usr/bin/env bash
# W8A8 and SmoothQuant on the real model (SmolLM2-135M GGUF), as a user runs
# them with `compress-worker run`:
#   1. RTN int8 per channel, weights only: the baseline perplexity;
#   2. the same with activations: {bits: 8} (every linear's input quantized
#      per token at run time, written as compressed_tensors int-quantized):
#      worse than the weights alone, so the activation quantization is in the
#      job's evaluation;
#   3. GPTQ W8A8 with SmoothQuant (llm-compressor's W8A8 recipe), calibrated on
#      calib-sotu: the summary lists SmoothQuant's two groups per block with
#      the largest activations shrunk, and the job read its file back (the
#      reload check);
#   4. that file evaluated by us (an evaluate-only job on the downloaded
#      checkpoint) and by PyTorch (tests/python/check_compressed_tensors.py
#      --w8a8: compressed-tensors decompresses the weights, hooks quantize
#      every Linear's input with vLLM's per-token formula): within 1%, and
#      transformers' own compressed modules (compressed-tensors' slightly
#      different fake quantization) within 3%. 8 windows of 512: W8A8's
#      perplexity moves with the last bits of the weights (0.3% over 8 windows,
#      2% over 2 windows of 256; docs/algorithms.md "W8A8").
#   5. RTN W8A8 with smoothquant: {down_proj: true}: a third group per block,
#      down_proj's inputs folded into up_proj's rows, where the largest
#      activations are (thousands, against tens at the norms): shrunk.
# Usage: real_model_w8a8_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF
set -euo pipefail
source "$(dirname "$0")/real_model_common.sh"
run() {  # NAME [MODEL]: compress-worker run of NAME.yaml, the summary in NAME.json
  "$BIN/compress-worker" run --model "${2:-$MODEL}" --recipe "$work/$1.yaml" --out "$work/$1" \
    > "$work/$1.json" 2> "$work/$1.log" || { tail -20 "$work/$1.log"; exit 1; }
}
EVAL="evaluation: {threads: 2, skip_dense: true,
  perplexity: [{name: persuasion, path: $PERSUASION, windows: 8, window: 512}]}"
PPL='s["evaluation"]["datasets"][0]["perplexity"]["compressed"]'
W8='grid: {bits: 8, group_size: -1}'

cat > "$work/w8.yaml" <<YAML
stages: [{rtn: {$W8}}]
$EVAL
YAML
run w8
w8=$(field "$work/w8.json" "$PPL")

cat > "$work/w8a8.yaml" <<YAML
stages: [{rtn: {$W8, activations: {bits: 8}}}]
output: {format: compressed_tensors}
$EVAL
YAML
run w8a8
w8a8=$(field "$work/w8a8.json" "$PPL")

cat > "$work/sq.yaml" <<YAML
stages: [{gptq: {$W8, activations: {bits: 8}, smoothquant: {alpha: 0.5}}}]
calibration: {path: $DATA/sotu, samples: 16, seq_len: 256, threads: 2}
output: {format: compressed_tensors}
$EVAL
YAML
run sq
sq=$(field "$work/sq.json" "$PPL")
grep -q "reload check passed" "$work/sq.log" || { echo "FAIL: no passed reload check"; exit 1; }
grep -q "smoothquant: model.layers.29.input_layernorm" "$work/sq.log" ||
  { echo "FAIL: no SmoothQuant log line for block 29"; exit 1; }

cat > "$work/file.yaml" <<YAML
evaluation: {threads: 2, perplexity: [{name: persuasion, path: $PERSUASION, windows: 8, window: 512}]}
YAML
run file "$work/sq"
file=$(field "$work/file.json" 's["evaluation"]["datasets"][0]["perplexity"]["dense"]')
echo "persuasion perplexity: W8 $w8, W8A8 (RTN) $w8a8, W8A8 (GPTQ + SmoothQuant) $sq," \
  "its file evaluated $file"
"$PY" - "$work/sq.json" "$w8" "$w8a8" "$sq" "$file" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
w8, w8a8, sq, file = (float(x) for x in sys.argv[2:6])
assert w8a8 > w8 * 1.01, f"activations quantized but perplexity {w8a8} vs weights-only {w8}"
assert abs(file - sq) / sq < 0.01, f"the file evaluates to {file}, the job said {sq}"
entries = s["calibration"]["smoothquant"]
assert len(entries) == 60, len(entries)
kinds = sorted({e["folded_into"].split(".")[-1] for e in entries})
assert kinds == ["input_layernorm", "post_attention_layernorm"], kinds
shrunk = sum(e["x_max_smoothed"] < e["x_max"] for e in entries)
assert shrunk >= 50, f"the activation range shrank in only {shrunk} of 60 groups"
worst = max(entries, key=lambda e: e["x_max"])
print(f"SmoothQuant: largest activation {worst['x_max']:.1f} -> {worst['x_max_smoothed']:.2f} "
      f"({worst['folded_into']}); range shrunk in {shrunk} of 60 groups")
PY
"$PY" "$SRC/tests/python/check_compressed_tensors.py" "$work/sq" --expect "$file" --w8a8 \
  --text "$PERSUASION" --tokenizer "$MODEL" --windows 8 --window 512 --ppl-tolerance 0.01 \
  --ct-tolerance 0.03 --expect-bits 8 --expect-strategy channel --expect-symmetric true 2>&1 |
  grep -v "it/s\]"

cat > "$work/down.yaml" <<YAML
stages: [{rtn: {$W8, activations: {bits: 8}, smoothquant: {down_proj: true}}}]
calibration: {path: $DATA/sotu, samples: 16, seq_len: 256, threads: 2}
output: {format: compressed_tensors}
YAML
run down
grep -q "reload check passed" "$work/down.log" || { echo "FAIL: no passed reload check"; exit 1; }
"$PY" - "$work/down.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
entries = s["calibration"]["smoothquant"]
assert len(entries) == 90, len(entries)
down = [e for e in entries if e["folded_into"].endswith("mlp.up_proj")]
assert len(down) == 30 and all(e["linears"].endswith("mlp.down_proj") for e in down), down[:2]
worst = max(down, key=lambda e: e["x_max"])
norms = max(e["x_max"] for e in entries if e not in down)
assert worst["x_max"] > 10 * norms, (worst, norms)
assert worst["x_max_smoothed"] < worst["x_max"] / 10, worst
print(f"down_proj smoothed: largest input {worst['x_max']:.0f} -> {worst['x_max_smoothed']:.1f} "
      f"({worst['linears']}; the norms' largest {norms:.1f})")
PY
echo "real_model_w8a8_e2e: OK"
