#!/usr/bin/env bash
# Install the peer libraries of bench/peers.py into .peers/ (pinned in bench/requirements-peers.txt),
# --no-deps and with --target, so the app's environment cannot change. bench/peers.py puts .peers/
# on sys.path itself. Does nothing when .peers/ already holds exactly these pins.
#
#   bash bench/install_peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
REQ=bench/requirements-peers.txt
if cmp -s "$REQ" .peers/requirements-peers.txt 2>/dev/null; then
    exit 0
fi
# Into a fresh folder first: a failed or partial install leaves no .peers/ behind (the test then skips).
rm -rf .peers.new
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --target .peers.new -r "$REQ"
cp "$REQ" .peers.new/requirements-peers.txt
rm -rf .peers
mv .peers.new .peers
