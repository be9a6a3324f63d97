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
  echo "== build (ASan+UBSan)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCOMPRESSD_SANITIZE=ON \
    -DCOMPRESSD_WERROR=ON -DCOMPRESSD_PYTHON="$PWD/.venv/bin/python" \
    -DCOMPRESSD_REAL_MODEL="$REAL_MODEL" >/dev/null
  ninja -C build-asan -j"$JOBS"
  echo "== tests under ASan+UBSan (Python reference checks excluded)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" --timeout 900 -LE python
fi
