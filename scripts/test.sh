#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds warning-free (-Werror),
# runs every test, then repeats the C++ tests under ASan+UBSan.
# Usage: scripts/test.sh [--no-sanitizers]
set -euo pipefail
cd "$(dirname "$0")/.."
SAN=1
[ "${1:-}" = "--no-sanitizers" ] && SAN=0
JOBS=$(nproc)

scripts/install-deps.sh
REAL_MODEL=$(scripts/fetch-model.sh)

echo "== build (RelWithDebInfo, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOMPRESSD_WERROR=ON \
  -DCOMPRESSD_PYTHON="$PWD/.venv/bin/python" -DCOMPRESSD_REAL_MODEL="$REAL_MODEL" >/dev/null
ninja -C build -j"$JOBS"
echo "== tests"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 600

if [ "$SAN" = 1 ]; then
  # Everything that parses untrusted input or runs concurrently: the service,
  # the client, the worker, the model-file parsers and the tokenizer. The dense
  # numerical kernels (nn, algorithms) are covered by their golden tests above.
  SAN_TARGETS=(compressd compress-worker compressctl make-tiny-llama
    common_test client_test server_core_test server_edge_rpc_test server_edge_http_test
    server_edge_supervisor_test model_io_test pipeline_test worker_process_test pipeline_model_job_test
    integration_test
    upload_errors_test gguf_test gguf_hf_test tokenizer_test tokenizer_gguf_test)
  echo "== build (ASan+UBSan): ${SAN_TARGETS[*]}"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCOMPRESSD_SANITIZE=ON \
    -DCOMPRESSD_WERROR=ON -DCOMPRESSD_BENCH=OFF -DCOMPRESSD_PYTHON="$PWD/.venv/bin/python" \
    -DCOMPRESSD_REAL_MODEL="$REAL_MODEL" >/dev/null
  ninja -C build-asan -j"$JOBS" "${SAN_TARGETS[@]}"
  echo "== tests under ASan+UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" --timeout 900 -LE python \
      -E '_NOT_BUILT$'
fi
