"""JSMA's teaching extras (SPEC §4; seed 001): success vs Υ, hardness H(s, t), adversarial distance A(X, t).

One JSMA run at the largest Υ is enough for a whole curve: the greedy search is
deterministic, so a run with a smaller Υ is the same trajectory cut short. An
example succeeds at Υ when the share of features it changed is ≤ Υ.
"""
from __future__ import annotations

import numpy as np
import torch

from engine import attacks
from engine.attacks.base import Context
from engine.attacks.jsma import jacobian_terms, positive_saliency_share
from engine import progress


MAX_DISTORTION = 0.145  # Υ, the paper's largest share of features JSMA may change

def distortions(model, x, y, target, *, max_distortion: float = MAX_DISTORTION, theta: int = 1, **kw) -> torch.Tensor:
    """Per example: the share of features JSMA changed to reach `target` (inf where it failed)."""
    return _changed_share(attacks.run("jsma", model, x, y=y, target=target, theta=theta, max_distortion=max_distortion, **kw))


def _changed_share(result) -> torch.Tensor:
    share = (result.delta.abs() > 0).flatten(1).float().mean(1)
    return torch.where(result.success, share, torch.full_like(share, float("inf")))


def success_curve(d: torch.Tensor, upsilons) -> list[dict]:
    """Success rate and mean distortion of the successes at each Υ, from per-example distortions."""
    rows = []
    for u in upsilons:
        hit = d <= u
        rows.append({"upsilon": float(u), "success_rate": float(hit.float().mean()),
                     "mean_distortion": float(d[hit].mean()) if bool(hit.any()) else 0.0})
    return rows


def hardness(d: torch.Tensor, upsilons) -> float:
    """H(s, t) = ∫ ε(s, t, τ) dτ: distortion integrated over the success rate, by the trapezoid rule."""
    curve = success_curve(d, upsilons)
    tau = np.array([r["success_rate"] for r in curve])
    eps = np.array([r["mean_distortion"] for r in curve])
    return float(np.trapezoid(eps, tau))


def hardness_matrix(model, x, y, *, classes=None, upsilons=None, per_pair: int = 10, callback=None, **kw) -> list[dict]:
    """H(s, t) for every source/target pair of `classes`, from `per_pair` images of each source.
    `callback` (engine.progress) runs over the pairs; a cancelled pair and the rest are left out."""
    classes = list(range(model.num_classes)) if classes is None else list(classes)
    kw = {"max_distortion": MAX_DISTORTION, **kw}
    upsilons = np.linspace(0.0, kw["max_distortion"], 30) if upsilons is None else upsilons
    pairs = [(s, t) for s in classes for t in classes if t != s and bool((y == s).any())]
    rows = []
    for i, (s, t) in enumerate(pairs):
        xs = x[y == s][:per_pair]
        ys = torch.full((xs.shape[0],), s, dtype=torch.long, device=x.device)
        result = attacks.run("jsma", model, xs, y=ys, target=torch.full_like(ys, t), **kw,
                             callback=progress.part(callback, i, len(pairs), source=s, target=t))
        if result.stopped_early:
            break
        d = _changed_share(result)
        reached = bool(torch.isfinite(d).any())
        # A pair never reached within Υ has no distortion to integrate: its hardness is unknown, not 0.
        rows.append({"source": s, "target": t, "images": int(xs.shape[0]),
                     "success_rate": float(torch.isfinite(d).float().mean()),
                     "hardness": hardness(d, upsilons) if reached else None})
    return rows


def adversarial_distance(model, x, target, theta: int = 1) -> torch.Tensor:
    """A(X, t) = 1 − share of features with positive saliency towards t; R(F) is its minimum."""
    target = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
    ctx = Context(model, x, target, target, torch.Generator(device=x.device), None)
    alpha, beta, _ = jacobian_terms(ctx, x, target)
    return 1.0 - positive_saliency_share(alpha, beta, theta)
