#!/usr/bin/env bash
# AWQ on the real model (SmolLM2-135M GGUF), as a user runs it with
# `compress-worker run`:
#   1. RTN 3-bit g64 without AWQ: the baseline perplexity on persuasion;
#   2. the same grid with awq (10 grid points, and the clipping search;
#      calibrated on a small calib-sotu set),
#      written as compressed_tensors for vLLM: its perplexity must be below
#      the baseline's, the summary lists AWQ's scales for every block (the
#      attention norm, the MLP norm and up_proj: SmolLM2 has grouped-query
#      attention, so no v_proj -> o_proj group), and transformers loads the
#      checkpoint (compressed-tensors integration: the rescaled norms are in
#      it) with our perplexity within 1% (tests/python/check_compressed_tensors.py).
# Usage: real_model_awq_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF
set -euo pipefail
source "$(dirname "$0")/real_model_common.sh"
run() {  # NAME: compress-worker run of NAME.yaml, the summary in NAME.json
  "$BIN/compress-worker" run --model "$MODEL" --recipe "$work/$1.yaml" --out "$work/$1" \
    > "$work/$1.json" 2> "$work/$1.log" || { tail -20 "$work/$1.log"; exit 1; }
}
EVAL="evaluation: {threads: 2, skip_dense: true,
  perplexity: [{name: persuasion, path: $PERSUASION, windows: 4, window: 512}]}"
PPL='s["evaluation"]["datasets"][0]["perplexity"]["compressed"]'

cat > "$work/rtn.yaml" <<YAML
stages: [{rtn: {grid: {bits: 3, group_size: 64}}}]
$EVAL
YAML
run rtn
rtn=$(field "$work/rtn.json" "$PPL")

cat > "$work/awq.yaml" <<YAML
stages: [{rtn: {grid: {bits: 3, group_size: 64}, awq: {grid_points: 10, clip: true}}}]
calibration: {path: $DATA/sotu, samples: 16, seq_len: 256, threads: 2}
output: {format: compressed_tensors}
$EVAL
YAML
run awq
awq=$(field "$work/awq.json" "$PPL")
echo "RTN 3-bit g64 on persuasion: $rtn without AWQ, $awq with"
"$PY" - "$work/awq.json" "$rtn" "$awq" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rtn, awq = float(sys.argv[2]), float(sys.argv[3])
assert awq < rtn, f"AWQ did not help: {awq} >= {rtn}"
entries = s["calibration"]["awq"]
assert len(entries) == 90, len(entries)
kinds = sorted({e["folded_into"].split(".")[-1] for e in entries})
assert kinds == ["input_layernorm", "post_attention_layernorm", "up_proj"], kinds
folded = [e for e in entries if e["alpha"] is not None]
assert len(folded) >= 80, f"only {len(folded)} of 90 groups rescaled"
assert all(e["error"] <= e["error_unscaled"] for e in entries)
# clip: every group has a linear it may clip (v_proj in q/k/v), none does worse than unclipped
assert all(e["clip_error"] <= e["clip_error_unclipped"] for e in entries), entries[:2]
assert sum(e["clipped"] > 0 for e in entries) >= 80, [e["clipped"] for e in entries]
print(f"AWQ rescaled {len(folded)} of 90 groups; perplexity {awq / rtn - 1:+.1%} against plain RTN")
PY
grep -q "awq: model.layers.29.input_layernorm" "$work/awq.log" ||
  { echo "FAIL: no AWQ log line for block 29"; exit 1; }
"$PY" "$SRC/tests/python/check_compressed_tensors.py" "$work/awq" --expect "$awq" \
  --text "$PERSUASION" --tokenizer "$MODEL" --windows 4 --window 512 --ppl-tolerance 0.01 \
  --expect-bits 3 --expect-strategy group --expect-symmetric true 2>&1 | grep -v "it/s\]"
echo "real_model_awq_e2e: OK"
