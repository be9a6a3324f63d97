#!/usr/bin/env bash
# AWQ against the same grid without it, on the real SmolLM2-135M, at a mid
# scale that runs in about 35 minutes on 2 cores: calibration calib-sotu
# 32 x 512 (seed 0), perplexity on 16 windows of 512 of ppl-persuasion and
# ppl-kjv. Prints one line per configuration; docs/results.md, "AWQ".
#
#   bench/results/awq_compare.sh [--build DIR] [--out DIR] [CONFIG...]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$ROOT/build"
OUT="/tmp/awq-compare"
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
declare -A STAGES=(
  [rtn3]='[{rtn: {grid: {bits: 3, group_size: 64}}}]'
  [awq-duo-rtn3]='[{rtn: {grid: {bits: 3, group_size: 64}, awq: {duo_scaling: true}}}]'
  [awq-rtn3]='[{rtn: {grid: {bits: 3, group_size: 64}, awq: {duo_scaling: false}}}]'
  [rtn4]='[{rtn: {grid: {bits: 4, group_size: 64}}}]'
  [awq-duo-rtn4]='[{rtn: {grid: {bits: 4, group_size: 64}, awq: {duo_scaling: true}}}]'
  [awq-rtn4]='[{rtn: {grid: {bits: 4, group_size: 64}, awq: {duo_scaling: false}}}]'
  [gptq3]='[{gptq: {grid: {bits: 3, group_size: 64}}}]'
  [awq-gptq3]='[{gptq: {grid: {bits: 3, group_size: 64}, awq: {duo_scaling: false}}}]'
  [gptq4]='[{gptq: {grid: {bits: 4, group_size: 64}}}]'
  [awq-gptq4]='[{gptq: {grid: {bits: 4, group_size: 64}, awq: {duo_scaling: false}}}]'
  [awq-clip-rtn3]='[{rtn: {grid: {bits: 3, group_size: 64}, awq: {clip: true}}}]'
  [awq-clip-rtn4]='[{rtn: {grid: {bits: 4, group_size: 64}, awq: {clip: true}}}]'
  [awq-clip-gptq3]='[{gptq: {grid: {bits: 3, group_size: 64}, awq: {clip: true}}}]'
  [awq-clip-gptq4]='[{gptq: {grid: {bits: 4, group_size: 64}, awq: {clip: true}}}]'
)
CONFIGS=("$@")
[[ ${#CONFIGS[@]} -gt 0 ]] || CONFIGS=(rtn3 awq-duo-rtn3 awq-rtn3 awq-clip-rtn3 rtn4 awq-duo-rtn4
  awq-rtn4 awq-clip-rtn4 gptq3 awq-gptq3 awq-clip-gptq3 gptq4 awq-gptq4 awq-clip-gptq4)
for name in "${CONFIGS[@]}"; do
  cat > "$OUT/$name.yaml" <<YAML
stages: ${STAGES[$name]:?unknown config $name}
calibration: {path: $DATA/sotu, samples: 32, seq_len: 512, seed: 0, threads: 2}
evaluation: {threads: 2, skip_dense: true, perplexity: [
  {name: ppl-persuasion, path: $DATA/austen/persuasion.txt, windows: 16, window: 512},
  {name: ppl-kjv, path: $DATA/kjv.txt, windows: 16, window: 512}]}
YAML
  "$BUILD/bin/compress-worker" run --model "$MODEL" --recipe "$OUT/$name.yaml" \
    --out "$OUT/$name.model" > "$OUT/$name.json" 2> "$OUT/$name.log"
  rm -rf "$OUT/$name.model"
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ppl = [d["perplexity"]["compressed"] for d in s["evaluation"]["datasets"]]
t = s["timing_seconds"]
print(f"{sys.argv[2]:14s} persuasion {ppl[0]:8.2f}  kjv {ppl[1]:7.2f}  awq {t.get('awq', 0):5.1f} s  "
      f"job {t['total'] - t['evaluate']:6.1f} s")
PY
done
