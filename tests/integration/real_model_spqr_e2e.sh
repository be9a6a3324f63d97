#!/usr/bin/env bash
# SpQR on the real model (SmolLM2-135M GGUF), as a user runs it with
# `compress-worker run`, written as the spqr output:
#   1. SpQR with the paper's settings (3-bit codes in groups of 16, 3-bit
#      statistics over 16 rows, outliers at threshold 0.2), calibrated on
#      calib-sotu: the job reads its file back (the reload check: SpqrStream
#      decodes it); tests/python/check_spqr.py decodes the file
#      independently (numpy), finds all 210 linears as SpQR modules with the
#      bits per weight config.json states, and transformers on the decoded
#      weights gives the job's perplexity within 1%;
#   2. the same without outliers: fewer bits per weight, a worse perplexity
#      (the outliers are what the extra bits buy);
#   3. a bad recipe (spqr written as gptq) is refused naming the field.
# Usage: real_model_spqr_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF
set -euo pipefail
source "$(dirname "$0")/real_model_common.sh"
CALIB="calibration: {path: $DATA/sotu, samples: 16, seq_len: 256, threads: 2}"
EVAL="evaluation: {threads: 2, skip_dense: true,
  perplexity: [{name: persuasion, path: $PERSUASION, windows: 8, window: 512}]}"
PPL='s["evaluation"]["datasets"][0]["perplexity"]["compressed"]'
BITS='s["export"]["spqr_bits_per_parameter"]'

for name in spqr nooutliers; do
  stage='{spqr: {}}'
  [ "$name" = nooutliers ] && stage='{spqr: {outliers: false}}'
  printf 'stages: [%s]\n%s\noutput: {format: spqr}\n%s\n' "$stage" "$CALIB" "$EVAL" > "$work/$name.yaml"
  run "$name"
done
spqr=$(field "$work/spqr.json" "$PPL")
plain=$(field "$work/nooutliers.json" "$PPL")
spqr_bits=$(field "$work/spqr.json" "$BITS")
plain_bits=$(field "$work/nooutliers.json" "$BITS")
echo "persuasion perplexity: SpQR 3-bit $spqr at $spqr_bits bits/weight;" \
  "without outliers $plain at $plain_bits"
"$PY" "$SRC/tests/python/check_spqr.py" "$work/spqr" --expect "$spqr" --text "$PERSUASION" \
  --tokenizer "$MODEL" --windows 8 --window 512 --ppl-tolerance 0.01 --expect-bits 3 \
  --expect-modules 210
"$PY" - "$spqr" "$plain" "$spqr_bits" "$plain_bits" <<'PY'
import sys
spqr, plain, spqr_bits, plain_bits = (float(x) for x in sys.argv[1:5])
assert spqr < plain, f"SpQR with outliers {spqr} is not better than without {plain}"
assert 3.0 < plain_bits < spqr_bits < 4.5, f"bits per weight {plain_bits}, {spqr_bits}"
PY

printf 'stages: [{spqr: {}}]\n%s\noutput: {format: gptq}\n' "$CALIB" > "$work/bad.yaml"
if "$BIN/compress-worker" run --model "$MODEL" --recipe "$work/bad.yaml" --out "$work/bad" \
    > /dev/null 2> "$work/bad.log"; then
  echo "FAIL: spqr written as gptq was accepted"; exit 1
fi
grep -q "output.format: gptq cannot store an spqr stage's weights" "$work/bad.log" ||
  { cat "$work/bad.log"; echo "FAIL: no error naming output.format"; exit 1; }
echo "real_model_spqr_e2e: OK"
