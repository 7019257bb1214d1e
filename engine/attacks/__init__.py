"""The attack catalogue and its one entry point (SPEC §1; STYLE §2).

    result = attacks.run("pgd", model, x, eps=0.03, steps=10)
    result.x_adv, result.delta, result.success, result.pred_adv
"""
from __future__ import annotations

from engine.attacks import activation, cw, deepfool, gradient, jsma, maskfgsm, square
from engine.attacks.base import AttackResult, AttackSpec, Callback, Param, execute
from engine.attacks.params import EPS

ATTACKS: dict[str, AttackSpec] = {
    spec.name: spec
    for spec in [*gradient.SPECS, cw.SPEC, deepfool.SPEC, square.SPEC, activation.SPEC, maskfgsm.SPEC, jsma.SPEC]
}


def get(name: str) -> AttackSpec:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known attacks: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def available(domain: str | None = None) -> list[dict]:
    """Every attack with its parameters (name, type, default, range, help) for forms and the CLI.

    With a model `domain`, defaults are the ones `run` uses for that domain (e.g. ε = 0.2 on Fashion-MNIST).
    """
    return [spec.describe(domain) for spec in ATTACKS.values()]


def run(
    name, model, x, y=None, target=None, seed=0, callback: Callback | None = None, target_images=None, score=True,
    **params,
) -> AttackResult:
    """Run attack `name` on a batch `x` in [0, 1].

    `y=None` attacks the model's own predictions; `target` (an int or one per
    example) makes it targeted. `callback(step, total, state)` is called every
    iteration; returning False stops early and the partial result comes back
    with `stopped_early=True`. Out-of-range parameters raise ValueError.
    Feature-level attacks (aa) also take `target_images`, one per example; their
    classes are the targets unless `target` says otherwise.
    `score=False` skips the clean and final forwards that fill `logits_*`/`success`
    (the clean one is still needed when `y` is None): the attack's own cost only.
    """
    return execute(
        get(name), model, x, y=y, target=target, seed=seed, callback=callback, target_images=target_images,
        score=score, **params,
    )


def fgsm_many(models, x, eps_values, y=None, target=None) -> dict:
    """FGSM at many budgets as one computation: one gradient on models[0], then every ε in one batched
    forward per model. Exact: the FGSM image at ε is clip(x + ε·sign(∇)), and sign(∇) is read off a
    run at ε = 1 (a pixel the clip holds at a bound stays there for every ε).

    Returns {"eps": [...], "x_adv": E×C×H×W (first image of x), "logits": {model name: E×classes}}.
    """
    import torch

    eps_values = [float(e) for e in eps_values]
    for e in eps_values:
        EPS.check(e)
    x = x[:1]
    direction = run("fgsm", models[0], x, y=y, target=target, eps=1.0, score=False).delta.sign()
    eps = torch.tensor(eps_values, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    x_adv = (x + eps * direction).clamp(0.0, 1.0)
    with torch.no_grad():
        logits = {m.name: m(x_adv) for m in models}
    return {"eps": eps_values, "x_adv": x_adv, "logits": logits}


__all__ = ["ATTACKS", "AttackResult", "AttackSpec", "Param", "available", "fgsm_many", "get", "run"]
