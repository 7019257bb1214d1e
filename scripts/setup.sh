#!/usr/bin/env bash
# Create .venv (once) and install the pinned runtime dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, torchvision, streamlit, efficientnet_lite_pytorch" \
    || { echo "setup failed: dependencies did not install" >&2; exit 1; }
