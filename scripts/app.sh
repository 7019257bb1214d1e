#!/usr/bin/env bash
# Install what is needed (once) and start the app on the offline defaults: http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/streamlit run app/main.py "$@"
