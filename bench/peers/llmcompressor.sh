#!/usr/bin/env bash
# One one-shot job on the real SmolLM2-135M by llm-compressor (PyPI
# llmcompressor, CPU) and by compressd, on the same calib-sotu windows
# (128 x 512, seed 0), one after the other on the same cores, both outputs
# measured by one evaluator (transformers; bench/peers/peer_llmcompressor.py).
#   --method gptq (default): GPTQ W4A16, int4 symmetric groups of 64
#     (SmolLM2's 576 inputs are not a multiple of 128, which llm-compressor
#     refuses), act-order with static groups: both sides' defaults;
#   --method sparsegpt: SparseGPT 50% unstructured on the q/k/v/o/gate/up/down
#     projections, both sides' defaults otherwise;
#   --method w8a8: SmoothQuant (strength 0.5, the norm-fed q/k/v and gate/up
#     mappings: both sides' defaults) then GPTQ with int8 weights per channel
#     and int8 activations per token (llm-compressor's W8A8 preset), written as
#     compressed-tensors int-quantized by both;
#   --method fp8: GPTQ with FP8 (E4M3) weights per channel and E4M3
#     activations per token (llm-compressor's FP8_DYNAMIC preset), written as
#     compressed-tensors float-quantized by both.
# Prints the markdown table of docs/results.md ("Side by side with llm-compressor").
#
#   --compute bf16: compressd's forward passes in BF16 (recipe `compute: bf16`).
# Usage: bench/peers/llmcompressor.sh [--method gptq|sparsegpt|w8a8|fp8] [--out DIR] [--samples N]
#        [--windows N] [--compute fp32|bf16]
# Needs build/bin/compress-worker, the test venv (scripts/install-deps.sh) and
# llm-compressor's own venv, .cache/venv-lc (created here on first use: it pins
# torch / transformers / compressed-tensors versions of its own). Opt-in: not
# part of the test suite (about 15 minutes on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="" METHOD=gptq SAMPLES=128 WINDOWS=16 THREADS=2 COMPUTE=fp32
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --method) METHOD="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;;
    --windows) WINDOWS="$2"; shift 2 ;;
    --compute) COMPUTE="$2"; shift 2 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
[[ "$METHOD" =~ ^(gptq|sparsegpt|w8a8|fp8)$ ]] || { echo "--method gptq|sparsegpt|w8a8|fp8"; exit 2; }
OUT=${OUT:-/tmp/peer-$METHOD}
export THREADS
PY="$ROOT/.venv/bin/python"
LC="$ROOT/.cache/venv-lc"
MODEL="${COMPRESSD_REAL_MODEL:-$ROOT/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[[ -f "$MODEL" ]] || "$ROOT/scripts/fetch-model.sh"
if [[ ! -x "$LC/bin/python" ]] || ! "$LC/bin/python" -c "import llmcompressor, gguf" 2>/dev/null; then
  python3 -m venv "$LC"
  "$LC/bin/pip" install -q "llmcompressor==0.14.0.1" gguf
fi
mkdir -p "$OUT"
cd "$ROOT"  # the recipe names ../shared/data/text relative to the checkout
PEER=bench/peers/peer_llmcompressor.py

"$PY" "$PEER" windows "$OUT/windows.npy" --samples "$SAMPLES" > "$OUT/windows.json" 2> "$OUT/windows.log"

if [[ "$METHOD" == gptq ]]; then
  STAGES='[{gptq: {grid: {bits: 4, group_size: 64}}}]' FORMAT=compressed_tensors
elif [[ "$METHOD" == fp8 ]]; then
  STAGES='[{gptq: {grid: {type: fp8}, activations: {bits: 8}}}]' FORMAT=compressed_tensors
elif [[ "$METHOD" == w8a8 ]]; then
  STAGES='[{gptq: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}, smoothquant: {}}}]'
  FORMAT=compressed_tensors
else
  STAGES='[{sparsegpt: {sparsity: 0.5}}]' FORMAT=hf_safetensors
fi
cat > "$OUT/ours.yaml" <<YAML
stages: $STAGES
calibration: {path: ../shared/data/text/sotu, samples: $SAMPLES, seq_len: 512, seed: 0, threads: $THREADS}
compute: $COMPUTE
output: {format: $FORMAT}
YAML
start=$(date +%s.%N)
build/bin/compress-worker run --model "$MODEL" --recipe "$OUT/ours.yaml" --out "$OUT/ours" \
  > "$OUT/ours.json" 2> "$OUT/ours.log"
echo "{\"wall_s\": $(echo "$(date +%s.%N) - $start" | bc)}" > "$OUT/ours.time.json"

"$LC/bin/python" "$PEER" llmcompressor "$OUT/windows.npy" "$OUT/lc" --method "$METHOD" \
  > "$OUT/lc.json" 2> "$OUT/lc.log"

"$PY" "$PEER" evaluate "$OUT/ours" --windows "$WINDOWS" > "$OUT/ours.eval.json" 2> "$OUT/ours.eval.log"
"$PY" "$PEER" evaluate "$OUT/lc" --windows "$WINDOWS" > "$OUT/lc.eval.json" 2> "$OUT/lc.eval.log"

"$PY" - "$OUT" "$METHOD" <<'PY'
import json, os, sys
out, method = sys.argv[1], sys.argv[2]
# The last line of each file is its JSON (llm-compressor logs to stdout too).
j = lambda n: json.loads(open(os.path.join(out, n)).read().strip().splitlines()[-1])
win, ours, lc = j("windows.json"), j("ours.json"), j("lc.json")
assert win["text_tokens"] == ours["calibration"]["text_tokens"], "different calibration text"
quantized = [j(n + ".eval.json")["act_quant_linears"] for n in ("ours", "lc")]
# W8A8 is only compared when both checkpoints run their activations quantized.
assert (quantized[0] == quantized[1] > 0) == (method in ("w8a8", "fp8")), quantized
t = ours["timing_seconds"]
core = t["forward"] + t["hessian"] + t["solve"] + t["error"]
name = "compressd" + (", compute: bf16" if ours.get("compute") == "bf16" else "")
rows = [(name, j("ours.eval.json"), core, j("ours.time.json")["wall_s"]),
        (f"llm-compressor {lc['version']}", j("lc.eval.json"), lc["oneshot_s"],
         lc["oneshot_s"] + lc["save_s"])]
print(f"calibration: {ours['calibration']['samples']} x {ours['calibration']['seq_len']} tokens "
      f"of calib-sotu (seed 0), the same windows on both sides; llm-compressor's modifier "
      f"{lc['modifier']}")
print("| | ppl-persuasion | ppl-kjv | KL (Persuasion) | top-1 | calibration + solve s | job wall s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, e, c, wall in rows:
    print(f"| {name} | {e['ppl-persuasion']:.2f} | {e['ppl-kjv']:.2f} | {e['kl']:.4f} | "
          f"{e['top1']:.3f} | {c:.0f} | {wall:.0f} |")
print(f"\n(perplexity on the first {rows[0][1]['windows']} windows of each set)")
print(f"speed: compressd x{rows[1][2] / rows[0][2]:.2f} on calibration + solve, "
      f"x{rows[1][3] / rows[0][3]:.2f} on the job")
PY
