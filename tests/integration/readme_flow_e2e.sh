#!/usr/bin/env bash
# The README's "A first job" block, run as written: compressd started the way
# scripts/serve.sh starts it (data under ./data, so the admin key it writes on
# first start is ./data/admin.key), then the block's commands from the
# repository root. Only /tmp/ is moved into this test's own directory.
# Usage: readme_flow_e2e.sh BIN_DIR SOURCE_DIR
set -euo pipefail
BIN=$(cd "$1" && pwd); SRC=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/root/build" && ln -s "$BIN" "$work/root/build/bin"
cd "$work/root"
"$BIN/compressd" --data-dir ./data --grpc-port 0 --http-port 0 --local-workers 1 \
  > "$work/server.out" 2> "$work/server.err" &
pid=$!
for _ in $(seq 300); do grep -q "^compressd listening" "$work/server.out" && break; sleep 0.1; done
export COMPRESSD_SERVER=$(sed -n 's/^compressd listening grpc=\([^ ]*\) .*/\1/p' "$work/server.out")
[ -n "$COMPRESSD_SERVER" ] || { cat "$work/server.err"; exit 1; }
unset COMPRESSD_KEY COMPRESSD_KEY_FILE
# The first ```sh block after "## A first job".
awk '/^## A first job/{on=1} on && /^```sh$/{code=1; next} code && /^```$/{exit} code' \
  "$SRC/README.md" | sed "s#/tmp/#$work/#g" > "$work/flow.sh"
grep -q "compressctl artifacts download" "$work/flow.sh" || { echo "README block not found"; exit 1; }
bash -euo pipefail "$work/flow.sh"
test -s "$work/tiny-pruned/model.safetensors"
# Without the key the same server refuses.
unset COMPRESSD_KEY_FILE
if "$BIN/compressctl" models list 2> "$work/anon.err"; then echo "no key was accepted"; exit 1; fi
grep -q UNAUTHENTICATED "$work/anon.err"
echo "README first-job flow: OK"
