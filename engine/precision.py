"""Which arithmetic a run computes in, and `auto`, which picks it by device, batch and model size.

Modes: `fp32` (strict: no TF32 anywhere), `tf32` (float32 tensors, TF32 matmuls and convolutions on CUDA),
`bf16`/`fp16` (autocast of the network body; logits stay float32). `auto` picks from `CROSSOVERS`, and a
run under `auto` scores its images in fp32 (as does every forward outside a run), so the policy changes speed,
never which images are fooled.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch

MODES = ("fp32", "tf32", "bf16", "fp16")
CHOICES = ("auto", *MODES)
AUTOCAST: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Above this many parameters a network's arithmetic, not its kernel launches, sets the time from small batches on
# (Lite0: 4.7 M; the Fashion-MNIST LeNets and the test models: well under 1 M).
LARGE_MODEL = 1_000_000


@dataclass(frozen=True)
class Crossovers:
    """Per (device type, model size): the smallest batch that runs in TF32 and in bf16 (None: never) and the
    largest batch whose fixed-shape loop is compiled by default (None: never; `compile=True` still does)."""

    tf32: int | None
    bf16: int | None
    compile_upto: int | None


# Measured on one H200 (torch 2.11, CUDA 13), PGD-10, ours with eager loops; bench/gpu.sh re-measures them.
# - bf16 over TF32-convolution fp32: LeNet 0.81x at batch 256, 1.43x at 10,000 (the crossover lies between and
#   is not narrowed yet); Lite0 0.77x at 1, 0.89x at 8, 0.91x at 64, 1.38x at 256.
# - TF32 from where one forward+backward starts to grow with the batch (Lite0 8.9 ms at 1, 9.3 at 8, 11.5 at
#   64, 37.9 at 256; LeNet 1.76 ms at 256, 8.5 at 10,000): below it the loop waits on launches, TF32 buys nothing
#   and fp32 is exact.
# - Compiled loops (CUDA graphs) where launches dominate: Lite0 at 1-64 images, LeNet at 256.
# fp16 is never chosen: its narrow range can overflow logits and loss gradients; it stays available by name.
# No CPU row: TF32 does not exist there, bf16 is emulated on CPUs without bf16 units, and compiling a loop costs
# tens of seconds (inductor, cold, the digits test model: about 30 s of CPU) that a CPU run rarely wins back.
CROSSOVERS: dict[tuple[str, str], Crossovers] = {
    ("cuda", "small"): Crossovers(tf32=1024, bf16=4096, compile_upto=256),
    ("cuda", "large"): Crossovers(tf32=64, bf16=256, compile_upto=64),
}

_NEVER = Crossovers(None, None, None)

# How a compiled loop is built, per device type. Sign-gradient steps turn rounding into whole steps: inductor's fused
# softmax and reductions round differently from the eager kernels, so on a confident image a gradient entry of
# 1e-9 changes sign (37 entries of the digits model's first step on 64 images; after PGD-10 images 2ε apart). These
# backends run the eager kernels, so the images are the eager loop's: on CUDA replayed as one CUDA graph, which
# removes the launches that small batches wait on; on the CPU only traced (it checks the path; nothing to gain).
# `compile="inductor"` asks for fused kernels (mode reduce-overhead on CUDA) where speed matters more than that.
COMPILE_BACKENDS = {"cuda": "cudagraphs"}
COMPILE_BACKEND_ELSEWHERE = "aot_eager"
BACKEND_NAMES = ("cudagraphs", "aot_eager", "inductor")

# The mode a run fixed for every forward inside it (see `running`), whatever batch each forward sees.
_RUN_MODE: contextvars.ContextVar[str | None] = contextvars.ContextVar("precision_run_mode", default=None)


def check(precision: str) -> str:
    if precision not in CHOICES:
        raise ValueError(f"unknown precision {precision!r}: choose from {', '.join(CHOICES)}")
    return precision


def parameter_count(model) -> int:
    counted = getattr(model, "_parameter_count", None)
    if counted is None:
        counted = sum(p.numel() for p in model.parameters()) if isinstance(model, torch.nn.Module) else 0
        with contextlib.suppress(AttributeError):
            model._parameter_count = counted
    return counted


def crossovers(device_type: str, parameters: int) -> Crossovers:
    return CROSSOVERS.get((device_type, "large" if parameters >= LARGE_MODEL else "small"), _NEVER)


def choose(device_type: str, batch: int, parameters: int) -> str:
    """The mode `auto` runs a batch of `batch` images through a model of `parameters` weights in."""
    row = crossovers(device_type, parameters)
    if row.bf16 is not None and batch >= row.bf16:
        return "bf16"
    if row.tf32 is not None and batch >= row.tf32:
        return "tf32"
    return "fp32"


def compile_by_default(device_type: str, batch: int, parameters: int) -> bool:
    """Whether a fixed-shape attack loop is compiled when the caller does not say."""
    row = crossovers(device_type, parameters)
    return row.compile_upto is not None and batch <= row.compile_upto


def compile_backend(compile, device_type: str, batch: int, parameters: int) -> str:
    """The torch.compile backend a fixed-shape loop runs with ('' for the eager loop): `compile` None asks the
    table, True takes the device's backend, a backend name is taken as it is."""
    if compile is None:
        compile = compile_by_default(device_type, batch, parameters)
    if compile is False:
        return ""
    if compile is True:
        return COMPILE_BACKENDS.get(device_type, COMPILE_BACKEND_ELSEWHERE)
    if compile not in BACKEND_NAMES:
        raise ValueError(f"compile must be True, False, None or one of {', '.join(BACKEND_NAMES)}, got {compile!r}")
    return compile


def resolve(precision: str, device_type: str, batch: int, parameters: int) -> str:
    """A concrete mode: `auto` chosen for this batch, the others as they are."""
    return choose(device_type, batch, parameters) if check(precision) == "auto" else precision


def requested(model) -> str:
    """The model's setting; a wrapper without one (a bank of models) takes its models' common one."""
    own = getattr(model, "precision", None)
    if own is None and isinstance(model, torch.nn.Module):
        inner = {m.precision for m in model.modules() if isinstance(getattr(m, "precision", None), str)}
        own = inner.pop() if len(inner) == 1 else None
    return own or "fp32"


def of_run(model, x: torch.Tensor) -> str:
    """The mode a run of `model` on batch `x` computes in."""
    return resolve(requested(model), x.device.type, x.shape[0], parameter_count(model))


def effective(own: str) -> str:
    """The mode one forward computes in: the run's inside an attack run, else the model's own, where `auto` is
    fp32: predictions, transfer tables and accuracies made outside a run are scores, and scores are exact."""
    return _RUN_MODE.get() or ("fp32" if own == "auto" else own)


@contextlib.contextmanager
def tf32_flags(mode: str, device_type: str) -> Iterator[None]:
    """TF32 matmuls and convolutions on for `tf32` (and under autocast), off for strict fp32; restored after.

    PyTorch's own default turns TF32 convolutions on, so an unmanaged "fp32" run is partly TF32: a success found
    at the boundary then flips when re-scored. The flags are process-wide: two CUDA runs in different threads
    with different modes see each other's setting while both run (the CPU ignores them)."""
    if device_type != "cuda":
        yield
        return
    wanted = mode != "fp32"
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = wanted
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


@contextlib.contextmanager
def running(mode: str, device_type: str) -> Iterator[None]:
    """Every forward and backward inside computes in `mode` (a concrete mode, not `auto`)."""
    if mode not in MODES:
        raise ValueError(f"a run computes in one of {', '.join(MODES)}, not {mode!r}")
    token = _RUN_MODE.set(mode)
    try:
        with tf32_flags(mode, device_type):
            yield
    finally:
        _RUN_MODE.reset(token)
