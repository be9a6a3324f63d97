#!/usr/bin/env bash
# Per-layer SparseGPT / GPTQ solve time, C++ (solver_bench) vs the PyTorch
# reference (tests/golden/algo_reference.py), same layers, same thread count,
# one after the other in this run; prints both times and the ratio.
#
# Usage: bench/solvers/run.sh BUILD_DIR [THREADS]
#   BUILD_DIR: a Release build with the solver_bench target
#   layers:    $LAYERS (default /tmp/algo_bench_layers), made by
#              tests/golden/algo_capture.py --full-dir $LAYERS (fetch the model first)
#   python:    $PYTHON (default /tmp/venvtest/bin/python) with torch and numpy
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run.sh BUILD_DIR [THREADS]}"
threads="${2:-2}"
layers="${LAYERS:-/tmp/algo_bench_layers}"
python="${PYTHON:-/tmp/venvtest/bin/python}"
bench="$build/bench/solvers/solver_bench"
[[ -x "$bench" ]] || { echo "no $bench: build the solver_bench target (Release)" >&2; exit 1; }
[[ -f "$layers/l5_down_proj.bin" ]] || {
  echo "no layers in $layers: run tests/golden/algo_capture.py --full-dir $layers" >&2; exit 1; }
# As compress-worker does (workers/engine/nn/blas_setup.h): OpenBLAS 0.3.21
# runs AVX-512 CPUs it does not know with AVX2 kernels unless told.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]] && grep -q avx512f /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"
# On a loaded machine OpenMP's default spin-waiting makes torch with 2 threads
# ~10x slower than with 1; PASSIVE keeps the PyTorch baseline honest.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
echo "# $(date -u +%FT%TZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
cpp="$("$bench" --layers "$layers" --threads "$threads" --repeats 5)"
ref="$("$python" "$here/reference_bench.py" --layers "$layers" --threads "$threads" --repeats 3)"
echo "$cpp" | grep '^#'
echo "$ref" | grep '^#'
# torch_s: algo_reference.py; lean_s: minimal PyTorch Algorithm 1; cpp_s: ours.
printf '%-14s %-17s %9s %9s %9s %8s %8s %9s %9s %9s\n' layer config torch_s lean_s cpp_s \
  vs_torch vs_lean err_torch err_lean err_cpp
join <(echo "$ref" | awk '/^RESULT/ {print $2"/"$3, $4, $5}' | sort) \
     <(echo "$ref" | awk '/^LEAN/ {print $2"/"$3, $4, $5}' | sort) |
  join - <(echo "$cpp" | awk '/^RESULT/ {print $2"/"$3, $4, $5}' | sort) |
  awk '{split($1, k, "/"); printf "%-14s %-17s %9.4f %9.4f %9.4f %7.1fx %7.1fx %9.6f %9.6f %9.6f\n",
        k[1], k[2], $2, $4, $6, $2 / $6, $4 / $6, $3, $5, $7}'
echo "$cpp" | awk '/^FACTOR/ {printf "# C++ inverse-Hessian factor alone (float64): %s %.4f s\n", $2, $3}'
echo "$cpp" | awk '/^ERROR_COST/ {printf "# C++ relative-error computation (not in cpp_s): %s %s %.4f s\n", $2, $3, $4}'
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
