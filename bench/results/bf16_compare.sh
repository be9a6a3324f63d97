#!/usr/bin/env bash
# compute: bf16 against fp32 on the real SmolLM2-135M, at the AWQ comparison's
# mid scale (calibration calib-sotu 32 x 512, perplexity on 16 windows of 512
# of ppl-persuasion and ppl-kjv), about 15 minutes on 2 cores. Each job runs
# its calibration forwards and its evaluation in the named precision; the
# `seed1` rows change only the calibration sample (seed 1), to show how far a
# result moves for reasons that have nothing to do with precision. Prints one
# line per configuration; docs/results.md, "BF16 compute".
#
#   bench/results/bf16_compare.sh [--build DIR] [--out DIR] [CONFIG...]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$ROOT/build"
OUT="/tmp/bf16-compare"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) break ;;
  esac
done
DATA="$(cd "$ROOT/../shared/data/text" && pwd)"
MODEL="${COMPRESSD_REAL_MODEL:-$ROOT/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
mkdir -p "$OUT"
GPTQ='[{gptq: {grid: {bits: 4, group_size: 64}}}]'
SPARSE='[{sparsegpt: {sparsity: 0.5}}]'
declare -A STAGES=([dense-fp32]="" [dense-bf16]="" [gptq4-fp32]="$GPTQ" [gptq4-bf16]="$GPTQ"
  [gptq4-fp32-seed1]="$GPTQ" [gptq4-bf16-seed1]="$GPTQ" [sparsegpt50-fp32]="$SPARSE"
  [sparsegpt50-bf16]="$SPARSE" [sparsegpt50-fp32-seed1]="$SPARSE")
CONFIGS=("$@")
[[ ${#CONFIGS[@]} -gt 0 ]] || CONFIGS=(dense-fp32 dense-bf16 gptq4-fp32 gptq4-bf16 gptq4-fp32-seed1
  gptq4-bf16-seed1 sparsegpt50-fp32 sparsegpt50-bf16 sparsegpt50-fp32-seed1)
for name in "${CONFIGS[@]}"; do
  [[ -v "STAGES[$name]" ]] || { echo "unknown config $name"; exit 2; }
  compute=bf16; [[ $name == *fp32* ]] && compute=fp32
  seed=0; [[ $name == *seed1 ]] && seed=1
  skip=false; [[ -n "${STAGES[$name]}" ]] && skip=true
  {
    echo "compute: $compute"
    if [[ -n "${STAGES[$name]}" ]]; then
      echo "stages: ${STAGES[$name]}"
      echo "calibration: {path: $DATA/sotu, samples: 32, seq_len: 512, seed: $seed, threads: 2}"
    fi
    echo "evaluation: {threads: 2, skip_dense: $skip, perplexity: ["
    echo "  {name: ppl-persuasion, path: $DATA/austen/persuasion.txt, windows: 16, window: 512},"
    echo "  {name: ppl-kjv, path: $DATA/kjv.txt, windows: 16, window: 512}]}"
  } > "$OUT/$name.yaml"
  "$BUILD/bin/compress-worker" run --model "$MODEL" --recipe "$OUT/$name.yaml" \
    --out "$OUT/$name.model" > "$OUT/$name.json" 2> "$OUT/$name.log"
  rm -rf "$OUT/$name.model"
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
p = [d["perplexity"] for d in s["evaluation"]["datasets"]]
ppl = [x["compressed"] if "compressed" in x else x["dense"] for x in p]
t = s["timing_seconds"]
print(f"{sys.argv[2]:24s} persuasion {ppl[0]:8.3f}  kjv {ppl[1]:7.3f}  forward {t['forward']:6.1f} s  "
      f"evaluate {t['evaluate']:6.1f} s  job {t['total'] - t['evaluate']:6.1f} s")
PY
done
