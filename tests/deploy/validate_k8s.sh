#!/usr/bin/env bash
# deploy/k8s validated offline (tests/deploy/validate_k8s.py), with PyPI
# checkov installed on first use into its own venv in the build tree (its
# dependencies would clash with the test venv's pins).
# Usage: validate_k8s.sh PYTHON SOURCE_DIR BUILD_DIR
set -euo pipefail
PY=$1; SRC=$2; BUILD=$3
CK=$BUILD/checkov-venv
if [ ! -x "$CK/bin/checkov" ]; then
  python3 -m venv "$CK"
  "$CK/bin/pip" install -q --disable-pip-version-check checkov==3.3.30
fi
exec "$PY" "$SRC/tests/deploy/validate_k8s.py" "$SRC" --checkov "$CK/bin/checkov"
