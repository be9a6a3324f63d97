#!/usr/bin/env bash
# The real model through the Hugging Face -> GGUF path, where the GGUF's
# tokenizer is converted from tokenizer.json (docs/families.md, GGUF output):
#   1. the SmolLM2 GGUF exported to an HF directory (BF16, tokenizer.json and
#      tokenizer_config.json written from the GGUF's tokenizer);
#   2. that directory compressed with RTN 4-bit g32 to a GGUF: its tokenizer
#      comes from the HF tokenizer.json;
#   3. llama.cpp (llama-cpp-python) runs it: perplexity within 1% of ours on
#      the same file, and its token ids on persuasion.txt, the edge cases and
#      the chat prompt equal the HF directory's tokenizer's
#      (tests/python/check_hf_tokenizer.py).
# Usage: real_model_hf_gguf_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF
set -euo pipefail
BIN=$1 PY=$2 SRC=$3 MODEL=${4:-}
[ -x "$PY" ] || { echo "python not found at '$PY' (run scripts/install-deps.sh)"; exit 1; }
[ -n "$MODEL" ] && [ -s "$MODEL" ] || { echo "COMPRESSD_REAL_MODEL is unset or missing"; exit 1; }
PERSUASION=$SRC/../shared/data/text/austen/persuasion.txt
[ -s "$PERSUASION" ] || { echo "$PERSUASION: the shared text is missing"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {  # RECIPE MODEL OUT: compress-worker run, the summary in OUT.json
  "$BIN/compress-worker" run --model "$2" --recipe "$1" --out "$3" > "$3.json" 2> "$3.log" \
    || { tail -20 "$3.log"; exit 1; }
}

# 1. GGUF -> HF (one layer touched so the job writes a model).
cat > "$work/to_hf.yaml" <<'YAML'
stages: [{rtn: {grid: {bits: 8, group_size: 32}}}]
targets: {include: "model\\.layers\\.0\\.self_attn\\.q_proj"}
output: {format: hf_safetensors, dtype: bf16}
YAML
run "$work/to_hf.yaml" "$MODEL" "$work/hf"
[ -s "$work/hf/tokenizer.json" ] || { echo "no tokenizer.json in the HF export"; exit 1; }

# 2. HF -> GGUF, RTN 4-bit g32 on every projection.
cat > "$work/to_gguf.yaml" <<'YAML'
stages: [{rtn: {grid: {bits: 4, group_size: 32}}}]
output: {format: gguf}
YAML
run "$work/to_gguf.yaml" "$work/hf" "$work/gguf"
grep -q "GGUF tokenizer converted from" "$work/gguf.log" \
  || { echo "the GGUF's tokenizer was not converted from tokenizer.json"; exit 1; }

# 3. llama.cpp on the file, against ours on the same file.
cat > "$work/eval.yaml" <<YAML
evaluation: {threads: 2, perplexity: [{name: persuasion, path: $PERSUASION, windows: 4, window: 512}]}
YAML
run "$work/eval.yaml" "$work/gguf/model.gguf" "$work/eval"
ppl=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["evaluation"]["datasets"][0]["perplexity"]["dense"])' "$work/eval.json")
"$PY" "$SRC/tests/python/check_gguf_llamacpp.py" "$work/gguf/model.gguf" --text "$PERSUASION" \
  --windows 4 --expect "$ppl" --tolerance 0.01
"$PY" "$SRC/tests/python/check_hf_tokenizer.py" "$work/gguf/model.gguf" "$work/hf" "$PERSUASION"
echo "real_model_hf_gguf_e2e: OK (ours $ppl)"
