#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds warning-free (-Werror),
# runs every test, then repeats the C++ tests under ASan+UBSan, then runs
# every libFuzzer target for a bounded time on its committed corpus.
# Usage: scripts/test.sh [--no-sanitizers] [--no-fuzz]
#   COMPRESSD_FUZZ_SECONDS: seconds per fuzz target (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
SAN=1
FUZZ=1
for arg in "$@"; do
  case "$arg" in
    --no-sanitizers) SAN=0 ;;
    --no-fuzz) FUZZ=0 ;;
    *) echo "usage: $0 [--no-sanitizers] [--no-fuzz]" >&2; exit 2 ;;
  esac
done
JOBS=$(nproc)
# Each phase is announced with the seconds since the start, for CI-time budgets.
phase() { echo "== $* (at ${SECONDS} s)"; }

scripts/install-deps.sh
REAL_MODEL=$(scripts/fetch-model.sh)

# Debug information at -g1 (functions and line tables: what stack traces, ASan
# reports and perf need, without locals): the same code, and builds about 12%
# faster (measured on one worker source file).
phase "build (RelWithDebInfo, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOMPRESSD_WERROR=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DCOMPRESSD_PYTHON="$PWD/.venv/bin/python" -DCOMPRESSD_REAL_MODEL="$REAL_MODEL" >/dev/null
ninja -C build -j"$JOBS"
phase "tests"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 600

# The libFuzzer targets: the parsers of untrusted input, rebuilt with clang's
# libFuzzer and ASan+UBSan.
FUZZERS=(fuzz_gguf_file:gguf fuzz_gguf_model:gguf fuzz_dequant:dequant fuzz_hf_config:hf_config
  fuzz_safetensors:safetensors fuzz_tokenizer:tokenizer fuzz_recipe:recipe fuzz_upload:upload)
build_fuzzers() {  # [niced]: at the lowest CPU priority
  if [ "${1:-}" = niced ]; then renice -n 19 -p "$BASHPID" >/dev/null; fi
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DCOMPRESSD_FUZZ=ON -DCOMPRESSD_BUILD_TESTS=OFF -DCOMPRESSD_BENCH=OFF -DCOMPRESSD_CUDA=OFF >/dev/null
  ninja -C build-fuzz -j"$JOBS" "${FUZZERS[@]%%:*}"
}
FUZZ_BUILD_PID=""

if [ "$SAN" = 1 ]; then
  # Everything that parses untrusted input or runs concurrently: the service,
  # the client, the worker, the model-file parsers and the tokenizer. The dense
  # numerical kernels (nn, algorithms) are covered by their golden tests above.
  SAN_TARGETS=(compressd compress-worker compressctl make-tiny-llama
    common_test client_test server_core_test server_edge_rpc_test server_edge_http_test
    server_edge_supervisor_test model_io_test pipeline_test worker_process_test pipeline_model_job_test
    integration_test server_edge_auth_test security_integration_test
    upload_errors_test gguf_test gguf_hf_test tokenizer_test tokenizer_gguf_test s3_integration_test)
  # Built with clang (as the fuzz targets are): its ASan+UBSan build of these
  # targets takes about 20% less time than GCC's, and it is a second compiler's
  # -Werror over the same code.
  phase "build (ASan+UBSan, clang): ${SAN_TARGETS[*]}"
  cmake -S . -B build-asan -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
    -DCOMPRESSD_SANITIZE=ON -DCOMPRESSD_CUDA=OFF \
    -DCMAKE_CXX_FLAGS_DEBUG="-g1" \
    -DCOMPRESSD_WERROR=ON -DCOMPRESSD_BENCH=OFF -DCOMPRESSD_PYTHON="$PWD/.venv/bin/python" \
    -DCOMPRESSD_REAL_MODEL="$REAL_MODEL" >/dev/null
  ninja -C build-asan -j"$JOBS" "${SAN_TARGETS[@]}"
  if [ "$FUZZ" = 1 ]; then
    # The tests below mostly wait (servers, leases, an S3 server starting), so
    # the fuzz targets build beside them at the lowest CPU priority.
    phase "build (libFuzzer, clang), niced, beside the ASan tests"
    mkdir -p build-fuzz
    build_fuzzers niced > build-fuzz/build.log 2>&1 &
    FUZZ_BUILD_PID=$!
  fi
  phase "tests under ASan+UBSan"
  # Python-checked and real-model tests ran above (a Debug build's floats are
  # not the recorded outputs of tests/regression, and the model runs are slow).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" --timeout 900 -LE 'python|real_model' \
      -E '_NOT_BUILT$'
fi

if [ "$FUZZ" = 1 ]; then
  # Each fuzz target runs on a scratch copy of its committed corpus (new
  # inputs it finds are not written back). A crash fails the run.
  FUZZ_SECONDS=${COMPRESSD_FUZZ_SECONDS:-10}
  if [ -n "$FUZZ_BUILD_PID" ]; then
    wait "$FUZZ_BUILD_PID" || { tail -40 build-fuzz/build.log; echo "fuzz: the build failed"; exit 1; }
  else
    phase "build (libFuzzer, clang)"
    build_fuzzers
  fi
  phase "fuzzing, ${FUZZ_SECONDS} s per target"
  for entry in "${FUZZERS[@]}"; do
    target=${entry%%:*}
    scratch=$(mktemp -d)
    cp -r "tests/fuzz/corpus/${entry##*:}/." "$scratch/"
    ASAN_OPTIONS=detect_leaks=1 "build-fuzz/tests/fuzz/$target" -max_total_time="$FUZZ_SECONDS" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$scratch" 2>"$scratch.log" ||
      { tail -40 "$scratch.log"; echo "fuzz: $target found a failure"; exit 1; }
    echo "fuzz: $target: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch.log" | grep -o '[0-9]*$') runs, no failure"
    rm -rf "$scratch" "$scratch.log"
  done
  echo "fuzz: ${#FUZZERS[@]} passed, 0 failed"
fi
phase "done"
