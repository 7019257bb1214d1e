#!/usr/bin/env bash
# Regenerate every issue-8 figure listed in bench/README.md, one script after another
# (never two at once: on 2 cores a second job doubles every time). ~3 h on 2 CPU cores.
#
#   bash bench/run_all.sh                # CPU
#   bash bench/run_all.sh --device cuda  # the same on a GPU (app latency stays on the CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DEVICE_ARGS=("$@")
SUFFIX=""
if [[ "${DEVICE_ARGS[*]:-}" == *cuda* ]]; then SUFFIX="_cuda"; fi
run() {  # run NAME CMD...: print, time, and keep the output under bench/results_NAME.txt
    local name=$1; shift
    echo "== $name: $*" >&2
    local start=$SECONDS
    "$@" > "bench/results_${name}${SUFFIX}.txt"
    echo "   $((SECONDS - start)) s → bench/results_${name}${SUFFIX}.txt" >&2
}
run reference_overhead $PY bench/reference_overhead.py --repeats 7 "${DEVICE_ARGS[@]}"
bash bench/install_peers.sh
run peers $PY bench/peers.py --repeats 5 "${DEVICE_ARGS[@]}"
run peers_as_given $PY bench/peers.py --repeats 5 --peer-network as-given "${DEVICE_ARGS[@]}"
run batching $PY bench/batching.py --repeats 3 "${DEVICE_ARGS[@]}"
if [[ -z "$SUFFIX" ]]; then
    run inference_rewrites $PY bench/inference_rewrites.py --repeats 7
    run onnx_overhead $PY bench/onnx_overhead.py --repeats 9
    run browser_own_model $PY bench/browser_own_model.py
    run browser_resume $PY bench/browser_resume.py
    run app_latency $PY bench/app_latency.py --repeats 5
    run sweep_scaling $PY bench/sweep_scaling.py --repeats 2
    run profile_cw $PY bench/profile_cw.py
    run browser_first_result $PY bench/browser_first_result.py --repeats 2
    run concurrency $PY bench/concurrency.py
    run classroom_latency $PY bench/classroom_latency.py
fi
