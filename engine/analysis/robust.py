"""Adversarially robust models beside their plain twins.

A robust model's gradient follows the object: its perturbations are known to look like
the thing they change (Tsipras et al. 2019, "Robustness may be at odds with accuracy";
Santurkar et al. 2019). Menn 2023 reaches object-like perturbations another way, by
averaging plain models over noisy copies. This module scores the models
under attack and makes the side-by-side comparison the app and the CLI show.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine import attacks, domains, images, progress
from engine.analysis import recognisable

PGD_STEPS = 20


def pgd_accuracy(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_values: Sequence[float],
    *,
    steps: int = PGD_STEPS,
    batch: int = 500,
    seed: int = 0,
    callback: progress.Callback | None = None,
) -> list[dict]:
    """Accuracy under L∞ PGD-`steps` (random start, α = 2.5ε/steps) at each ε, plus the clean accuracy (ε 0).
    A cancelled run returns the budgets it finished."""
    y = y.to(model.device)
    rows, budgets = [], [0.0, *eps_values]
    for i, eps in enumerate(budgets):
        correct = 0
        for lo in range(0, x.shape[0], batch):
            xb = x[lo : lo + batch].to(model.device)
            if eps == 0:
                with torch.no_grad():
                    pred = model(xb).argmax(1)
            else:
                pred = attacks.run("pgd", model, xb, y=y[lo : lo + batch], eps=eps, steps=steps, seed=seed).pred_adv
            correct += int((pred == y[lo : lo + batch]).sum())
            share = (lo + xb.shape[0]) / x.shape[0]
            if callback is not None and callback(i + share, len(budgets), {"eps": eps}) is False:
                return rows
        rows.append(
            {
                "model": model.name,
                "eps": eps,
                "steps": 0 if eps == 0 else steps,
                "n": x.shape[0],
                "accuracy": correct / x.shape[0],
            }
        )
    return rows


def compare(
    models: Sequence,
    x: torch.Tensor,
    attack: str,
    *,
    y: torch.Tensor | None = None,
    target=None,
    seed: int = 0,
    callback: progress.Callback | None = None,
    **params,
) -> list[dict]:
    """The same attack with the same parameters on each model (a plain model and its robust twin): per model the
    result, its δ display-normalised the way the thesis shows perturbations, and whether it fooled the model."""
    out = []
    for i, model in enumerate(models):
        result = attacks.run(
            attack,
            model,
            x.to(model.device),
            y=y,
            target=target,
            seed=seed,
            callback=progress.part(callback, i, len(models), model=model.name),
            **params,
        )
        out.append(row(model, result))
        if result.stopped_early:
            break
    return out


def row(model, result) -> dict:
    """One model's side of the comparison: whether it is a robust model, its result, its δ as shown (uint8)."""
    domain = domains.of(model)
    shown = recognisable.display_normalise(result.delta[:1], domain, targeted=result.target is not None)
    fooled = None if result.success is None else bool(result.success[0])
    return {
        "model": model.name,
        "robust": domain.is_robust(model.name),
        "result": result,
        "fooled": fooled,
        "shown": images.to_uint8(shown),
    }
