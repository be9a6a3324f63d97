#!/usr/bin/env bash
# The real model through the whole service, checked by an independent
# consumer: start compressd with one local worker, upload the SmolLM2 GGUF and
# the ppl-persuasion text with compressctl, run a 50% magnitude job with
# evaluation (4 windows, KL), download the HF output and load it with PyPI
# transformers next to the GGUF itself (tests/python/check_transformers_load.py:
# exact zero counts, kept weights equal to transformers' own dequantization,
# untouched tensors bit-identical, finite logits), and its tokenizer files with
# transformers against llama.cpp's and transformers' own tokenization of the
# GGUF (tests/python/check_hf_tokenizer.py).
# Usage: real_model_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF
set -euo pipefail
BIN=$1 PY=$2 SRC=$3 MODEL=${4:-}
[ -x "$PY" ] || { echo "python with transformers not found at '$PY' (run scripts/install-deps.sh)"; exit 1; }
[ -n "$MODEL" ] && [ -s "$MODEL" ] || {
  echo "COMPRESSD_REAL_MODEL is unset or missing ('$MODEL'): run scripts/fetch-model.sh and" \
       "configure with -DCOMPRESSD_REAL_MODEL=<the path it prints>"; exit 1; }
TEXT=$SRC/../shared/data/text/austen/persuasion.txt
[ -s "$TEXT" ] || { echo "$TEXT: the shared text is missing"; exit 1; }
source "$(dirname "$0")/start_server.sh"

model=$(ctl models upload "$MODEL" --name smollm2)
dataset=$(ctl datasets upload "$TEXT" --name persuasion)
cat > "$work/prune.yaml" <<YAML
stages: [{magnitude: {sparsity: 0.5}}]
evaluation:
  perplexity:
    - {name: ppl-persuasion, dataset_id: $dataset, file: persuasion.txt, windows: 4}
  kl: true
YAML
job=$(ctl jobs submit --model "$model" --recipe "$work/prune.yaml")
ctl jobs watch "$job" > "$work/watch.out"
grep -q "perplexity" "$work/watch.out" || { echo "no perplexity metric in jobs watch"; cat "$work/watch.out"; exit 1; }
ctl jobs get "$job" --json > "$work/job.json"
"$PY" - "$work/job.json" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
s = json.loads(job["summary_json"])
d = s["evaluation"]["datasets"][0]["perplexity"]
print(f"ppl-persuasion (4 windows): dense {d['dense']:.4f}, 50% magnitude {d['compressed']:.4f}, "
      f"KL {s['evaluation']['kl']['mean_kl']:.4f}")
assert 5 < d["dense"] < 50, d
assert d["compressed"] > d["dense"], d
PY
ctl artifacts download "$job" --out "$work/pruned"
"$PY" "$SRC/tests/python/check_transformers_load.py" "$MODEL" "$work/pruned" --sparsity 0.5
# The export carries the GGUF's tokenizer: tokenizer.json gives llama.cpp's ids.
[ -s "$work/pruned/tokenizer.json" ] && [ -s "$work/pruned/tokenizer_config.json" ] ||
  { echo "the HF export has no tokenizer files"; ls "$work/pruned"; exit 1; }
"$PY" "$SRC/tests/python/check_hf_tokenizer.py" "$MODEL" "$work/pruned" "$TEXT"
echo "real_model_e2e: OK"
