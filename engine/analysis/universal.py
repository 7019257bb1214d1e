"""One universal perturbation for a whole image set (Moosavi-Dezfooli et al. 2017), fitted and judged.

`fit` runs the "universal" attack on training images and returns its v; `evaluate` puts the same v on images
it never saw: the held-out fooling rate, the classes the flipped images land in (a universal δ tends to push
most images into a few dominant classes), a random-noise control of the same norm and v shown as an image.
`study` does both on one image set, the first images to fit on and the rest held out: what the Anatomy page
and `python -m engine universal` show.
"""

from __future__ import annotations

import numpy as np
import torch

from engine import attacks, images, progress
from engine.attacks.base import FORWARD_PASS
from engine.attacks.universal import perturbation
from engine.metrics import norms


def fit(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    seed: int = 0,
    callback: progress.Callback | None = None,
    **params,
) -> tuple[torch.Tensor, attacks.AttackResult]:
    """(v as 1×C×H×W, the attack's result on `x`): the universal perturbation of `x` with `params`."""
    seen = {}

    def watch(step, total, state):
        seen["v"] = state["perturbation"]
        return callback(step, total, state) if callback is not None else True

    result = attacks.run("universal", model, x, y=y, seed=seed, callback=watch, **params)
    # The last report carries the final v; a run that reported nothing has v = 0.
    v = seen["v"] if "v" in seen else perturbation(result)
    return v.detach(), result


def _predict(model, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])


def random_like(v: torch.Tensor, norm: str = "linf", seed: int = 0) -> torch.Tensor:
    """Noise with v's size: ±‖v‖∞ with random signs (linf), or a Gaussian direction of v's L2 length (l2)."""
    generator = torch.Generator(device=v.device).manual_seed(seed)
    if norm == "linf":
        signs = torch.rand(v.shape, generator=generator, device=v.device) < 0.5
        return torch.where(signs, -1.0, 1.0).to(v.dtype) * v.abs().max()
    noise = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
    return noise * (v.norm() / noise.norm().clamp_min(1e-12))


def evaluate(
    model,
    v: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    norm: str = "linf",
    top: int = 5,
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> dict:
    """The universal v on images `x` (labels `y`, default the model's predictions on x).

    fooling_rate: the share of images whose prediction under clamp(x + v) differs from y (the paper's measure is
    against the clean prediction; with y = None the two agree). dominant: class name → share of the flipped
    images predicted as it, largest first (at most `top`). noise_fooling_rate: the same for random noise of v's
    norm (`random_like`), the control v has to beat. clean_accuracy is against `labels` where given (fooling then
    still counts against `y`), else against y."""
    v = v.to(x.device)
    clean = _predict(model, x)
    y = clean if y is None else y.to(x.device)
    pred = _predict(model, (x + v).clamp(0.0, 1.0))
    noisy = _predict(model, (x + random_like(v, norm, seed)).clamp(0.0, 1.0))
    flipped = pred != y
    names = list(getattr(model, "class_names", None) or range(int(pred.max()) + 1))
    counts = torch.bincount(pred[flipped], minlength=len(names)).tolist()
    total = max(1, int(flipped.sum()))
    dominant = sorted(((str(names[c]), k / total) for c, k in enumerate(counts) if k > 0), key=lambda item: -item[1])[
        :top
    ]
    size = norms(v)
    return {
        "n": int(x.shape[0]),
        "clean_accuracy": float((clean == (y if labels is None else labels.to(x.device))).float().mean()),
        "fooling_rate": float(flipped.float().mean()),
        "noise_fooling_rate": float((noisy != y).float().mean()),
        "dominant": dict(dominant),
        "linf": float(size["linf"][0]),
        "l2": float(size["l2"][0]),
    }


def display(v: torch.Tensor) -> np.ndarray:
    """v as an H×W×3 uint8 image: mid-grey is no change, ±max|v| the ends of the range, one scale for every
    channel so that colours keep their balance."""
    v = v.reshape(-1, *v.shape[-2:]) if v.dim() == 4 else v
    peak = float(v.abs().max())
    shown = (0.5 + 0.5 * v / peak).clamp(0.0, 1.0) if peak > 0 else torch.full_like(v, 0.5)
    return images.to_uint8(shown)


OTHER = "(other classes)"


def sizes(defaults: dict, available: int, fit: int | None = None, held: int | None = None) -> tuple[int, int]:
    """(images fitted on, images held out) from `available` images: what is given, else the domain's
    `defaults["universal"]`, shrunk in proportion where the image set is smaller than they ask."""
    own = defaults["universal"]
    want_fit = own["fit"] if fit is None else fit
    want_held = own["held_out"] if held is None else held
    if fit is None and held is None and want_fit + want_held > available:
        want_fit = max(1, round(available * own["fit"] / (own["fit"] + own["held_out"])))
        want_held = available - want_fit
    want_held = min(want_held, available - want_fit)
    if want_fit < 1 or want_held < 1:
        raise ValueError(
            f"the image set holds {available} images: too few to fit on {want_fit} and judge on any others"
        )
    return int(want_fit), int(want_held)


def _folded(dominant: dict, top: int) -> dict:
    """The `top` largest shares, the rest summed under OTHER: the shares still add up to 1."""
    items = list(dominant.items())
    kept = dict(items[:top])
    rest = sum(share for _, share in items[top:])
    return {**kept, OTHER: rest} if rest > 0 else kept


def study(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None,
    n_fit: int,
    *,
    seed: int = 0,
    top: int = 6,
    callback: progress.Callback | None = None,
    **params,
) -> dict:
    """v fitted on the first `n_fit` images of `x`, judged on them (train) and on the rest (held_out).

    As in the paper, an image counts as fooled when its prediction moves off the clean prediction, in the fit
    and in each part's `evaluate` report; the labels `y` only give each part's clean accuracy. dominant keeps
    `top` classes and sums the rest under OTHER. picture is v as `display` shows it; stopped says a callback cut
    the fit short (v is then the partial one)."""
    if not 1 <= n_fit < x.shape[0]:
        raise ValueError(f"{x.shape[0]} images: too few to fit on {n_fit} and judge on any others")
    v, result = fit(model, x[:n_fit], None, seed=seed, callback=callback, **params)
    norm = result.params["norm"]
    found = {"params": result.params, "seconds": result.seconds, "steps": int(result.iterations.max())}
    for part, rows in (("train", slice(0, n_fit)), ("held_out", slice(n_fit, None))):
        # Every class flipped images land in, so that the folded shares add up to 1.
        labels = None if y is None else y[rows]
        report = evaluate(model, v, x[rows], None, norm=norm, top=x.shape[0], seed=seed, labels=labels)
        report["dominant"] = _folded(report["dominant"], top)
        if y is None:  # against its own predictions the model is always right: no accuracy to give
            report.pop("clean_accuracy")
        found[part] = report
    found["stopped"] = result.stopped_early
    found["picture"] = display(v)
    found["v"] = v.cpu()
    return found


def seconds(model, n_fit: int, n_held: int, params: dict) -> float:
    """Expected time of `study` at most (the fit stops once `target_rate` of the images are fooled)."""
    from engine import cost
    from engine.attacks.base import model_defaults, resolve_params

    values = resolve_params(attacks.get("universal"), model_defaults(model), params)
    batch = min(int(values["batch"]), n_fit)
    chunks = -(-n_fit // batch)
    # Clean, with v and with noise: three forwards per image.
    judged = 3 * (n_fit + n_held) * FORWARD_PASS * cost.pass_seconds(model, 64) / 64
    return cost.attack_passes(model, "universal", params) * chunks * cost.pass_seconds(model, batch) + judged


def summary(found: dict) -> str:
    """One sentence on what the held-out images say."""
    held = found["held_out"]
    rate, noise = held["fooling_rate"], held["noise_fooling_rate"]
    if held["linf"] == 0:
        return "v stayed zero: the inner attack flipped none of the fitted images, so v has nothing to carry."
    if rate <= noise + 0.05:
        return (
            f"On the {held['n']} images it never saw, v changes {rate:.0%} of the predictions, no more than "
            f"random noise of its size does ({noise:.0%}): at this budget it carries little beyond its size."
        )
    classes = [c for c in held["dominant"] if c != OTHER]
    lead = ""
    if classes:
        share = held["dominant"][classes[0]]
        most = "most" if share > 0.5 else "the largest share"
        lead = f" and {most} of what it flips lands in {classes[0]} ({share:.0%})"
    return (
        f"On the {held['n']} images it never saw, the one v changes {rate:.0%} of the predictions against "
        f"{noise:.0%} for random noise of its size{lead}: it carries a direction the model reads as a class, "
        "not the features of any one image."
    )
