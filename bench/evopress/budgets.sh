#!/usr/bin/env bash
# EvoPress against uniform allocation at the same budget, on the real model
# with the shared protocol (docs/results.md): for each budget, the search
# (<row>-evo.yaml) and its uniform start (<row>-uniform.yaml, generations 0),
# each one `compress-worker run` with 2 threads. The sparsity rows share one
# levels database and the bits rows another (--checkpoint-dir), so only the
# first row of each mode builds it. Summaries go to OUT/<row>.json, wall time
# to OUT/times.txt; bench/evopress/budget_table.py OUT prints the table.
#
#   bench/evopress/budgets.sh [--build DIR] [--out DIR] [ROW ...]
#
# Default rows, in the order that builds each database once:
#   sparsity60-evo sparsity60-uniform bits30-evo bits30-uniform
#   sparsity70-evo sparsity70-uniform bits25-evo bits25-uniform
# The 3.0-bit checks of docs/results.md, by name: bits30-evo-t8k (last
# selection step on 8192 tokens), bits30-uniform-domains, bits30-evo-domains
# (the same configurations on a State of the Union speech and on Emma).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/build/bin"
OUT=/tmp/evopress-budgets
ROWS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BIN="$2/bin"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -*) echo "unknown argument $1"; exit 2 ;;
    *) ROWS+=("$1"); shift ;;
  esac
done
[[ ${#ROWS[@]} -gt 0 ]] || ROWS=(sparsity60-evo sparsity60-uniform bits30-evo bits30-uniform
                                 sparsity70-evo sparsity70-uniform bits25-evo bits25-uniform)
MODEL="${COMPRESSD_REAL_MODEL:-$ROOT/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[[ -f "$MODEL" ]] || "$ROOT/scripts/fetch-model.sh"
mkdir -p "$OUT"
cd "$ROOT"  # the recipes name ../shared/data/text relative to the checkout
for row in "${ROWS[@]}"; do
  recipe="bench/evopress/budgets/$row.yaml"
  [[ -f "$recipe" ]] || { echo "no recipe $recipe"; exit 2; }
  mode=${row%%[0-9]*}  # sparsity | bits: one database per mode
  start=$(date +%s)
  rc=0
  "$BIN/compress-worker" run --model "$MODEL" --recipe "$recipe" --out "$OUT/out-$row" \
    --checkpoint-dir "$OUT/db-$mode" > "$OUT/$row.json" 2> "$OUT/$row.log" || rc=$?
  echo "$row $(( $(date +%s) - start )) s rc=$rc" | tee -a "$OUT/times.txt"
  rm -rf "$OUT/out-$row"
done
