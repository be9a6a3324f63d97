#!/usr/bin/env bash
# Packs the GPU checks for a machine that has an NVIDIA GPU and the CUDA
# runtime libraries but not this project's build dependencies (a lent device
# machine, say): the `cuda` parity tests, solver_bench and the CUDA plugin,
# stripped, with every shared library they load that is neither the CUDA
# toolkit's nor the C/C++ runtime's, into OUT/bundle.tar.xz, and
# OUT/run-bundle.sh, which unpacks it and runs the suite (fixtures read from
# the repository checkout it runs in) and the GPU-vs-CPU solve table.
#
# Usage: scripts/gpu-bundle.sh [BUILD_DIR] [OUT]   (defaults: build, .gpu-bundle)
#   then, on the GPU machine, in a checkout of the same commit:
#   bash OUT/run-bundle.sh            (prints the results; exit status: the suite's)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-.gpu-bundle}
bins=(tests/cuda/cuda_solver_test tests/cuda/cuda_backend_test bench/solvers/solver_bench
  bin/libcompressd_cuda.so)
ninja -C "$build" cuda_solver_test cuda_backend_test solver_bench compress-worker >/dev/null
rm -rf "$out" && mkdir -p "$out/stage/bin" "$out/stage/lib"
for b in "${bins[@]}"; do
  strip --strip-debug -o "$out/stage/bin/$(basename "$b")" "$build/$b"
done
# The C/C++ runtime and the CUDA libraries come from the GPU machine.
skip='lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s|cuda|cublas|cublasLt|cusolver|cusparse|nvJitLink|cudart)\.so|ld-linux'
for b in "${bins[@]}"; do ldd "$build/$b"; done | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -Ev "$skip" | while read -r lib; do strip --strip-debug -o "$out/stage/lib/$(basename "$lib")" "$lib"; done
tar -C "$out" -cJf "$out/bundle.tar.xz" stage
rm -rf "$out/stage"
cat > "$out/run-bundle.sh" <<'RUN'
#!/usr/bin/env bash
# Runs the bundled GPU checks (scripts/gpu-bundle.sh) in the checkout around it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
tmp=$(mktemp -d)
tar -C "$tmp" -xJf "$here/bundle.tar.xz"
cuda_libs=$(ls -d /usr/local/cuda/lib64 /usr/local/nvidia/lib64 2>/dev/null | tr '\n' ':')
for need in libcublas.so.13 libcusolver.so.12; do  # else from a CUDA wheel (nvidia-*-cu13)
  found=$(find / -xdev -name "$need" 2>/dev/null | head -1)
  [ -n "$found" ] && cuda_libs="$cuda_libs$(dirname "$found"):"
done
export LD_LIBRARY_PATH="$tmp/stage/lib:$tmp/stage/bin:${cuda_libs}${LD_LIBRARY_PATH:-}"
export COMPRESSD_SOURCE_DIR="$repo" COMPRESSD_CUDA_PLUGIN="$tmp/stage/bin/libcompressd_cuda.so"
nvidia-smi -L || true
status=0
for t in cuda_solver_test cuda_backend_test; do
  echo "== $t"
  "$tmp/stage/bin/$t" --gtest_color=no || status=1
done
echo "== layer solves on the GPU"
"$tmp/stage/bin/solver_bench" --device cuda:0 \
  --shapes 2048x2048,8192x2048,2048x8192,4096x4096,14336x4096,4096x14336 --repeats 3 || status=1
echo "== the same 1B shapes on the CPU ($(nproc) threads)"
"$tmp/stage/bin/solver_bench" --device cpu --shapes 2048x2048,8192x2048,2048x8192 --repeats 1 \
  --threads "$(nproc)" || status=1
exit $status
RUN
chmod +x "$out/run-bundle.sh"
ls -la "$out"
