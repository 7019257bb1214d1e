"""Noisy multi-model averaging (Menn 2023, Eq 4.1; docs/sources.md).

    δ(x) = 1/(m·n) · Σ_i Σ_j δ_i(x + z_ij),   z_ij ~ N(0, σ²)

Any attack of the catalogue that talks to its model only through
`Context.logits` (`AttackSpec.averageable`) is run once over one batch that
holds every (model, copy, image) row: a `ModelBank` answers each row with its
own model and adds that row's calibration offset, so the copies *and* the models
share one attack loop (one Python iteration per step, whatever m and n are).
Rows beyond a memory cap are split into shards automatically.

The thesis' two switches (§4.7):
- `clip=False`: iterates may leave [0, 1]; clipping would bias the average
  towards the image (a white pixel keeps only negative steps).
- `calibrate=True`: f'(x + z + δ) = f(x + z + δ) + (f(x) − f(x + z)), so the noise
  alone does not move the decision the attack sees (DeepFool would otherwise
  start from an already-misclassified copy, C&W pick another runner-up).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from engine.attacks.base import (
    Callback,
    Context,
    check_input,
    check_seed,
    model_defaults,
    resolve_labels,
    resolve_params,
)
from engine.attacks.chunks import chunk_size

MAX_COPIES = 10_000


class ModelBank(torch.nn.Module):
    """m models behind one batch: row r is answered by model `owner[r]`, plus `offset[r]` if given.

    `rowwise = True` tells `Context.logits` to pass which batch rows a call's inputs are.
    """

    rowwise = True

    def __init__(self, models, owner: torch.Tensor, offset: torch.Tensor | None = None):
        super().__init__()
        self.models = list(models)  # not a ModuleList: the bank must not own (or re-register) shared models
        self.owner = owner
        self.offset = offset

    def forward(self, inputs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        if rows is None:
            rows = torch.arange(inputs.shape[0], device=inputs.device)
        owners = self.owner[rows]
        out = None
        for i in torch.unique(owners).tolist():
            sel = (owners == i).nonzero().squeeze(1)
            part = self.models[i](inputs.index_select(0, sel))
            if out is None:
                out = part.new_zeros(inputs.shape[0], part.shape[1])
            out = out.index_copy(0, sel, part)  # out of place, so gradients reach every model's rows
        if self.offset is not None:
            out = out + self.offset[rows]
        return out


@dataclass
class AveragedResult:
    """Eq 4.1's averaged perturbation for each image, and how the individual copies fared."""

    attack: str
    params: dict
    models: list[str]
    copies: int
    sigma: float
    clip: bool
    calibrate: bool
    seed: int
    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    delta: torch.Tensor  # N×C×H×W, the average over models and copies
    copy_success: torch.Tensor  # m×n×N bool: did copy j fool (calibrated) model i
    copies_done: int  # rows completed before a cancellation, out of m·n·N
    stopped_early: bool
    seconds: float

    @property
    def success_rate(self) -> float:
        """Share of the individual (model, copy) attacks run that fooled their own (calibrated) model."""
        return float(self.copy_success.flatten()[: self.copies_done].float().mean())

    def quantised(self, eps: float) -> torch.Tensor:
        """δ' = ε·sign(δ) (Eq 4.3): compare attack strength at one L∞ size."""
        return eps * self.delta.sign()


def check_models(models) -> list:
    models = list(models)
    if not models:
        raise ValueError("averaging needs at least one model")
    domains = {getattr(m, "domain", None) for m in models}
    if len(domains) > 1:
        raise ValueError(f"the models must share one domain (same inputs and classes), got {sorted(map(str, domains))}")
    return models


def averaged(
    name: str,
    models,
    x: torch.Tensor,
    y=None,
    target=None,
    copies: int = 1,
    sigma: float = 0.0,
    clip: bool = False,
    calibrate: bool = True,
    seed: int = 0,
    callback: Callback | None = None,
    noise: torch.Tensor | None = None,
    max_rows: int | None = None,
    **params,
) -> AveragedResult:
    """Run attack `name` on every model × noisy copy of each image of `x` and average δ (Eq 4.1).

    Variants: one model and σ = 0 is the plain attack; several models with σ = 0 is
    multi-model averaging; σ > 0 adds n Gaussian copies per model. `noise` (m×n×N×C×H×W)
    replaces the seeded draw, e.g. to compare against a reference loop. `max_rows`
    caps the rows per attack batch (default: about 48 ImageNet-sized images' worth).
    `callback(step, total, state)` returning False cancels; δ then averages the rows done.
    """
    from engine.attacks import get

    spec = get(name)
    if not spec.averageable:
        raise ValueError(f"{name} cannot be averaged: it reads more of the model than its outputs")
    models = check_models(models)
    x = check_input(x)
    values = resolve_params(spec, model_defaults(models[0]), params)
    check_seed(seed)
    if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= MAX_COPIES:
        raise ValueError(f"copies must be a whole number in [1, {MAX_COPIES}], got {copies!r}")
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a number, got {sigma!r}") from None
    if not 0.0 <= sigma <= 10.0:  # also rejects NaN
        raise ValueError(f"sigma must lie in [0, 10], got {sigma!r}")
    m, n, count = len(models), copies, x.shape[0]
    sample = x.shape[1:]

    with torch.no_grad():
        clean = torch.stack([model(x) for model in models])  # m×N×K
    mean_clean = clean.mean(0)  # default labels: the source models' mean logits
    y = mean_clean.argmax(1) if y is None else y
    y, target = resolve_labels(spec, mean_clean.shape[1], mean_clean.shape[0], mean_clean.device, y, target)

    generator = torch.Generator(device=x.device)
    generator.manual_seed(seed)
    if noise is None:
        noise = torch.randn((m, n, count, *sample), generator=generator, device=x.device) * sigma
    elif tuple(noise.shape) != (m, n, count, *sample):
        raise ValueError(f"noise must have shape {(m, n, count, *sample)}, got {tuple(noise.shape)}")
    noisy = (x.unsqueeze(0).unsqueeze(0) + noise).reshape(m * n * count, *sample)
    if clip:
        noisy = noisy.clamp(0.0, 1.0)

    total_rows = m * n * count
    shard = min(total_rows, max_rows or chunk_size(sample))
    shards = (total_rows + shard - 1) // shard
    delta_sum = torch.zeros_like(x)
    success = torch.zeros(total_rows, dtype=torch.bool, device=x.device)
    done, stopped = 0, False
    start = time.perf_counter()
    for s in range(shards):
        rows = torch.arange(s * shard, min((s + 1) * shard, total_rows), device=x.device)
        image = rows % count
        owner = rows // (n * count)
        bank = ModelBank(models, owner)
        x_rows = noisy[rows]
        if calibrate:
            with torch.no_grad():
                bank.offset = clean[owner, image] - bank(x_rows)

        def relay(step, total, state, s=s):
            if callback is None:
                return True
            return callback(s * total + step, shards * total, {**state, "shard": s + 1, "shards": shards})

        ctx = Context(
            model=bank,
            x=x_rows,
            y=y[image],
            target=None if target is None else target[image],
            generator=generator,
            callback=relay,
            clip=clip,
        )
        x_adv = spec.fn(ctx, **values).detach()
        step_delta = x_adv - x_rows
        if spec.norm == "linf":
            step_delta = step_delta.clamp(-values["eps"], values["eps"])
        if clip:
            step_delta = (x_rows + step_delta).clamp(0.0, 1.0) - x_rows
        with torch.no_grad():
            success[rows] = ctx.reached(bank(x_rows + step_delta).argmax(1))
        delta_sum.index_add_(0, image, step_delta)
        done += rows.numel()
        if ctx.stopped_early:
            stopped = True
            break
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    # Each image's share of the rows done (all m·n of them unless cancelled).
    per_image = torch.bincount(torch.arange(done, device=x.device) % count, minlength=count).clamp_min(1)
    return AveragedResult(
        attack=name,
        params=values,
        models=[getattr(model, "name", type(model).__name__) for model in models],
        copies=n,
        sigma=sigma,
        clip=clip,
        calibrate=calibrate,
        seed=seed,
        x=x,
        y=y,
        target=target,
        delta=delta_sum / per_image.view(-1, *([1] * len(sample))).to(x.dtype),
        copy_success=success.view(m, n, count),
        copies_done=done,
        stopped_early=stopped,
        seconds=time.perf_counter() - start,
    )
