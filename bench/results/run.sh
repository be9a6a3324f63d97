#!/usr/bin/env bash
# Runs the docs/results.md configurations on the real SmolLM2-135M with the
# shared protocol (calib-sotu 128 x 512 seed 0; ppl-persuasion and ppl-kjv,
# 64 windows of 512) through `compress-worker run`, one summary per config in
# OUT_DIR/<config>.json. Then: python3 bench/results/make_table.py OUT_DIR.
#
#   bench/results/run.sh [--build DIR] [--out DIR] [--threads N] [CONFIG...]
#
# Configs (default: all of DEFAULT below, the docs/results.md rows).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$ROOT/build"
OUT="$ROOT/bench/results/out"
THREADS=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    *) break ;;
  esac
done
DATA="$(cd "$ROOT/../shared/data/text" && pwd)"
MODEL="${COMPRESSD_REAL_MODEL:-$ROOT/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[[ -f "$MODEL" ]] || "$ROOT/scripts/fetch-model.sh"
WORKER="$BUILD/bin/compress-worker"
mkdir -p "$OUT"

# name -> stages (YAML flow list). Calibration is added when a stage needs it.
declare -A STAGES=(
  [magnitude-50]='[{magnitude: {sparsity: 0.5}}]'
  [magnitude-60]='[{magnitude: {sparsity: 0.6}}]'
  [magnitude-2:4]='[{magnitude: {pattern: "2:4"}}]'
  [magnitude-4:8]='[{magnitude: {pattern: "4:8"}}]'
  [wanda-50]='[{wanda: {sparsity: 0.5}}]'
  [wanda-60]='[{wanda: {sparsity: 0.6}}]'
  [wanda-2:4]='[{wanda: {pattern: "2:4"}}]'
  [wanda-4:8]='[{wanda: {pattern: "4:8"}}]'
  [sparsegpt-50]='[{sparsegpt: {sparsity: 0.5}}]'
  [sparsegpt-60]='[{sparsegpt: {sparsity: 0.6}}]'
  [sparsegpt-2:4]='[{sparsegpt: {pattern: "2:4"}}]'
  [sparsegpt-4:8]='[{sparsegpt: {pattern: "4:8"}}]'
  [rtn-4-g128]='[{rtn: {grid: {bits: 4, group_size: 128}}}]'
  [rtn-3-g128]='[{rtn: {grid: {bits: 3, group_size: 128}}}]'
  [rtn-2-g128]='[{rtn: {grid: {bits: 2, group_size: 128}}}]'
  [rtn-4-pc]='[{rtn: {grid: {bits: 4, group_size: -1}}}]'
  [rtn-3-pc]='[{rtn: {grid: {bits: 3, group_size: -1}}}]'
  [rtn-2-pc]='[{rtn: {grid: {bits: 2, group_size: -1}}}]'
  [gptq-4-g128]='[{gptq: {grid: {bits: 4, group_size: 128}, act_order: false}}]'
  [gptq-4-g128-act]='[{gptq: {grid: {bits: 4, group_size: 128}}}]'
  [gptq-3-g128]='[{gptq: {grid: {bits: 3, group_size: 128}, act_order: false}}]'
  [gptq-3-g128-act]='[{gptq: {grid: {bits: 3, group_size: 128}}}]'
  [gptq-2-g128]='[{gptq: {grid: {bits: 2, group_size: 128}, act_order: false}}]'
  [gptq-4-pc]='[{gptq: {grid: {bits: 4, group_size: -1}, act_order: false}}]'
  [gptq-4-pc-act]='[{gptq: {grid: {bits: 4, group_size: -1}}}]'
  [gptq-3-pc]='[{gptq: {grid: {bits: 3, group_size: -1}, act_order: false}}]'
  [gptq-3-pc-act]='[{gptq: {grid: {bits: 3, group_size: -1}}}]'
  [gptq-2-pc]='[{gptq: {grid: {bits: 2, group_size: -1}, act_order: false}}]'
  [gptq-3-g32-act]='[{gptq: {grid: {bits: 3, group_size: 32}}}]'
  [gptq-3-g32-act-sb6]='[{gptq: {grid: {bits: 3, group_size: 32, scale_bits: 6}}}]'
  [gptq-3-g16-act-sb6]='[{gptq: {grid: {bits: 3, group_size: 16, scale_bits: 6}}}]'
  [gptq-4-g32-act]='[{gptq: {grid: {bits: 4, group_size: 32}}}]'
  [gptq-4-g32-asym-act]='[{gptq: {grid: {bits: 4, group_size: 32, asymmetric: true}}}]'
  [gptq-4-g32-asym-act-sb6]='[{gptq: {grid: {bits: 4, group_size: 32, asymmetric: true, scale_bits: 6}}}]'
  [gptq-2-g16-asym-act]='[{gptq: {grid: {bits: 2, group_size: 16, asymmetric: true}}}]'
  [gptq-2-g16-asym-act-sb4]='[{gptq: {grid: {bits: 2, group_size: 16, asymmetric: true, scale_bits: 4}}}]'
  [awq-rtn-4-g128]='[{rtn: {grid: {bits: 4, group_size: 128}, awq: {}}}]'
  [awq-rtn-3-g128]='[{rtn: {grid: {bits: 3, group_size: 128}, awq: {}}}]'
  [awq-gptq-4-g128-act]='[{gptq: {grid: {bits: 4, group_size: 128}, awq: {}}}]'
  [awq-gptq-3-g128-act]='[{gptq: {grid: {bits: 3, group_size: 128}, awq: {}}}]'
  [rtn-8-pc]='[{rtn: {grid: {bits: 8, group_size: -1}}}]'
  [rtn-w8a8]='[{rtn: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}}}]'
  [rtn-w8a8-sq]='[{rtn: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}, smoothquant: {}}}]'
  [gptq-w8a8]='[{gptq: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}}}]'
  [gptq-w8a8-sq]='[{gptq: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}, smoothquant: {}}}]'
  [gptq-w8a8-sq08]='[{gptq: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}, smoothquant: {alpha: 0.8}}}]'
  [rtn-w8a8-sq-down]='[{rtn: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}, smoothquant: {down_proj: true}}}]'
  [gptq-w8a8-sq-down]='[{gptq: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}, smoothquant: {down_proj: true}}}]'
  [rtn-fp8]='[{rtn: {grid: {type: fp8}}}]'
  [gptq-fp8]='[{gptq: {grid: {type: fp8}}}]'
  [rtn-fp8-w8a8]='[{rtn: {grid: {type: fp8}, activations: {bits: 8}}}]'
  [gptq-fp8-w8a8]='[{gptq: {grid: {type: fp8}, activations: {bits: 8}}}]'
  [gptq-fp8-w8a8-sq]='[{gptq: {grid: {type: fp8}, activations: {bits: 8}, smoothquant: {}}}]'
  [spqr-3]='[{spqr: {}}]'
  [spqr-3-no-outliers]='[{spqr: {outliers: false}}]'
  [spqr-4]='[{spqr: {bits: 4}}]'
  [spqr-3-t1]='[{spqr: {outlier_threshold: 1.0}}]'
  [gptq-3-g16-asym-act]='[{gptq: {grid: {bits: 3, group_size: 16, asymmetric: true}}}]'
  [gptq-3-g32-act-nofb]='[{gptq: {grid: {bits: 3, group_size: 32}, massive_fallback: false}}]'
  [gptq-3-g128-act-nofb]='[{gptq: {grid: {bits: 3, group_size: 128}, massive_fallback: false}}]'
  [gptq-4-g128-act-nofb]='[{gptq: {grid: {bits: 4, group_size: 128}, massive_fallback: false}}]'
  [sparsegpt-50+gptq-4-g128]='[{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 128}, act_order: false}}]'
)
# gptq-*: the rows measured before act-order became GPTQ's default (pinned
# off); gptq-*-act: the defaults (act-order with static groups and the
# massive-input fallback); *-nofb: act-order on every layer (the fallback off).
# Every configuration of docs/results.md, in its order (about 3 hours on 2 cores).
DEFAULT=(dense
  magnitude-50 wanda-50 sparsegpt-50 magnitude-60 wanda-60 sparsegpt-60
  magnitude-2:4 wanda-2:4 sparsegpt-2:4 magnitude-4:8 wanda-4:8 sparsegpt-4:8
  rtn-4-g128 gptq-4-g128 rtn-4-pc gptq-4-pc rtn-3-g128 gptq-3-g128 rtn-3-pc gptq-3-pc
  rtn-2-g128 gptq-2-g128 rtn-2-pc gptq-2-pc sparsegpt-50+gptq-4-g128
  gptq-4-g128-act gptq-4-pc-act gptq-3-g128-act gptq-3-pc-act
  awq-rtn-4-g128 awq-rtn-3-g128 awq-gptq-4-g128-act awq-gptq-3-g128-act)
CONFIGS=("$@")
[[ ${#CONFIGS[@]} -gt 0 ]] || CONFIGS=("${DEFAULT[@]}")

EVAL="evaluation:
  threads: $THREADS
  perplexity:
    - {name: ppl-persuasion, path: $DATA/austen/persuasion.txt}
    - {name: ppl-kjv, path: $DATA/kjv.txt}"
for name in "${CONFIGS[@]}"; do
  recipe="$OUT/$name.yaml"
  if [[ "$name" == dense ]]; then
    printf '%s\n' "$EVAL" > "$recipe"
  else
    stages="${STAGES[$name]:?unknown config $name}"
    {
      echo "stages: $stages"
      [[ "$stages" =~ wanda|sparsegpt|gptq|awq|smoothquant|spqr ]] &&
        echo "calibration: {path: $DATA/sotu, samples: 128, seq_len: 512, seed: 0, threads: $THREADS}"
      # W8A8 and fp8 are written (and so only valid) as compressed_tensors here
      [[ "$stages" =~ activations|fp8 ]] && echo "output: {format: compressed_tensors}"
      # SpQR is written exactly (and its bits per parameter counted) as spqr
      [[ "$stages" =~ spqr ]] && echo "output: {format: spqr}"
      printf '%s\n  skip_dense: true\n' "$EVAL"
    } > "$recipe"
  fi
  echo "== $name"
  start=$(date +%s)
  "$WORKER" run --model "$MODEL" --recipe "$recipe" --out "$OUT/$name.model" \
    > "$OUT/$name.json" 2> "$OUT/$name.log"
  echo "   $(( $(date +%s) - start )) s"
  rm -rf "$OUT/$name.model"
done
