#!/usr/bin/env bash
# One decoder family end to end (tests/golden/make_family_model.py builds a
# tiny random-weight model from the family's transformers config class, with
# SmolLM2's tokenizer):
#   1. our evaluation of the model equals transformers' (perplexity on real
#      text within 1e-4 relative: tests/python/check_logits.py);
#   2. SparseGPT 50% + GPTQ 4-bit (group 32) through the service, calibrated
#      on real text; the output loads in transformers with no missing or
#      unexpected weight, every projection at least half zeros with at most 16
#      values per group of a row, everything else (norms, the family's own
#      q/k norms or biases) is the original's;
#   3. our evaluation of that output equals transformers' too;
#   4. GPTQ 4-bit to the GPTQ-packed format, unpacked independently and run in
#      transformers as the family's class: perplexity within 1% of ours.
# Usage: family_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF FAMILY
set -euo pipefail
BIN=$1 PY=$2 SRC=$3 GGUF=$4 FAMILY=$5
[ -x "$PY" ] || { echo "python not found at '$PY' (run scripts/install-deps.sh)"; exit 1; }
[ -s "$GGUF" ] || { echo "no real model (tokenizer source) at '$GGUF'"; exit 1; }
TEXT=$SRC/../shared/data/text
PERSUASION=$TEXT/austen/persuasion.txt
source "$(dirname "$0")/start_server.sh"

"$PY" "$SRC/tests/golden/make_family_model.py" "$FAMILY" "$work/model" --tokenizer-from "$GGUF" \
  > "$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
evaluate() {  # DIR NAME: our perplexity of DIR, then transformers' on the same windows
  cat > "$work/$2.yaml" <<YAML
evaluation: {threads: 2, perplexity: [{name: persuasion, path: $PERSUASION, windows: 2, window: 128}]}
YAML
  "$BIN/compress-worker" run --model "$1" --recipe "$work/$2.yaml" --out "$work/$2.out" \
    > "$work/$2.json" 2> "$work/$2.log" || { tail -20 "$work/$2.log"; exit 1; }
  "$PY" "$SRC/tests/python/check_logits.py" "$1" "$PERSUASION" 128 2 "$work/$2.json"
}
evaluate "$work/model" dense

model=$(ctl models upload "$work/model" --name "tiny-$FAMILY")
data=$(ctl datasets upload "$TEXT" --name text)
cat > "$work/compress.yaml" <<YAML
stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 32}}}]
calibration: {dataset_id: $data, file: sotu, samples: 8, seq_len: 128}
YAML
ctl jobs submit --model "$model" --recipe "$work/compress.yaml" --dataset "$data" --wait \
  > "$work/job.out" 2> "$work/job.err" || { tail -20 "$work/job.out" "$work/job.err"; exit 1; }
job=$(head -1 "$work/job.out")
ctl artifacts download "$job" --out "$work/compressed"

"$PY" - "$work/model" "$work/compressed" <<'PY'
import sys
import torch
from transformers import AutoModelForCausalLM
orig = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
comp, info = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.float32,
                                                  output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"], info
assert type(comp) is type(orig), (type(comp), type(orig))
o, c = orig.state_dict(), comp.state_dict()
assert o.keys() == c.keys(), set(o) ^ set(c)
projections = 0
for name, w in c.items():
    if name.endswith("_proj.weight") and "layers." in name:
        projections += 1
        zeros = (w == 0).float().mean().item()
        # Half pruned; GPTQ may round a few kept weights to the grid's zero too.
        assert 0.5 - 1e-6 <= zeros < 0.6, f"{name}: {zeros:.3f} zeros"
        groups = w.reshape(w.shape[0], -1, 32)
        distinct = max(len(torch.unique(g)) for g in groups.reshape(-1, 32)[:64])
        assert distinct <= 16, f"{name}: {distinct} values in a group of 32"
        assert not torch.equal(w, o[name]), f"{name}: not compressed"
    else:
        assert torch.equal(w, o[name]), f"{name}: changed"
# Every stored projection (Phi-3's fused qkv_proj and gate_up_proj count once).
assert projections == sum(n.endswith("_proj.weight") and "layers." in n for n in o), projections
x = torch.tensor([[1, 200, 3000, 45, 6]])
assert torch.isfinite(comp(x).logits).all()
print(f"{type(comp).__name__}: {projections} projections 50% sparse, 4-bit; every other tensor "
      "as the original")
PY
evaluate "$work/compressed" compressed

# 4. GPTQ 4-bit g32, GPTQ-packed: read back by an independent unpacker and run
#    as the family's transformers class: perplexity within 1% of ours.
cat > "$work/gptq.yaml" <<YAML
stages: [{gptq: {grid: {bits: 4, group_size: 32}}}]
calibration: {dataset_id: $data, file: sotu, samples: 8, seq_len: 128}
output: {format: gptq}
evaluation:
  perplexity: [{name: persuasion, dataset_id: $data, file: austen/persuasion.txt, windows: 2, window: 128}]
YAML
ctl jobs submit --model "$model" --recipe "$work/gptq.yaml" --dataset "$data" --wait \
  > "$work/gptq.out" 2> "$work/gptq.err" || { tail -20 "$work/gptq.out" "$work/gptq.err"; exit 1; }
gptq_job=$(head -1 "$work/gptq.out")
summary "$gptq_job"
ppl=$(field "$work/$gptq_job.json" 's["evaluation"]["datasets"][0]["perplexity"]["compressed"]')
ctl artifacts download "$gptq_job" --out "$work/gptq"
"$PY" "$SRC/tests/python/check_gptq_load.py" "$work/gptq" --text "$PERSUASION" --tokenizer "$GGUF" \
  --windows 2 --window 128 --expect "$ppl" --tolerance 0.01
echo "family_e2e $FAMILY: OK"
