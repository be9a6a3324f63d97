#!/usr/bin/env bash
# Prompt processing on SmolLM2-135M, 8 x 512 tokens, ours vs PyTorch, same
# model, tokens and thread count, in one run; plus our linear layers' GFLOP/s
# against the measured sgemm peak. Results go in docs/benchmarks.md.
#
# Usage: bench/forward/run.sh BUILD_DIR [THREADS] [PYTHON]
#   BUILD_DIR  a Release build with bench_forward built
#              (cmake -DCMAKE_BUILD_TYPE=Release ...; ninja bench_forward)
#   THREADS    default 2;  PYTHON  default $COMPRESSD_PYTHON or python3
#              (needs torch, transformers, gguf, accelerate)
# The model is COMPRESSD_REAL_MODEL or scripts/fetch-model.sh's.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:?usage: run.sh BUILD_DIR [THREADS] [PYTHON]}
THREADS=${2:-2}
PY=${3:-${COMPRESSD_PYTHON:-python3}}
MODEL=${COMPRESSD_REAL_MODEL:-$(scripts/fetch-model.sh)}
TOKENS=tests/golden/fixtures/nn_ppl_persuasion_tokens.bin
# OpenBLAS's kernels: an explicit OPENBLAS_CORETYPE wins over its own CPU
# detection. This workplace's environment pins Haswell (AVX2), which halves
# sgemm on AVX-512 CPUs; on those, drop the pin so OpenBLAS picks its kernels
# (see docs/benchmarks.md). COMPRESSD_KEEP_CORETYPE=1 measures the pinned core.
if [ -z "${COMPRESSD_KEEP_CORETYPE:-}" ] &&
   grep -q avx512f /proc/cpuinfo && grep -q avx512bw /proc/cpuinfo &&
   grep -q avx512dq /proc/cpuinfo && grep -q avx512vl /proc/cpuinfo; then
  unset OPENBLAS_CORETYPE
fi

BIN=$BUILD/bench/forward/bench_forward
[ -x "$BIN" ] || BIN=$BUILD/bench_forward
echo "== compressd (bench_forward, $THREADS threads, compute fp32)"
out=$("$BIN" --model="$MODEL" --tokens="$TOKENS" --threads="$THREADS")
echo "$out"
ours=$(echo "$out" | sed -n 's/^RESULT //p')
echo "== compressd (bench_forward, $THREADS threads, compute bf16)"
out=$("$BIN" --model="$MODEL" --tokens="$TOKENS" --threads="$THREADS" --compute=bf16)
echo "$out"
ours_bf16=$(echo "$out" | sed -n 's/^RESULT //p')
echo "== PyTorch ($THREADS threads)"
out=$("$PY" bench/forward/bench_torch.py --model "$MODEL" --tokens "$TOKENS" --threads "$THREADS" 2>/dev/null)
echo "$out"
theirs=$(echo "$out" | sed -n 's/^RESULT //p')
"$PY" - "$ours" "$theirs" "$ours_bf16" <<'PY'
import json, sys
ours, theirs, bf16 = (json.loads(a) for a in sys.argv[1:4])
print("== summary")
for name, r in (("fp32", ours), ("bf16", bf16)):
    peak = r["bf16_peak_gflops"] if name == "bf16" else r["sgemm_peak_gflops"]
    print(f"prompt processing, compute {name}: {r['tokens_per_second']:.0f} tok/s vs PyTorch fp32 "
          f"{theirs['tokens_per_second']:.0f} tok/s: x{r['tokens_per_second'] / theirs['tokens_per_second']:.2f}; "
          f"linear layers {r['linear_gflops']:.1f} GFLOP/s = {100 * r['linear_gflops'] / peak:.0f}% "
          f"of the {name} GEMM peak {peak:.1f} GFLOP/s")
print(f"(OpenBLAS core {ours['blas_core']})")
PY
