#!/usr/bin/env bash
# Installs what is missing, builds, and starts compressd with embedded
# defaults: SQLite job store and blob store under ./data, gRPC on
# localhost:50051, HTTP (metrics, health, dashboard) on localhost:8080, and
# one local compress-worker. Extra arguments are passed to compressd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-python
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build compressd compress-worker compressctl
exec build/bin/compressd --data-dir ./data --grpc-port 50051 --http-port 8080 --local-workers 1 "$@"
