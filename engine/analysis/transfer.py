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

from typing import Callable, Sequence

import torch

from engine import attacks
from engine.analysis.activation import farthest_in_class, features, random_targets
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
    """The four SPEC §2 metrics from predicted labels (all 1-D tensors of equal length)."""
    both = (white_clean == y) & (black_clean == y)
    white_fooled = both & (white_adv != y)
    white_hit = both & (white_adv == target)
    return {
        "n": int(both.sum()),
        "error": _rate(black_adv != y, both),
        "uTR": _rate(black_adv != y, white_fooled),
        "tSuc": _rate(black_adv == target, both),
        "tTR": _rate(black_adv == target, white_hit),
        "white_error": _rate(white_adv != y, both),
        "white_tSuc": _rate(white_adv == target, both),
    }


def evaluate(
    white, blacks: Sequence, method: str, x: torch.Tensor, y: torch.Tensor, *, eps: float,
    layer: int | None = None, steps: int = 10, seed: int = 0, bank: tuple[torch.Tensor, torch.Tensor] | None = None,
    batch: int = 250, progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Attack `x` on `white` with `method` and score the result on every black-box model.

    Target classes are drawn once per image from `seed` (the same for every method),
    AA's target images are farthest-in-class from `bank` (default: x, y itself).
    One row per black-box model.
    """
    if method not in METHODS:
        raise ValueError(f"unknown transfer method {method!r}; choose from {', '.join(METHODS)}")
    name, fixed = METHODS[method]
    target = random_targets(y, white.num_classes, seed)
    bank_x, bank_y = bank if bank is not None else (x, y)
    params = {"eps": eps, "steps": steps, **fixed}
    if method == "aa":
        layer = len(white.layers()) // 2 if layer is None else white.layer(layer).index
        params["layer"] = layer
        bank_f = features(white, bank_x, layer)
    adversarial = []
    for lo in range(0, x.shape[0], batch):
        xs, ys, ts = x[lo:lo + batch], y[lo:lo + batch], target[lo:lo + batch]
        extra = {}
        if method == "aa":
            _, goal, _ = farthest_in_class(white, xs, layer, bank_x, bank_y, target=ts, y=ys, bank_features=bank_f)
            extra["target_images"] = goal
        adversarial.append(attacks.run(name, white, xs, y=ys, target=ts, seed=seed, score=False, **params, **extra).x_adv)
        if progress is not None:
            progress(min(lo + batch, x.shape[0]), x.shape[0])
    x_adv = torch.cat(adversarial)
    white_clean, white_adv = predict_labels(white, x), predict_labels(white, x_adv)
    rows = []
    for black in blacks:
        metrics = transfer_metrics(y, target, white_clean, predict_labels(black, x), white_adv, predict_labels(black, x_adv))
        rows.append({"white": white.name, "black": black.name, "method": method, "eps": eps,
                     "layer": params.get("layer"), "steps": steps, "images": int(x.shape[0]), **metrics})
    return rows


def sweep(white, blacks, methods, x, y, *, eps_values=(0.07,), layers=(None,), **kw) -> list[dict]:
    """A tidy table over methods × ε × layer (layer only varies AA; baselines have none)."""
    rows = []
    for method in methods:
        for eps in eps_values:
            for layer in (layers if method == "aa" else (None,)):
                rows += evaluate(white, blacks, method, x, y, eps=eps, layer=layer, **kw)
    return rows
