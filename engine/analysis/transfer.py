"""Transfer evaluation (SPEC §2): error, uTR, tSuc and tTR of a white-box attack on black-box models.

Every metric is computed only over the images that *both* the white-box and
the black-box model classify correctly; that count is reported as `n`.

- error: the black-box model misclassifies the adversarial image;
- uTR:   of the images that fooled the white-box model, the share that also fool the black-box one;
- tSuc:  the black-box model predicts the target class;
- tTR:   of the images that hit the target on the white-box model, the share that also hit it on the black-box one.

Targeted baselines use the same random target class per image as AA (SPEC §2):
TMIFGSM, TPGD and ITCM are mifgsm, pgd and bim run with a target.
"""
from __future__ import annotations

from typing import Sequence

import torch

from engine import attacks, cost, progress, targets
from engine.analysis.activation import TargetBank, target_bank, target_images
from engine.attacks.activation import layer_name
from engine.metrics import predict_labels

# Names used in the seed's tables → (our attack, fixed parameters).
METHODS: dict[str, tuple[str, dict]] = {
    "aa": ("aa", {}),
    "tmifgsm": ("mifgsm", {"decay": 1.0}),
    "tpgd": ("pgd", {"random_start": True}),
    "itcm": ("bim", {}),
}


def _rate(hits: torch.Tensor, among: torch.Tensor) -> float | None:
    count = int(among.sum())
    return None if count == 0 else float((hits & among).sum()) / count


def transfer_metrics(y, target, white_clean, black_clean, white_adv, black_adv) -> dict:
    """The four SPEC §2 metrics from predicted labels (all 1-D tensors of equal length).

    `target=None` (an untargeted attack): tSuc, tTR and white_tSuc are None, not measured.
    """
    both = (white_clean == y) & (black_clean == y)
    white_fooled = both & (white_adv != y)
    targeted = target is not None
    white_hit = both & (white_adv == target) if targeted else None
    return {
        "n": int(both.sum()),
        "error": _rate(black_adv != y, both),
        "uTR": _rate(black_adv != y, white_fooled),
        "tSuc": _rate(black_adv == target, both) if targeted else None,
        "tTR": _rate(black_adv == target, white_hit) if targeted else None,
        "white_error": _rate(white_adv != y, both),
        "white_tSuc": _rate(white_adv == target, both) if targeted else None,
    }


def adversarial(
    white, method: str, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None, seed: int = 0,
    bank: TargetBank | tuple[torch.Tensor, torch.Tensor] | None = None, target_image: str = targets.FARTHEST,
    batch: int = 250, callback: progress.Callback | None = None, **params,
) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(adversarial images, target classes or None, parameters used) of `method` on `white`.

    `method` is a SPEC §2 transfer method (METHODS: targeted, `target` defaulting to one seeded
    random class per image) or any catalogue attack, run untargeted against `y` unless it only
    has a targeted form. Parameters given as None take the attack's default. AA's target images
    come from `bank` (default: the images of x, y that `white` classifies correctly) by the
    `target_image` rule (engine.targets.IMAGE_RULES) at `layer` (default: the middle layer); a
    `TargetBank` at that layer passes the bank's activations when the caller already has them.
    """
    name, fixed = METHODS.get(method, (method, {}))
    spec = attacks.get(name)
    bank = targets.bank(white, x, y) if bank is None else bank
    bank_y = bank.y if isinstance(bank, TargetBank) else bank[1]
    if target is None and (method in METHODS or not spec.untargeted):
        # Drawn among the bank's classes for every method alike, so AA always has a target image
        # and all methods share each image's target.
        target = targets.random_classes(y, white.num_classes, seed, allowed=bank_y)
    params = {**{k: v for k, v in params.items() if v is not None}, **fixed}
    extra = {}
    if spec.needs_target_images:
        params["layer"] = white.layer(layer_name(white, params.get("layer"))).index
        if not isinstance(bank, TargetBank):
            bank = target_bank(white, *bank, params["layer"])
        # Chosen for all images at once, so a random in-class pick does not depend on the batch size.
        _, extra["target_images"], _ = target_images(white, x, params["layer"], bank, target=target, y=y, seed=seed,
                                                     rule=target_image)
    out = []
    starts = range(0, x.shape[0], batch)
    for k, lo in enumerate(starts):
        xs, ys = x[lo:lo + batch], y[lo:lo + batch]
        ts = None if target is None else target[lo:lo + batch]
        part = {key: v[lo:lo + batch] for key, v in extra.items()}
        out.append(attacks.run(name, white, xs, y=ys, target=ts, seed=seed, score=False, **params, **part,
                               callback=progress.part(callback, k, len(starts))).x_adv)
    return torch.cat(out), target, params


def score_blacks(white, blacks: Sequence, x, y, x_adv, target) -> list[dict]:
    """`transfer_metrics` of one adversarial batch on each black-box model, in order."""
    white_clean, white_adv = predict_labels(white, x), predict_labels(white, x_adv)
    return [transfer_metrics(y, target, white_clean, predict_labels(black, x), white_adv, predict_labels(black, x_adv))
            for black in blacks]


def evaluate(
    white, blacks: Sequence, method: str, x: torch.Tensor, y: torch.Tensor, *, eps: float,
    layer: int | None = None, steps: int = 10, seed: int = 0,
    bank: TargetBank | tuple[torch.Tensor, torch.Tensor] | None = None, target_image: str = targets.FARTHEST, batch: int = 250, callback: progress.Callback | None = None,
) -> list[dict]:
    """Attack `x` on `white` with `method` and score the result on every black-box model.

    Target classes are drawn once per image from `seed` (the same for every method),
    AA's target images come from `bank` (default: the images of x, y that `white` gets right)
    by the `target_image` rule. One row per black-box model.
    """
    if method not in METHODS:
        raise ValueError(f"unknown transfer method {method!r}; choose from {', '.join(METHODS)}")
    aa = attacks.get(METHODS[method][0]).needs_target_images
    x_adv, target, params = adversarial(white, method, x, y, seed=seed, bank=bank, target_image=target_image,
                                        batch=batch, callback=callback, eps=eps, steps=steps,
                                        **({"layer": layer} if aa else {}))
    return [{"white": white.name, "black": black.name, "method": method, "eps": eps, "layer": params.get("layer"),
             "target_image": target_image if aa else None, "steps": steps, "images": int(x.shape[0]), **metrics}
            for black, metrics in zip(blacks, score_blacks(white, blacks, x, y, x_adv, target))]


def plan(methods: Sequence[str], eps_values: Sequence[float], layers: Sequence[int | None] = (None,)) -> list[tuple]:
    """The (method, ε, layer) runs of a sweep: every method × ε, and × layer for AA (the baselines have none)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown transfer method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    # Layer before ε: consecutive AA jobs of a layer share its checked bank (run_plan).
    return [(m, e, layer) for m in methods for layer in (layers if m == "aa" else (None,)) for e in eps_values]


def plan_seconds(white, jobs: Sequence[tuple], images: int, steps: int) -> float:
    """Expected time of `jobs` (from `plan`) on `images` images here (engine.cost)."""
    return sum(cost.attack_seconds(white, METHODS[m][0], images, {"eps": e, "steps": steps}) for m, e, _ in jobs)


def run_plan(white, blacks: Sequence, jobs: Sequence[tuple], x, y, *, callback: progress.Callback | None = None,
             **kw) -> list[dict]:
    """`evaluate` each job in turn (`kw`: steps, seed, bank, batch). `callback` (engine.progress) runs over
    the whole plan; once it returns False the finished jobs' rows come back (a cut-short job measures nothing)."""
    rows: list[dict] = []
    stopped = []

    def watch(step, total, state):
        go = callback(step, total, state)
        if go is False:
            stopped.append(True)
        return go

    given = targets.bank(white, x, y) if kw.get("bank") is None else kw["bank"]
    checked: list[TargetBank] = []  # AA's bank at the last layer: one forward over the bank per layer, not per job
    for i, (method, eps, layer) in enumerate(jobs):
        bank = given
        if attacks.get(METHODS[method][0]).needs_target_images and not isinstance(given, TargetBank):
            index = white.layer(layer_name(white, layer)).index
            if not checked or checked[0].layer != index:
                checked[:] = [target_bank(white, *given, index)]
            bank = checked[0]
        found = evaluate(white, blacks, method, x, y, eps=eps, layer=layer,
                         callback=progress.part(watch if callback else None, i, len(jobs), method=method, eps=eps),
                         **{**kw, "bank": bank})
        if stopped:
            return rows
        rows += found
    return rows


def sweep(white, blacks, methods, x, y, *, eps_values=(0.07,), layers=(None,), **kw) -> list[dict]:
    """A tidy table over methods × ε × layer (layer only varies AA; baselines have none)."""
    return run_plan(white, blacks, plan(methods, eps_values, layers), x, y, **kw)
