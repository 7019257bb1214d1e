#!/usr/bin/env bash
# Proof of headroom: run the whole suite on digits fixtures trained from other seeds.
#   bash scripts/headroom.sh 10 20 30        # extra arguments after -- go to pytest
# Each seed's weights are made once by tests/fixtures/make_tiny_models.py (git-ignored);
# a threshold that fails here was tuned to one set of weights, not to the code.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do seeds+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#seeds[@]} -gt 0 ] || { echo "usage: bash scripts/headroom.sh SEED [SEED ...] [-- PYTEST ARGS]" >&2; exit 2; }
bash scripts/setup.sh
status=0
for seed in "${seeds[@]}"; do
    [ -f "tests/fixtures/digits-cnn-$seed.pt" ] || PE_FIXTURE_SEED=$seed .venv/bin/python tests/fixtures/make_tiny_models.py
    echo "== fixture seed $seed"
    PE_FIXTURE_SEED=$seed bash scripts/test.sh -q "$@" || status=1
done
exit $status
