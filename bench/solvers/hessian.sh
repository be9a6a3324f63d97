#!/usr/bin/env bash
# The calibration Hessian H = 2 X X^T / n at SmolLM2's input widths: ours
# (hessian_bench: HessianAccumulator on 1 and THREADS threads, OpenBLAS at one
# thread as in compress-worker) and PyTorch float32 X^T X on THREADS threads
# (what the GPTQ reference code computes), same shapes, one after the other.
#
# Usage: bench/solvers/hessian.sh BUILD_DIR [THREADS] [TOKENS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:?usage: hessian.sh BUILD_DIR [THREADS] [TOKENS]}"
threads="${2:-2}" tokens="${3:-16384}"
python="${PYTHON:-$root/.venv/bin/python}"
if [[ -z "${OPENBLAS_CORETYPE:-}" ]] && grep -q avx512f /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=SkylakeX  # as compress-worker (workers/engine/nn/blas_setup.h)
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
echo "# $(date -u +%FT%TZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/solvers/hessian_bench" --threads "$threads" --tokens "$tokens"
"$python" - "$threads" "$tokens" <<'PY'
import sys, time, torch
threads, tokens = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
for dim in (576, 1536):
    x = torch.randn(tokens, dim)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        h = torch.zeros(dim, dim)
        for c in x.split(2048):
            h += c.t() @ c
        h *= 2.0 / tokens
        times.append(time.perf_counter() - t0)
    s = sorted(times)[2]
    print(f"TORCH {dim} {threads} {s:.4f} {tokens * dim * (dim + 1) / s * 1e-9:.1f}")
PY
