"""Fixed-shape attack steps compiled once and reused: one CUDA graph per step on CUDA.

A small batch on a GPU spends its time launching kernels, not computing: one PGD step of Lite0 on one image
launches hundreds. Compiled, the whole step (forward, backward, sign step, projection) is recorded as one CUDA
graph and replayed. Building it costs seconds to minutes, so a step is built once per (model, input shape,
attack variant, device, precision, backend) and kept. engine.precision says which backend and why.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F

from engine.attacks.projections import project_linf

# Keyed by id(model) with the model itself held in the entry: the compiled function closes over the model, so a
# weak reference would never let it go anyway, and while the entry holds it no other model can take its id.
# The size bounds what the cache pins (models, graphs, a CUDA graph's memory pool); the oldest entry goes first.
CACHE_SIZE = 8
_CACHE: OrderedDict[tuple, tuple[torch.nn.Module, Callable]] = OrderedDict()
builds = 0  # steps compiled since start: a reused step does not add one


def eligible(model) -> bool:
    """A plain module sees the whole batch: a row-wise model (engine.attacks.averaging) answers per row."""
    return isinstance(model, torch.nn.Module) and not getattr(model, "rowwise", False)


def _forward(model, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    # The Classifier's forward reads the run's precision from a context variable, which a compiled graph
    # cannot guard on; its mode is part of the cache key and passed here instead.
    logits_in = getattr(model, "logits_in", None)
    if logits_in is None:
        return model
    return lambda z: logits_in(z, mode)


def _sign_step(forward, targeted: bool, clip: bool, momentum: bool) -> Callable:
    """One step of engine.attacks.gradient.sign_iterations, the same arithmetic in the same order."""

    def step(x_adv, x, labels, alpha, eps, decay, velocity):
        def loss(z):
            value = F.cross_entropy(forward(z), labels)
            return -value if targeted else value

        # torch.func.grad traces into the same graph as the step; torch.autograd.grad would split it in three.
        grad = torch.func.grad(loss)(x_adv)
        if momentum:
            scale = grad.abs().mean(dim=tuple(range(1, x.dim())), keepdim=True)
            grad = grad / torch.where(scale > 0, scale, torch.ones_like(scale)) + decay * velocity
            velocity = grad
        return project_linf(x_adv + alpha * grad.sign(), x, eps, clip), velocity

    return step


def sign_step(
    model, x: torch.Tensor, *, targeted: bool, clip: bool, momentum: bool, mode: str, backend: str
) -> Callable:
    """The compiled sign-gradient step for this model and batch shape, built on first use.

    Call it as step(x_adv, x, labels, alpha, eps, decay, velocity) -> (x_adv, velocity) with alpha, eps and
    decay as 0-d tensors on the batch's device: as Python floats every new ε would compile anew."""
    global builds
    # BIM and PGD share a step (PGD only starts elsewhere). Past torch._dynamo.config.recompile_limit builds of
    # one step variant in a process, dynamo runs the step eagerly: the same images, without the speed-up.
    key = (id(model), tuple(x.shape), x.dtype, str(x.device), "sign", targeted, clip, momentum, mode, backend)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key][1]
    cuda = x.device.type == "cuda"
    step = _sign_step(_forward(model, mode), targeted, clip, momentum)
    # Fixed shapes: a shape-generic graph would give up the CUDA graph, the point of compiling.
    if backend == "inductor":
        compiled = torch.compile(step, mode="reduce-overhead" if cuda else "default", dynamic=False)
    else:
        compiled = torch.compile(step, backend=backend, dynamic=False)
    graphs = cuda and backend in ("inductor", "cudagraphs")

    def run(*args):
        if graphs:
            # Each call is a new step: the previous replay's outputs may be overwritten, so they are copied out.
            torch.compiler.cudagraph_mark_step_begin()
            x_adv, velocity = compiled(*args)
            return x_adv.clone(), None if velocity is None else velocity.clone()
        return compiled(*args)

    _CACHE[key] = (model, run)
    builds += 1
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return run


def clear() -> None:
    _CACHE.clear()
