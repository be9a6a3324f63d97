#!/usr/bin/env bash
# A ~1B-parameter model (the exact shapes of Llama-3.2-1B, synthetic BF16
# weights, SmolLM2's tokenizer: bench/bigmodel/make_synthetic.py) compressed
# block by block with SparseGPT 50% + GPTQ 4-bit on the real binary:
#   - the worker's peak resident memory stays under 70% of the BF16 file
#     (a whole-model engine needs at least twice the file: float32 weights);
#   - the memory estimate it reported is within 20% of that peak;
#   - the output (float32 safetensors) loads in transformers, whose
#     perplexity on real text equals our evaluation of the same directory.
# The solves run on blocks 0 and 1 only (targets), to keep the suite's time;
# every block is still read, run and written block by block.
# Usage: big_model_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL.gguf
set -euo pipefail
BIN=$1 PY=$2 SRC=$3 GGUF=$4
[ -f "$GGUF" ] || { echo "no real model at '$GGUF'"; exit 1; }
DATA=$SRC/../shared/data/text
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

"$PY" "$SRC/bench/bigmodel/make_synthetic.py" llama-3.2-1b "$work/model" --tokenizer-from "$GGUF"
file_bytes=$(stat -c %s "$work/model/model.safetensors")

cat > "$work/compress.yaml" <<YAML
stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 128}}}]
targets: {include: 'model\.layers\.[01]\..*_proj'}
calibration: {path: $DATA/sotu, samples: 4, seq_len: 128, threads: 2}
YAML
"$BIN/compress-worker" run --model "$work/model" --recipe "$work/compress.yaml" --out "$work/out" \
  > "$work/compress.json" 2> "$work/compress.log" || { tail -20 "$work/compress.log"; exit 1; }
grep -q "block by block" "$work/compress.log" || { echo "the job did not stream its blocks"; exit 1; }

"$PY" - "$work/compress.json" "$work/compress.log" "$file_bytes" <<'PY'
import json, re, sys
summary, log, file_bytes = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), int(sys.argv[3])
peak = summary["peak_rss_bytes"]
m = re.search(r"memory estimate: peak ([0-9.]+) (GiB|MiB)", log)
estimate = float(m.group(1)) * (2**30 if m.group(2) == "GiB" else 2**20)
print(f"peak RSS {peak / 2**20:.0f} MiB = {peak / file_bytes:.0%} of the {file_bytes / 2**30:.2f} GiB BF16 file; "
      f"estimate {estimate / 2**20:.0f} MiB ({estimate / peak - 1:+.0%})")
print("timing:", {k: round(v, 1) for k, v in summary["timing_seconds"].items()})
assert summary["totals"]["targeted_tensors"] == 14, summary["totals"]
assert peak < 0.70 * file_bytes, "peak RSS over 70% of the BF16 file"
assert abs(estimate / peak - 1) <= 0.20, "estimate more than 20% off the measured peak"
PY

# transformers against our evaluation, on the compressed output.
cat > "$work/evaluate.yaml" <<YAML
evaluation: {threads: 2, perplexity: [{name: persuasion, path: $DATA/austen/persuasion.txt, windows: 2, window: 128}]}
YAML
"$BIN/compress-worker" run --model "$work/out" --recipe "$work/evaluate.yaml" --out "$work/eval" \
  > "$work/evaluate.json" 2> "$work/evaluate.log" || { tail -20 "$work/evaluate.log"; exit 1; }
"$PY" "$SRC/tests/python/check_logits.py" "$work/out" "$DATA/austen/persuasion.txt" 128 2 \
  "$work/evaluate.json"
echo "big_model_e2e: OK"
