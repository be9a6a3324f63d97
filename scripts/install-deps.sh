#!/usr/bin/env bash
# Installs everything compressd needs to build and test, idempotently:
# Debian packages (C++ toolchain and libraries) and, unless --no-python, a
# Python venv at .venv with the independent reference tools used by tests
# (never a runtime dependency of the server or workers).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_PYTHON=1
WITH_DEBS=1
for arg in "$@"; do
  case "$arg" in
    --no-python) WITH_PYTHON=0 ;;
    --python-only) WITH_DEBS=0 ;;  # the venv alone (the Debian packages installed before)
    *) echo "usage: $0 [--no-python | --python-only]" >&2; exit 2 ;;
  esac
done

# ocl-icd-opencl-dev: Debian's dnnl-config.cmake finds OpenCL (REQUIRED) even
# for the CPU build; without it the configure step fails.
DEBS=(
  build-essential cmake ninja-build pkg-config git curl python3 python3-venv
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libeigen3-dev prometheus-cpp-dev libsqlite3-dev libpq-dev postgresql
  libopenblas-dev libdnnl-dev ocl-icd-opencl-dev libgtest-dev libgmock-dev libbenchmark-dev libssl-dev libcurl4-openssl-dev
  nlohmann-json3-dev libyaml-cpp-dev libcpp-httplib-dev libre2-dev
  clang libclang-rt-14-dev libjs-chart.js
  chromium chromium-driver
)

missing=()
[ "$WITH_DEBS" = 1 ] || DEBS=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
elif [ "$WITH_DEBS" = 1 ]; then
  echo "install-deps: Debian packages present"
fi

if [ "$WITH_PYTHON" = 1 ]; then
  REQ=tests/python/requirements.txt
  STAMP=.venv/.requirements.sha256
  # llama-cpp-python is built from source for this CPU unless told otherwise.
  # On Sapphire Rapids (AMX) its native build repacks Q4/Q8 weights for AMX and
  # segfaults in the first decode (ggml-org/llama.cpp#20824), so build the
  # portable AVX2 variant, which runs on every x86-64-v3 machine. The
  # multimodal library (mtmd, LLAVA_BUILD) is not built: no test uses it and
  # llama_cpp imports it only for image chat formats.
  export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF"
  want=$( (cat "$REQ"; echo "$CMAKE_ARGS") | sha256sum | cut -d' ' -f1)
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "install-deps: creating .venv from $REQ (PyPI)"
    rm -rf .venv  # a package built with other CMAKE_ARGS would count as installed
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    # no cache: a wheel built before with other CMAKE_ARGS would be reused
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) .venv/bin/pip install -q --no-cache-dir -r "$REQ"
    echo "$want" > "$STAMP"
  else
    echo "install-deps: .venv up to date"
  fi
fi
