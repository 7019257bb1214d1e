"""The attack catalogue and its one entry point (how to add an attack: docs/ARCHITECTURE.md).

    result = attacks.run("pgd", model, x, eps=0.03, steps=10)
    result.x_adv, result.delta, result.success, result.pred_adv

A run its callback stopped carries on with `attacks.resume(result, model)`.
"""

from __future__ import annotations

from engine.attacks import (
    activation,
    apgd,
    autoattack,
    boundary,
    cw,
    cw_linf,
    deepfool,
    ead,
    fab,
    gradient,
    hopskipjump,
    jsma,
    maskfgsm,
    square,
    universal,
)
from engine.attacks.base import AttackResult, AttackSpec, Callback, Param, execute, resume_run
from engine.attacks.params import EPS

ATTACKS: dict[str, AttackSpec] = {
    spec.name: spec
    for spec in [
        *gradient.SPECS,
        cw.SPEC,
        cw_linf.SPEC,
        ead.SPEC,
        deepfool.SPEC,
        square.SPEC,
        hopskipjump.SPEC,
        boundary.SPEC,
        activation.SPEC,
        maskfgsm.SPEC,
        jsma.SPEC,
        apgd.SPEC,
        fab.SPEC,
        autoattack.SPEC,
        universal.SPEC,
    ]
}


def get(name: str) -> AttackSpec:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known attacks: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def available(defaults: dict | None = None) -> list[dict]:
    """Every attack with its parameters (name, type, default, range, help) for forms and the CLI.

    With a domain's `defaults` (`model.attack_defaults`), defaults are the ones `run` uses for such a model
    (e.g. ε = 0.2 on Fashion-MNIST).
    """
    return [spec.describe(defaults) for spec in ATTACKS.values()]


def run(
    name,
    model,
    x,
    y=None,
    target=None,
    seed=0,
    callback: Callback | None = None,
    target_images=None,
    score=True,
    compile=None,
    **params,
) -> AttackResult:
    """Run attack `name` on a batch `x` in [0, 1].

    `y=None` attacks the model's own predictions; `target` (an int or one per
    example) makes it targeted. `callback(step, total, state)` is called every
    iteration; returning False stops early and the partial result comes back
    with `stopped_early=True` and a `checkpoint` that `resume` carries on from.
    Out-of-range parameters raise ValueError.
    Feature-level attacks (aa) also take `target_images`, one per example; their
    classes are the targets unless `target` says otherwise.
    `score=False` skips the clean and final forwards that fill `logits_*`/`success`
    (the clean one is still needed when `y` is None): the attack's own cost only.
    `compile=True` runs a fixed-shape loop (BIM, PGD, MI-FGSM) as one compiled step, built once per model,
    shape and attack and reused (engine.attacks.compiled); None lets engine.precision decide (off on the CPU).
    """
    return execute(
        get(name),
        model,
        x,
        y=y,
        target=target,
        seed=seed,
        callback=callback,
        target_images=target_images,
        score=score,
        compile=compile,
        **params,
    )


def resume(result: AttackResult, model, callback: Callback | None = None) -> AttackResult:
    """Carry a run its callback stopped on to the end, from where it stopped: the finished result is the one
    an uninterrupted run gives (same images, iterations and queries), and `seconds` counts both parts.

    `callback` reports from the step after the one reached (a bar resumes at, say, step 31 of 100); it may
    stop the run again, which gives a new checkpoint to resume. `model` is the run's model. ValueError when
    the result has no checkpoint (it finished) or the model does not fit the run."""
    return resume_run(get(result.attack), result, model, callback)


def progress_of(result: AttackResult) -> tuple[int, int]:
    """(iterations done, iterations in all) as the run's progress bar last showed them, e.g. (90, 300) for a
    run cancelled at step 90 of 300: the same count as `result.iterations`, for a "cancelled after" note.
    A finished run has done all it needed: (n, n)."""
    done = int(result.iterations.max())
    if result.checkpoint is None:
        return done, done
    return done, int(result.checkpoint["total"])


def one_step_direction(name, model, x, y=None, target=None, seed=0, **params):
    """The direction d of a one-step attack (`spec.one_step`, FGSM): its image at any ε is clip(x + ε·d).

    d is read off a run at ε = 1, so it is sign(∇) where the clip lets the pixel move and 0 where a
    bound holds it, which it then does at every ε. One gradient serves a whole sweep over ε."""
    spec = get(name)
    if not spec.one_step:
        raise ValueError(f"{spec.title} is not a one-step attack: its image at each ε needs its own run")
    return run(name, model, x, y=y, target=target, seed=seed, score=False, **{**params, "eps": 1.0}).delta.sign()


def at_budgets(x, direction, eps_values):
    """The one-step images clip(x + ε·d) at every ε: E×N×C×H×W for an N-image batch."""
    import torch

    eps = torch.tensor([float(e) for e in eps_values], device=x.device, dtype=x.dtype).view(-1, *[1] * x.dim())
    return (x[None] + eps * direction[None]).clamp(0.0, 1.0)


def fgsm_many(models, x, eps_values, y=None, target=None) -> dict:
    """FGSM at many budgets from one gradient on models[0] (instead of one per ε), then each ε's images
    through every model.

    Returns {"eps": [...], "x_adv": E×N×C×H×W, "logits": {model name: E×N×classes}}."""
    import torch

    from engine.attacks.chunks import chunk_size

    eps_values = [float(e) for e in eps_values]
    for e in eps_values:
        EPS.check(e)
    x_adv = at_budgets(x, one_step_direction("fgsm", models[0], x, y=y, target=target), eps_values)
    flat = x_adv.flatten(0, 1)
    # One forward per ε at the caller's batch size: on 2 CPU cores bigger forwards ran slower per image (22
    # photos at once took twice as long as one at a time, 2,560 small images longer than 256 at a time: the
    # activations stop fitting in cache). The saving is the gradients.
    size = min(x.shape[0], chunk_size(x.shape[1:]))
    with torch.no_grad():
        logits = {
            m.name: torch.cat([m(flat[i : i + size]) for i in range(0, flat.shape[0], size)]).view(
                len(eps_values), x.shape[0], -1
            )
            for m in models
        }
    return {"eps": eps_values, "x_adv": x_adv, "logits": logits}


__all__ = [
    "ATTACKS",
    "AttackResult",
    "AttackSpec",
    "Param",
    "at_budgets",
    "available",
    "fgsm_many",
    "get",
    "one_step_direction",
    "progress_of",
    "resume",
    "run",
]
