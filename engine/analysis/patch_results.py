"""What the patch-distance experiment found: the numbers per distance (the curve, the excess over random
positions, the rank correlation), the result record, and the words and table the page and CLI show."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.analysis.patch_placements import Placements


def answer_stats(p_true: torch.Tensor, margin: torch.Tensor, clean: torch.Tensor) -> dict:
    wrong = 1 - p_true
    n = int(p_true.numel())
    spread = lambda v: float(v.std(unbiased=False)) if n else None  # noqa: E731
    mean = lambda v: float(v.mean()) if n else None  # noqa: E731
    return {
        "n": n,
        "wrong_mean": mean(wrong),
        "wrong_std": spread(wrong),
        "margin_mean": mean(margin),
        "margin_std": spread(margin),
        "drop_mean": mean(clean - p_true),
        "success": float((margin < 0).float().mean()) if n else None,
    }


def curve(
    distances,
    groups: torch.Tensor,
    p_true: torch.Tensor,
    margin: torch.Tensor,
    clean_p: torch.Tensor,
    skipped: list[int] | None = None,
) -> list[dict]:
    """Per distance (groups[j] indexes `distances`): n, mean/std of 1 − p(true) and of the margin, the mean
    drop of p(true) from the clean photo, the share that flips the decision, and the skipped count."""
    rows = []
    for i, d in enumerate(distances):
        at = groups == i
        row = {"distance": float(d), **answer_stats(p_true[at], margin[at], clean_p[at])}
        if skipped is not None:
            row["skipped"] = int(skipped[i])
        rows.append(row)
    return rows


def over_random(
    groups: torch.Tensor,
    ring_image: torch.Tensor,
    ring_drop: torch.Tensor,
    random_image: torch.Tensor,
    random_drop: torch.Tensor,
    photos: int,
    count: int,
) -> list[dict]:
    """Per distance, photo by photo: the photo's mean drop of p(true) there minus its mean drop at its random
    positions; then the mean of that excess over photos, its standard error and the share of photos above 0.

    A photo's placements are not independent draws (they share the photo), so the photo is the unit here:
    an excess whose mean stands more than two standard errors above 0 is more than chance."""

    def per_photo(index, values):
        total = torch.zeros(photos * count, dtype=torch.float64).index_add_(0, index, values.double())
        seen = torch.zeros(photos * count, dtype=torch.float64).index_add_(0, index, torch.ones_like(values).double())
        return total.view(photos, count), seen.view(photos, count)

    ring_sum, ring_n = per_photo(ring_image * count + groups, ring_drop)
    rand_sum, rand_n = per_photo(random_image * count, random_drop)
    base = rand_sum[:, 0] / rand_n[:, 0].clamp_min(1)
    rows = []
    for g in range(count):
        have = (ring_n[:, g] > 0) & (rand_n[:, 0] > 0)
        excess = ring_sum[have, g] / ring_n[have, g] - base[have]
        m = int(have.sum())
        rows.append(
            {
                "photos": m,
                "over_random_mean": float(excess.mean()) if m else None,
                "over_random_se": float(excess.std() / math.sqrt(m)) if m > 1 else None,
                "photos_above": float((excess > 0).double().mean()) if m else None,
            }
        )
    return rows


def nearest(values: torch.Tensor, distances) -> torch.Tensor:
    """The index of the requested distance nearest each value (the control's distance bins)."""
    d = torch.as_tensor([float(v) for v in distances])
    return (values.view(-1, 1) - d.view(1, -1)).abs().argmin(1)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Rank correlation (ties averaged); None where either side is constant or there are < 3 points."""
    a, b = a.numpy(), b.numpy()
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy import stats  # here: the CLI imports this module at start-up

    return float(stats.spearmanr(a, b).statistic)


@dataclass
class PatchDistance:
    """What the experiment found; `as_dict()` is its JSON."""

    settings: dict
    photos: list[dict]  # per input photo: label, centre, whether it counts and why not
    curve: list[dict]
    control: dict
    control_curve: list[dict]
    correlation: dict  # Spearman ρ of distance vs the drop of p(true), ring and control
    stopped_early: bool = False
    patch: torch.Tensor | None = field(default=None, repr=False)
    centres: torch.Tensor | None = field(default=None, repr=False)  # of the counted photos, (row, col)
    counted: torch.Tensor | None = field(default=None, repr=False)  # input index of each counted photo
    ring: Placements | None = field(default=None, repr=False)
    ring_answers: dict | None = field(default=None, repr=False)
    random: Placements | None = field(default=None, repr=False)
    random_answers: dict | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {
            "settings": self.settings,
            "stopped_early": self.stopped_early,
            "curve": self.curve,
            "control": self.control,
            "control_curve": self.control_curve,
            "correlation": self.correlation,
            "photos": self.photos,
        }


def summary(result: PatchDistance) -> str:
    """What the curves say, in one sentence: does the patch hurt more near the heat-map centre than at random
    positions of the same images (the drop of p(true), beyond two standard errors), or at least flip the
    decision more often there; and does that fade with distance."""
    rows = [r for r in result.curve if r["n"] and r.get("over_random_mean") is not None]
    if not rows:
        return "No image counts (the model must get it right and its heat map must not be all zero): add images."
    near, far = rows[0], rows[-1]
    se = near.get("over_random_se") or 0.0
    drop = (
        f"at {near['distance']:g} px from the heat-map centre the patch lowers p(true class) by "
        f"{near['over_random_mean']:+.3f} more than at random positions, at {far['distance']:g} px by "
        f"{far['over_random_mean']:+.3f}"
    )
    if near["over_random_mean"] > 2 * se and near["over_random_mean"] > far["over_random_mean"]:
        return f"Near the evidence hurts most: {drop}, so the model leans on where its heat map is hot."
    flips, random = near.get("success") or 0.0, result.control.get("success") or 0.0
    if flips > max(far.get("success") or 0.0, random):
        return (
            f"Near the evidence flips the decision most: {flips:.0%} of placements at {near['distance']:g} px, "
            f"{far.get('success') or 0.0:.0%} at {far['distance']:g} px, {random:.0%} at random positions; "
            f"the drop of p(true) is within its noise on {near['photos']} images (more images sharpen it)."
        )
    return (
        f"No clear distance effect: {drop}; on these images the heat-map centre is not where a patch hurts "
        "most (more images, or a larger patch, sharpen the comparison)."
    )


def counted_sentence(result: PatchDistance) -> str:
    """Which images count, the rank correlations of distance and drop, and the nearest distance's drop
    beyond the same images' random positions."""
    info, rho = result.settings, result.correlation

    def fmt(v) -> str:
        return "—" if v is None else f"{v:+.2f}"

    near = next((r for r in result.curve if r["n"] and r["over_random_mean"] is not None), None)
    excess = (
        ""
        if near is None
        else (
            f" At {near['distance']:g} px p(true) drops by {near['over_random_mean']:+.3f} ± "
            f"{near['over_random_se'] or 0:.3f} (standard error over {near['photos']} images) more than at the same "
            "image's random positions."
        )
    )
    return (
        f"{info['photos_counted']} of {info['photos']} images count (the model gets them right and their heat "
        f"map is not all zero). Spearman ρ of distance and the drop of p(true): {fmt(rho['ring'])} on the rings, "
        f"{fmt(rho['control'])} at random positions (negative: the effect fades with distance).{excess}"
    )


def table_rows(result: PatchDistance) -> list[dict]:
    """The numbers per distance, then the random positions' at their mean distance."""
    control = {
        "distance": result.control["distance_mean"],
        **{k: v for k, v in result.control.items() if k != "distance_mean"},
    }
    return [{"placed": "at this distance", **r} for r in result.curve] + [
        {"placed": "random (mean distance)", **control}
    ]
