#!/usr/bin/env bash
# Install what is needed (once) and run the test suite. This is exactly what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
# torchattacks' declared pins (requests) clash with streamlit's: it is a test oracle only.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps torchattacks==3.5.1 2>&1 | grep -v "^WARNING: Location" || true
# grad-cam would pull opencv-python beside our opencv-python-headless: its other needs are in requirements-test.txt.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps grad-cam==1.5.7 2>&1 | grep -v "^WARNING: Location" || true
# The peer attack libraries of bench/peers.py go into .peers/ (--no-deps --target: never this environment).
# Best effort, like the rest: tests/test_bench.py::test_peers_quick is skipped without them.
{ PYTHON=.venv/bin/python bash bench/install_peers.sh 2>&1 || echo "peer libraries not installed: test_peers_quick will be skipped"; } | grep -v "^WARNING: Location" || true
# The browser test needs Chromium (Debian package; never `playwright install`). Best effort: skipped without it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq chromium >/dev/null 2>&1 || echo "chromium not installed: the browser test will be skipped") || true
fi
exec .venv/bin/python -m pytest "$@"
