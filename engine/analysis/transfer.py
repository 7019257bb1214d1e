"""Transfer evaluation (Inkawhich et al. 2019): error, uTR, tSuc and tTR of a white-box attack on black-box models.

Every metric is computed only over the images that *both* the white-box and
the black-box model classify correctly; that count is reported as `n`.

- error: the black-box model misclassifies the adversarial image;
- uTR:   of the images that fooled the white-box model, the share that also fool the black-box one;
- tSuc:  the black-box model predicts the target class;
- tTR:   of the images that hit the target on the white-box model, the share that also hit it on the black-box one.

Targeted baselines use the same random target class per image as AA, so they compare:
TMIFGSM, TPGD and ITCM are mifgsm, pgd and bim run with a target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine import attacks, cost, progress, targets
from engine.analysis.target_images import TargetBank, target_bank, target_images
from engine.attacks.activation import layer_name
from engine.metrics import predict_labels

# Names used in the Activation Attack paper's tables → (our attack, fixed parameters).
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
    """The four transfer metrics (docs/methods.md) from predicted labels (all 1-D tensors of equal length).

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
    white,
    method: str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    seed: int = 0,
    bank: TargetBank | tuple[torch.Tensor, torch.Tensor] | None = None,
    target_image: str = targets.FARTHEST,
    batch: int = 250,
    callback: progress.Callback | None = None,
    **params,
) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(adversarial images, target classes or None, parameters used) of `method` on `white`.

    `method` is one of the paper's transfer methods (METHODS: targeted, `target` defaulting to one seeded
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
        _, extra["target_images"], _ = target_images(
            white, x, params["layer"], bank, target=target, y=y, seed=seed, rule=target_image
        )
    out = []
    starts = range(0, x.shape[0], batch)
    for k, lo in enumerate(starts):
        xs, ys = x[lo : lo + batch], y[lo : lo + batch]
        ts = None if target is None else target[lo : lo + batch]
        part = {key: v[lo : lo + batch] for key, v in extra.items()}
        out.append(
            attacks.run(
                name,
                white,
                xs,
                y=ys,
                target=ts,
                seed=seed,
                score=False,
                **params,
                **part,
                callback=progress.part(callback, k, len(starts)),
            ).x_adv
        )
    return torch.cat(out), target, params


def clean_labels(white, blacks: Sequence, x) -> list[torch.Tensor]:
    """The white-box model's labels of the clean images, then each black-box model's: the same for every job
    of a sweep over those images, so a sweep predicts them once and hands them to `score_blacks`."""
    return [predict_labels(model, x) for model in (white, *blacks)]


def score_blacks(
    white, blacks: Sequence, x, y, x_adv, target, clean: Sequence[torch.Tensor] | None = None
) -> list[dict]:
    """`transfer_metrics` of one adversarial batch on each black-box model, in order (`clean`: `clean_labels`
    of these models and images, where the caller has them)."""
    clean = clean_labels(white, blacks, x) if clean is None else clean
    white_adv = predict_labels(white, x_adv)
    return [
        transfer_metrics(y, target, clean[0], black_clean, white_adv, predict_labels(black, x_adv))
        for black, black_clean in zip(blacks, clean[1:], strict=True)
    ]


def evaluate(
    white,
    blacks: Sequence,
    method: str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    layer: int | None = None,
    steps: int = 10,
    seed: int = 0,
    bank: TargetBank | tuple[torch.Tensor, torch.Tensor] | None = None,
    target_image: str = targets.FARTHEST,
    batch: int = 250,
    callback: progress.Callback | None = None,
    clean: Sequence[torch.Tensor] | None = None,
) -> list[dict]:
    """Attack `x` on `white` with `method` and score the result on every black-box model.

    Target classes are drawn once per image from `seed` (the same for every method),
    AA's target images come from `bank` (default: the images of x, y that `white` gets right)
    by the `target_image` rule (`clean`: see `score_blacks`). One row per black-box model.
    """
    if method not in METHODS:
        raise ValueError(f"unknown transfer method {method!r}; choose from {', '.join(METHODS)}")
    aa = attacks.get(METHODS[method][0]).needs_target_images
    x_adv, target, params = adversarial(
        white,
        method,
        x,
        y,
        seed=seed,
        bank=bank,
        target_image=target_image,
        batch=batch,
        callback=callback,
        eps=eps,
        steps=steps,
        **({"layer": layer} if aa else {}),
    )
    return [
        {
            "white": white.name,
            "black": black.name,
            "method": method,
            "eps": eps,
            "layer": params.get("layer"),
            "target_image": target_image if aa else None,
            "steps": steps,
            "images": int(x.shape[0]),
            **metrics,
        }
        for black, metrics in zip(blacks, score_blacks(white, blacks, x, y, x_adv, target, clean))
    ]


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


def run_plan(
    white, blacks: Sequence, jobs: Sequence[tuple], x, y, *, callback: progress.Callback | None = None, **kw
) -> list[dict]:
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
    clean = clean_labels(white, blacks, x) if jobs else None
    for i, (method, eps, layer) in enumerate(jobs):
        bank = given
        if attacks.get(METHODS[method][0]).needs_target_images and not isinstance(given, TargetBank):
            index = white.layer(layer_name(white, layer)).index
            if not checked or checked[0].layer != index:
                checked[:] = [target_bank(white, *given, index)]
            bank = checked[0]
        found = evaluate(
            white,
            blacks,
            method,
            x,
            y,
            eps=eps,
            layer=layer,
            callback=progress.part(watch if callback else None, i, len(jobs), method=method, eps=eps),
            clean=clean,
            **{**kw, "bank": bank},
        )
        if stopped:
            return rows
        rows += found
    return rows


def sweep(white, blacks, methods, x, y, *, eps_values=(0.07,), layers=(None,), **kw) -> list[dict]:
    """A tidy table over methods × ε × layer (layer only varies AA; baselines have none)."""
    return run_plan(white, blacks, plan(methods, eps_values, layers), x, y, **kw)


# The ε values the Transfer lab offers; a note that suggests "a larger ε" names the next of these.
EPS_CHOICES = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2)
TITLES = {
    "aa": "AA",
    "tmifgsm": "TMI-FGSM",
    "tpgd": "TPGD",
    "itcm": "ITCM",
    "fgsm": "FGSM",
    "pgd": "PGD",
    "bim": "BIM",
    "mifgsm": "MI-FGSM",
}
METRIC_WORDS = {
    "error": "black-box error",
    "uTR": "untargeted transfer (uTR)",
    "tSuc": "target hit on the black box (tSuc)",
    "tTR": "targeted transfer (tTR)",
}


def says_nothing(values) -> bool:
    """True where a chart of `values` would be blank or flat at zero: none measured, or every one 0."""
    measured = [v for v in values if v is not None]
    return not measured or all(v == 0 for v in measured)


def larger_eps(used) -> list[float]:
    """Up to two offered ε values above the largest in `used` (none above the largest offered)."""
    top = max(used) if used else 0.0
    return [e for e in EPS_CHOICES if e > top][:2]


def _eps_words(values) -> str:
    values = sorted(set(values))
    return "ε " + (", ".join(f"{v:g}" for v in values[:-1]) + " and " if len(values) > 1 else "") + f"{values[-1]:g}"


def empty_note(rows: list[dict], metric: str, black: str) -> str | None:
    """The sentence shown instead of `metric`'s chart on `black` where the chart would say nothing (every value 0
    or unmeasured), with a concrete next step; None where the chart has something to show."""
    mine = [r for r in rows if r["black"] == black]
    if not mine or not says_nothing(r.get(metric) for r in mine):
        return None
    eps = [r["eps"] for r in mine]
    n = min(r["n"] for r in mine)
    more = larger_eps(eps)
    bigger = f"add ε {' or '.join(f'{e:g}' for e in more)} (ε values above)" if more else "raise Steps"
    if n == 0:
        return (
            f"No image counts on {black}: both models must classify an image correctly before the attack, and "
            "none of these is. Add images (Images above, or the sidebar's Evaluation images)."
        )
    at = _eps_words(eps)
    if metric == "tTR" and all(r.get("tTR") is None for r in mine):
        return (
            f"tTR on {black} is not measured: the white-box attack never reached its target at {at}, so no "
            f"target hit could carry over. To measure it, {bigger}{' or raise Steps' if more else ''}."
        )
    images = f"{n} image{'s' if n != 1 else ''}"
    if metric in ("tSuc", "tTR"):
        return (
            f"{metric} on {black} is 0 at {at}: no attack made it answer the target class on any of the "
            f"{images} that count. Targeted perturbations rarely carry over to another model; {bigger}, or add "
            "images."
        )
    return (
        f"{metric} on {black} is 0 at {at}: the perturbations do not fool it on any of the {images} that count. "
        f"To see transfer, {bigger}."
    )


def summary(rows: list[dict], black: str) -> str | None:
    """One sentence on what a sweep shows for `black`: the method that transfers best at the largest ε (or
    AA's best layer), how often it fools the black box and how often the black box says the target class."""
    mine = [r for r in rows if r["black"] == black and r.get("error") is not None]
    if not mine:
        return None
    by_eps = len({r["eps"] for r in mine}) > 1 or len({r["layer"] for r in mine}) <= 1
    if by_eps:
        top = max(r["eps"] for r in mine)
        at_top = [r for r in mine if r["eps"] == top]
        best = max(at_top, key=lambda r: (r["error"], r.get("tSuc") or 0))
        where = f"At ε {top:g}"
    else:
        best = max(mine, key=lambda r: (r["error"], r.get("tSuc") or 0))
        where = f"At layer {best['layer']}"
    hit = best.get("tSuc")
    target = (
        ""
        if hit is None
        else (
            f", and it answers the attack's target class on {hit:.0%}"
            if hit > 0
            else ", but never with the attack's target class (targeted perturbations rarely transfer)"
        )
    )
    low = min((r for r in mine if r["method"] == best["method"]), key=lambda r: r["eps"])
    grows = f" (at ε {low['eps']:g}: {low['error']:.0%})" if by_eps and low["eps"] != best["eps"] else ""
    name = TITLES.get(best["method"], best["method"])
    return (
        f"{where}, {name} transfers best: {black} misclassifies {best['error']:.0%} of the "
        f"{best['n']} images both models got right{grows}{target}."
    )


def sweep_sentence(records: list[dict], metric: str, x: str, words: str) -> str | None:
    """One sentence on a pooled sweep (`engine.sweep.summarise` records): the attack and black box whose `metric`
    changes most along `x`, from its first to its last value."""
    curves: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get(x) is not None and r.get(metric) is not None:
            curves.setdefault((r["attack"], r["white"], r["black"]), []).append(r)
    if not curves:
        return None
    (attack, white, black), pts = max(
        curves.items(), key=lambda kv: abs(max(p[metric] for p in kv[1]) - min(p[metric] for p in kv[1]))
    )
    pts = sorted(pts, key=lambda r: r[x])
    first, last = pts[0], pts[-1]
    axis = "ε" if x == "eps" else x
    if len(pts) == 1 or first[metric] == last[metric]:
        return f"{TITLES.get(attack, attack)} from {white} on {black}: {words} {last[metric]:.0%} throughout."
    trend = "rises" if last[metric] > first[metric] else "falls"
    return (
        f"{words.capitalize()} of {TITLES.get(attack, attack)} from {white} on {black} {trend} from "
        f"{first[metric]:.0%} at {axis} {first[x]:g} to {last[metric]:.0%} at {axis} {last[x]:g}"
        + (": larger perturbations carry over to the black box more often." if x == "eps" and trend == "rises" else ".")
    )


# ---- the Transfer lab's choices and words --------------------------------------------------------

METRICS = tuple(METRIC_WORDS)  # error, uTR, tSuc, tTR: one chart each
TARGET_RULES = {
    targets.FARTHEST: "farthest from the source (the paper's)",
    targets.NEAREST_MEAN: "nearest the class mean",
    targets.IN_CLASS_RANDOM: "random in class",
}


def default_layers(indexes: Sequence[int]) -> list[int]:
    """The layer sweep's starting layers: the first, the middle and the last."""
    return sorted({indexes[0], indexes[len(indexes) // 2], indexes[-1]}) if indexes else []


def default_layer(model) -> int:
    """The index of AA's own default layer (the middle of the model's catalogue)."""
    return model.layer(layer_name(model, None)).index


def sweep_plan(kind: str, methods: Sequence[str], eps_values: Sequence[float], layers: Sequence[int]) -> list[tuple]:
    """The jobs of a sweep: `kind` "layer" runs AA at the largest ε at each layer, any other (the page's "ε")
    every method at every ε."""
    if kind == "layer":
        return plan(["aa"], [max(eps_values)], layers)
    return plan(methods, eps_values, [None])


def shown(rows: list[dict], axis: str) -> list[dict]:
    """The rows a chart over `axis` draws: all of an ε sweep, AA's of a layer sweep (the baselines have no layer)."""
    return rows if axis == "eps" else [r for r in rows if r["method"] == "aa"]


def count_note(rows: list[dict], steady: int = 30) -> str | None:
    """A note where fewer than `steady` images count: each then moves a rate in big steps."""
    counted = min(r["n"] for r in rows)
    if counted >= steady:
        return None
    return (
        f"Only {counted} image{'s' if counted != 1 else ''} count here (both models must classify "
        f"{'them' if counted != 1 else 'it'} correctly before the attack), so each moves a rate by "
        f"{100 / max(counted, 1):.0f} points; more images (and models that get them right) steady the rates."
    )


def to_csv(rows: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)


def target_pick(model, x: torch.Tensor, layer: int, seed: int, rule: str) -> tuple[int, torch.Tensor]:
    """AA's target class and target image for one source image, by `rule` at `layer`: the same decision an
    AA run makes (`target_images.decide`)."""
    from engine.analysis.target_images import decide

    target, extra = decide(attacks.get("aa"), model, x, None, seed=seed, layer=layer, rule=rule)
    return int(target[0]), extra["target_images"].cpu()


def run_loaded(white, blacks: Sequence, jobs: Sequence[tuple], data, **kw) -> list[dict]:
    """run_plan on loaded evaluation images `data` ((x, y), (bank x, bank y)), moved to the white-box model's
    device first."""
    (x, y), bank = data
    on = white.device
    return run_plan(white, blacks, jobs, x.to(on), y.to(on), bank=(bank[0].to(on), bank[1].to(on)), **kw)


def target_caption(class_name: str, rule: str) -> str:
    """The caption under the target image `target_pick` chose by `rule`."""
    return (
        f"target image, class {class_name} "
        f"({TARGET_RULES[rule]} at this layer; the bank holds only images the model classifies as their class)"
    )


def chart_words(axis: str, metric: str, black: str) -> dict:
    """A sweep chart's title and axis titles (figures.lines keywords)."""
    return {
        "title": f"{metric} on {black}",
        "x_title": "ε" if axis == "eps" else "AA layer",
        "y_title": METRIC_WORDS[metric],
    }
