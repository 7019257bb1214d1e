"""JSMA's teaching extras (Papernot et al. 2016): success vs Υ, hardness H(s, t), the increasing-vs-decreasing
table, adversarial distance A(X, t) and robustness R(F).

One JSMA run at the largest Υ is enough for a whole curve: the greedy search is
deterministic, so a run with a smaller Υ is the same trajectory cut short. An
example succeeds at Υ when the share of features it changed is ≤ Υ.

The table and R(F) use the paper's setting: every image (here: every one the
model classifies correctly, so that its label is its source class) crafted
towards every other class. R(F) is the minimum of A over exactly those pairs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from engine import attacks, progress, targets
from engine.attacks.base import Context
from engine.attacks.jsma import CANDIDATES, jacobian_terms, positive_saliency_share
from engine.metrics import predict_labels

MAX_DISTORTION = 0.145  # Υ, the paper's largest share of features JSMA may change
# What JSMA's β weighs the target against: the sum over every other class (the paper), or the one class the
# target must overtake (`Rival`).
AGAINST = {"all": "every other class (the paper)", "rival": "the strongest other class"}


class Rival(torch.nn.Module):
    """`model` seen as two classes for JSMA towards `target`: 0 = the most likely other class, 1 = the target.

    JSMA's β is the gradient of the other classes' summed logits. On ten classes that sum follows the class the
    target must overtake; on the 999 other ImageNet classes it is mostly classes that do not compete, and the
    pixels that lower it raise the image's own class along with the target's (JSMA then misses a runner-up it
    could reach with a handful of pixels). Here β is the gradient of that one rival, re-chosen at every step;
    the view predicts the target exactly when the whole model does."""

    def __init__(self, model, target: int):
        super().__init__()
        self.model, self.target = model, int(target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        others = z.clone()
        others[:, self.target] = float("-inf")
        return torch.stack([others.max(1).values, z[:, self.target]], 1)


def run_jsma(model, x, target: int, *, against: str = "all", y=None, **params):
    """JSMA towards one target class, scored on the whole model: `against` "all" is the paper's saliency map,
    "rival" weighs the target against its strongest rival only (`Rival`). `params`: theta, max_distortion,
    candidates, pairs, callback."""
    if against not in AGAINST:
        raise ValueError(f"unknown JSMA 'against' {against!r}; choose one of {', '.join(AGAINST)}")
    if against == "all":
        return attacks.run("jsma", model, x, y=y, target=target, **params)
    n = x.shape[0]
    seen = attacks.run(
        "jsma",
        Rival(model, target),
        x,
        y=torch.zeros(n, dtype=torch.long, device=x.device),
        target=torch.ones(n, dtype=torch.long, device=x.device),
        **params,
    )
    with torch.no_grad():
        clean, adv = model(x), model(seen.x_adv)
    goal = torch.full((n,), int(target), dtype=torch.long, device=x.device)
    return dataclasses.replace(
        seen,
        y=clean.argmax(1) if y is None else y,
        target=goal,
        logits_clean=clean,
        logits_adv=adv,
        success=adv.argmax(1) == goal,
        checkpoint=None,
    )


def default_target(model, x: torch.Tensor) -> int:
    """The JSMA lab's starting target for image `x`: its runner-up, the class the model already finds most
    likely after its own, which JSMA reaches with the fewest features (class 0 is usually far away)."""
    return int(targets.runner_up(model, x[:1])[0])


def distortions(
    model, x, y, target, *, max_distortion: float = MAX_DISTORTION, theta: int = 1, against: str = "all", **kw
) -> torch.Tensor:
    """Per example: the share of features JSMA changed to reach `target` (inf where it failed). With `against`
    "rival" the examples run in groups of one target class each (a `Rival` view sees one target); a callback
    then runs over the groups."""
    if against == "rival":
        goal = torch.as_tensor(target, device=x.device).reshape(-1).expand(x.shape[0])
        found = torch.full((x.shape[0],), float("inf"), device=x.device)
        callback = kw.pop("callback", None)
        classes = goal.unique().tolist()
        for i, t in enumerate(classes):
            rows = (goal == t).nonzero().squeeze(1)
            part = progress.part(callback, i, len(classes), target=t)
            result = run_jsma(
                model,
                x[rows],
                t,
                against=against,
                y=None if y is None else y[rows],
                theta=theta,
                max_distortion=max_distortion,
                callback=part,
                **kw,
            )
            found[rows] = _changed_share(result)
            if result.stopped_early:
                break
        return found
    return _changed_share(
        attacks.run("jsma", model, x, y=y, target=target, theta=theta, max_distortion=max_distortion, **kw)
    )


# Which class each image of the success-vs-Υ curve is attacked towards.
CURVE_TARGETS = {"chosen": "the chosen target class", "runner-up": "each image's runner-up"}


def curve_targets(model, x: torch.Tensor, y: torch.Tensor, target: int, mode: str = "chosen"):
    """(rows of x, their target classes) for the success-vs-Υ curve: the images not of class `target`, towards
    it; or, mode "runner-up", every image towards its own runner-up. Among a thousand classes one class is far
    from most photos (a chelsea's tiger cat is nothing like an airliner), and the curve would stay near 0."""
    if mode not in CURVE_TARGETS:
        raise ValueError(f"unknown curve target {mode!r}; choose one of {', '.join(CURVE_TARGETS)}")
    if mode == "runner-up":
        return torch.arange(x.shape[0], device=x.device), targets.runner_up(model, x)
    rows = (y != target).nonzero().squeeze(1)
    return rows, torch.full((rows.numel(),), int(target), dtype=torch.long, device=x.device)


def curve_sentence(rows: list[dict], target_name: str, images: int) -> str:
    """What a success-vs-Υ curve says, in one sentence: how many images reach the target, and with how little."""
    last = rows[-1]
    first = next((r for r in rows if r["success_rate"] > 0), None)
    if first is None:
        return (
            f"No image reached {target_name} within Υ = {last['upsilon']:.1%} of its features: pick a target "
            "nearer these images (another class above), or the other variant."
        )
    return (
        f"{last['success_rate']:.0%} of the {images} images reach {target_name} by Υ = {last['upsilon']:.1%}; "
        f"the first already at {first['upsilon']:.1%} of their features (mean distortion of the successes "
        f"{last['mean_distortion']:.2%}): a few well-chosen pixels suffice."
    )


def _changed_share(result) -> torch.Tensor:
    share = (result.delta.abs() > 0).flatten(1).float().mean(1)
    return torch.where(result.success, share, torch.full_like(share, float("inf")))


def success_curve(d: torch.Tensor, upsilons) -> list[dict]:
    """Success rate and mean distortion of the successes at each Υ, from per-example distortions."""
    rows = []
    for u in upsilons:
        hit = d <= u
        rows.append(
            {
                "upsilon": float(u),
                "success_rate": float(hit.float().mean()),
                "mean_distortion": float(d[hit].mean()) if bool(hit.any()) else 0.0,
            }
        )
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
        result = attacks.run(
            "jsma",
            model,
            xs,
            y=ys,
            target=torch.full_like(ys, t),
            **kw,
            callback=progress.part(callback, i, len(pairs), source=s, target=t),
        )
        if result.stopped_early:
            break
        d = _changed_share(result)
        reached = bool(torch.isfinite(d).any())
        # A pair never reached within Υ has no distortion to integrate: its hardness is unknown, not 0.
        rows.append(
            {
                "source": s,
                "target": t,
                "images": int(xs.shape[0]),
                "success_rate": float(torch.isfinite(d).float().mean()),
                "mean_distortion": float(d[torch.isfinite(d)].mean()) if reached else None,
                "hardness": hardness(d, upsilons) if reached else None,
            }
        )
    return rows


def adversarial_distance(model, x, target, theta: int = 1) -> torch.Tensor:
    """A(X, t) = 1 − share of features with positive saliency towards t; R(F) is its minimum."""
    target = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
    ctx = Context(model, x, target, target, torch.Generator(device=x.device), None)
    alpha, beta, _ = jacobian_terms(ctx, x, target)
    return 1.0 - positive_saliency_share(alpha, beta, theta)


VARIANTS = {1: "increasing", -1: "decreasing"}
# The paper's MNIST LeNet, Υ = 14.5 %, every sample to each of the 9 other classes: success rate and mean
# distortion (share of features changed) of the successes, per θ; the decreasing variant's distortion is not given.
SEED_TABLE = {
    1: {"success_rate": 0.971, "mean_distortion": 0.0402},
    -1: {"success_rate": 0.647, "mean_distortion": None},
}


def source_target_pairs(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(image index, target) for every image `model` classifies as its label and every other class."""
    correct = (predict_labels(model, x) == y).nonzero().squeeze(1)
    rows, target = targets.every_other(y[correct], model.num_classes)
    return correct[rows], target


def binomial_se(successes: int, n: int) -> float | None:
    """The standard error √(p(1 − p)/n) of a rate of `successes` in `n`."""
    if n == 0:
        return None
    p = successes / n
    return math.sqrt(p * (1 - p) / n)


def jsma_table(
    models,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    thetas=(1, -1),
    max_distortion: float = MAX_DISTORTION,
    batch: int | None = None,
    callback: progress.Callback | None = None,
    **kw,
) -> list[dict]:
    """The paper's increasing-vs-decreasing comparison: per model and θ, JSMA from every image the model
    classifies correctly towards every other class (`source_target_pairs`), with Υ = `max_distortion`.

    success_rate (and its binomial standard error) is over all those pairs; mean_distortion, the share of
    features changed, over the successful ones. `kw` are further JSMA parameters (`candidates`, `pairs`);
    `batch` (default: what keeps the pair search near 64 M scores) is how many pairs run at once.
    `callback` (engine.progress) runs over the (model, θ) parts; a cancelled part and the rest are left out."""
    kw = {k: v for k, v in kw.items() if v is not None}  # None: the attack's default
    if batch is None:
        k = kw.get("candidates") or CANDIDATES.default
        batch = max(1, min(500, 64_000_000 // k**2))
    parts = [(model, theta) for model in models for theta in thetas]
    rows = []
    for i, (model, theta) in enumerate(parts):
        index, target = source_target_pairs(model, x, y)
        starts = range(0, index.numel(), batch)
        outer = progress.part(callback, i, len(parts), model=model.name, theta=theta)
        shares = []
        for k, lo in enumerate(starts):
            rows_k = index[lo : lo + batch]
            result = attacks.run(
                "jsma",
                model,
                x[rows_k],
                y=y[rows_k],
                target=target[lo : lo + batch],
                theta=theta,
                max_distortion=max_distortion,
                callback=progress.part(outer, k, len(starts)),
                **kw,
            )
            if result.stopped_early:
                return rows
            shares.append(_changed_share(result))
        d = torch.cat(shares) if shares else torch.zeros(0)
        hit = torch.isfinite(d)
        n, wins = int(d.numel()), int(hit.sum())
        rows.append(
            {
                "model": model.name,
                "theta": theta,
                "variant": VARIANTS[theta],
                "upsilon": max_distortion,
                "candidates": min(kw.get("candidates") or CANDIDATES.default, x[0].numel()),
                "images": int(index.unique().numel()),
                "pairs": n,
                "successes": wins,
                "success_rate": wins / n if n else None,
                "success_se": binomial_se(wins, n),
                "mean_distortion": float(d[hit].mean()) if wins else None,
                "distortion_sd": float(d[hit].std()) if wins > 1 else None,
                # One run at the largest Υ holds every smaller Υ's result: the success-vs-Υ curve for free.
                "curve": success_curve(d.cpu(), np.linspace(0.0, max_distortion, 30)) if n else [],
            }
        )
    return rows


def adversarial_distances(
    model,
    x: torch.Tensor,
    index: torch.Tensor,
    target: torch.Tensor,
    *,
    theta: int = 1,
    batch: int = 1000,
    callback: progress.Callback | None = None,
) -> torch.Tensor:
    """A(X, t) of every pair (x[index[i]], target[i]), in batches; a cancelled run returns the ones it finished."""
    found = []
    starts = range(0, index.numel(), batch)
    for k, lo in enumerate(starts):
        found.append(adversarial_distance(model, x[index[lo : lo + batch]], target[lo : lo + batch], theta))
        if callback is not None and callback(k + 1, len(starts), {}) is False:
            break
    return torch.cat(found) if found else torch.zeros(0, device=x.device)


def robustness(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    theta: int = 1,
    batch: int = 1000,
    callback: progress.Callback | None = None,
) -> dict:
    """R(F) = min over (X, t) of A(X, t), over every image `model` classifies correctly and every other class
    (`source_target_pairs`), with the mean and median of A and the pair that attains the minimum (the first
    on ties). `complete` is False where `callback` stopped the run: R is then over the pairs it reached."""
    index, target = source_target_pairs(model, x, y)
    a = adversarial_distances(model, x, index, target, theta=theta, batch=batch, callback=callback)
    row = {
        "model": model.name,
        "theta": theta,
        "images": int(index.unique().numel()),
        "pairs": int(a.numel()),
        "complete": a.numel() == index.numel(),
    }
    if a.numel() == 0:
        return {**row, "R": None, "mean_A": None, "median_A": None, "argmin": None}
    k = int(a.argmin())
    return {
        **row,
        "R": float(a[k]),
        "mean_A": float(a.mean()),
        "median_A": float(a.median()),
        "argmin": {"image": int(index[k]), "source": int(y[index[k]]), "target": int(target[k])},
    }


# ---- the JSMA lab's replay, curve, table and matrix ----------------------------------------------


def replay(
    model,
    x: torch.Tensor,
    target: int,
    *,
    theta: int,
    upsilon: float,
    pairs: int,
    against: str = "all",
    callback: progress.Callback | None = None,
) -> dict:
    """One JSMA run on one image, kept frame by frame: the image after every step ("frames", the clean image
    first), the run's headline ("words"), the share of features changed and whether the target was reached."""
    from engine import report

    frames = [x.detach().cpu().clone()]

    def record(step, total, s):
        frames.append(s["x_adv"].detach().cpu().clone())
        # The frames are the replay's own; the bar gets only the count, as for any run.
        return callback(step, total, {}) if callback is not None else True

    result = run_jsma(
        model, x, target, against=against, theta=theta, max_distortion=upsilon, pairs=pairs, callback=record
    )
    return {
        "frames": frames,
        "words": report.headline(report.run_record(result, model)),
        "changed": float((result.delta.abs() > 0).float().mean()),
        "success": bool(result.success[0]),
    }


def changed_pixels(frame: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """H×W: the pixels where any channel of `frame` differs from `first`."""
    return (frame - first).abs().amax(1)[0] > 0


def marked_frame(frames: list[torch.Tensor], step: int) -> dict:
    """The picture after `step` steps with the pixels changed so far tinted red ("marked"), how many there
    are, and whether each is ringed by its neighbours: on a photo one pixel is a fraction of a screen pixel,
    so there each is marked with its neighbours to stay visible."""
    from engine import images
    from engine.analysis.masking import morph

    changed = changed_pixels(frames[step], frames[0])
    seen = morph(changed[None], 1)[0] if max(changed.shape) > 64 else changed
    return {
        "picture": images.to_uint8(frames[step]),
        "marked": images.overlay(frames[step], seen, (255, 0, 0), 0.6),
        "pixels": int(changed.sum()),
        "ringed": int(seen.sum()) > int(changed.sum()),
    }


def replay_sentence(found: dict, model_name: str, target_name: str, upsilon: float) -> str:
    """What a replayed run says: how few pixels flip the decision, or why the target was not reached."""
    if found.get("success"):
        pixels = int(changed_pixels(found["frames"][-1], found["frames"][0]).sum())
        return (
            f"changing {found['changed']:.2%} of the features ({pixels} pixels, in red) makes {model_name} answer "
            f"{target_name}: a few well-chosen pixels flip the decision."
        )
    return (
        f"within Υ = {upsilon:.1%} JSMA did not make {model_name} answer {target_name}: raise Υ, or pick a "
        "class nearer the image (the runner-up, which the target starts at)."
    )


def curve_seconds(model, images: int, max_distortion: float, pairs: int) -> float:
    """Expected time of the success-vs-Υ curve: one JSMA run at the largest Υ over the images."""
    from engine import cost

    return cost.attack_passes(model, "jsma", {"max_distortion": max_distortion, "pairs": pairs}) * cost.pass_seconds(
        model, images
    )


def success_vs_upsilon(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    target: int,
    towards: str,
    *,
    max_distortion: float,
    theta: int,
    pairs: int,
    against: str,
    points: int = 31,
    callback: progress.Callback | None = None,
) -> dict:
    """The curve's rows at `points` values of Υ from 0 to `max_distortion`, and how many images it counts
    (`curve_targets` leaves out those already of the target class)."""
    rows, goals = curve_targets(model, x, y, target, towards)
    d = distortions(
        model,
        x[rows],
        y[rows],
        goals,
        max_distortion=max_distortion,
        theta=theta,
        pairs=pairs,
        against=against,
        callback=callback,
    )
    return {"rows": success_curve(d.cpu(), np.linspace(0.0, max_distortion, points)), "images": int(rows.numel())}


def hardness_classes(num_classes: int, preferred=(0, 1, 7, 9)) -> list[int]:
    """The hardness matrix's starting classes: four that differ in look on Fashion-MNIST (T-shirt, trouser,
    sneaker, ankle boot), as far as the model has them."""
    return [c for c in preferred if c < num_classes]


def hardness_grid(rows: list[dict]) -> tuple[np.ndarray, list[int]]:
    """`hardness_matrix` rows as a source × target matrix (NaN where no pair was measured) and its classes."""
    order = sorted({r["source"] for r in rows} | {r["target"] for r in rows})
    m = np.full((len(order), len(order)), np.nan)
    for r in rows:
        if r["hardness"] is not None:
            m[order.index(r["source"]), order.index(r["target"])] = r["hardness"]
    return m, order


def table_seconds(model, images: int, upsilon: float, pairs: int) -> float:
    """Expected time of the increasing-vs-decreasing table and R(F): two JSMA runs over every (image, other
    class) pair, and one Jacobian of every pair for A(X, t)."""
    from engine import cost

    batch = images * (len(model.class_names) - 1)
    per_run = cost.attack_passes(model, "jsma", {"max_distortion": upsilon, "pairs": pairs})
    return (2 * per_run + 2) * cost.pass_seconds(model, batch)


def _percent(v) -> str:
    return "—" if v is None else f"{v:.1%}"


def shown_table(rows: list[dict]) -> list[dict]:
    """`jsma_table` rows as shown, next to the published MNIST figures of each variant."""
    out = []
    for r in rows:
        paper = SEED_TABLE[r["theta"]]
        distortion = "not given" if paper["mean_distortion"] is None else _percent(paper["mean_distortion"])
        out.append(
            {
                "variant": f"{r['variant']} (θ = {r['theta']:+d})",
                "pairs": r["pairs"],
                "success": f"{_percent(r['success_rate'])} ± {_percent(r['success_se'])}",
                "mean distortion": _percent(r["mean_distortion"]),
                "paper (MNIST)": f"{_percent(paper['success_rate'])}, distortion {distortion}",
            }
        )
    return out


AGAINST_HELP = (
    "what the saliency map weighs the target class against: the sum of every other class (the paper, on "
    "ten classes), or the one class it must overtake (on a thousand classes the sum is mostly classes "
    "that do not compete)"
)


def target_choices(model, x: torch.Tensor) -> list[int]:
    """The classes JSMA may aim `x` at: every class but the one the model gives it."""
    with torch.no_grad():
        source = int(model(x).argmax(1))
    return [i for i in range(len(model.class_names)) if i != source]


def too_many_classes(num_classes: int) -> str:
    return (
        f"The paper's table (Papernot et al. 2016) attacks each image towards every other class: "
        f"{num_classes - 1} attacks per image here. Choose a model with few classes (a Fashion-MNIST one) for it."
    )


def table_caption(upsilon: float) -> str:
    """What the increasing-vs-decreasing table counts, and what the published figures next to it are."""
    return (
        f"Υ = {upsilon:.1%}. Success is over every (image, other class) pair of the images the model gets right; "
        "mean distortion is the share of features changed, over the successes. The paper's figures (Papernot et al. "
        "2016) are for an MNIST LeNet at Υ = 14.5 % (no distortion given for the decreasing variant)."
    )


def robustness_metrics(r: dict, class_names) -> list[tuple[str, str, str]]:
    """(label, value, help) of R(F), the mean A(X, t) and the most exposed pair, from `robustness`."""
    from engine import glossary

    at = r["argmin"]
    return [
        ("R(F) = min A(X, t)", f"{r['R']:.3f}", glossary.help_text("robustness R(F)")),
        ("mean A(X, t)", f"{r['mean_A']:.3f}", glossary.help_text("adversarial distance A(X, t)")),
        (
            "Most exposed pair (smallest A)",
            f"{class_names[at['source']]} → {class_names[at['target']]}",
            f"image {at['image']} of the evaluation images: the most features with positive saliency",
        ),
    ]


def robustness_caption(r: dict) -> str:
    return (
        f"A(X, t) = 1 − the share of features whose saliency towards t is positive, over {r['pairs']} pairs; "
        "a small A means many features help the attack. R(F) is the smallest: the model's most exposed pair. "
        "The paper defines R(F) but reports no value for its network."
    )
