#!/usr/bin/env bash
# Install what is needed (once), lint, and run the test suite: exactly what CI runs (.ci/run sets CI=1, under which
# a test that would be skipped for a missing oracle library, peer library or browser fails instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Keeps going when an optional install fails, but says so on a line of its own: the tests that need it are then
# skipped here and fail under CI, each naming what is missing.
missing() { echo "NOT INSTALLED: $1" >&2; }
# Runs a command quietly (pip's noise about the offline wheel folder dropped) and returns its own status.
quiet() {
    local log status=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || status=$?
    grep -v "^WARNING: Location" "$log" || true
    rm -f "$log"
    return "$status"
}
pip_install() { quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"; }

# The runner and the linter: without them nothing below means anything.
pip_install -r requirements-test.txt || { echo "requirements-test.txt did not install" >&2; exit 1; }

# Lint first: a finding fails the run in seconds instead of after the suite.
.venv/bin/ruff check .
.venv/bin/ruff format --check .

# torchattacks' declared pins (requests) clash with streamlit's: it is a test oracle only.
pip_install --no-deps torchattacks==3.5.1 \
    || missing "torchattacks 3.5.1 (pip install --no-deps torchattacks==3.5.1): its oracle tests"
# grad-cam would pull opencv-python beside our opencv-python-headless: its other needs are in requirements-test.txt.
pip_install --no-deps grad-cam==1.5.7 \
    || missing "grad-cam 1.5.7 (pip install --no-deps grad-cam==1.5.7): the Grad-CAM oracle tests"
# The attribution and second CAM oracles of tests/test_heatmap_methods.py, --no-deps like grad-cam: what they need
# (matplotlib, numpy, packaging, pillow, tqdm) is pinned in requirements*.txt.
pip_install --no-deps captum==0.9.0 torchcam==0.5.0 \
    || missing "captum 0.9.0 and torchcam 0.5.0 (pip install --no-deps captum==0.9.0 torchcam==0.5.0): heat-map oracles"
# The peer attack libraries of bench/peers.py go into .peers/ (--no-deps --target: never this environment).
PYTHON=.venv/bin/python quiet bash bench/install_peers.sh \
    || missing "the peer libraries in .peers/ (bash bench/install_peers.sh): the peer comparisons"

# The browser tests drive Debian's Chromium (never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        # A fresh machine has no package lists yet: update first, or the install finds no chromium.
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1
        then
            missing "chromium (apt-get update && apt-get install -y chromium failed): the browser tests"
        fi
    else
        missing "chromium: as root, apt-get update && apt-get install -y chromium (Debian's) for the browser tests"
    fi
fi
exec .venv/bin/python -m pytest "$@"
