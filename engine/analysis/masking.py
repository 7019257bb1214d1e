"""Contour vs background: the masking effect (Menn 2023, §4.8).

An object mask splits a sign-quantised perturbation δ' = ε·sign(δ) into the
part inside the object's outline ("contour" in the thesis) and the background.
Test models judge each part alone, next to a random ±ε control on the same
pixels, and two sweeps trace the effect: growing/shrinking the mask with a 3×3
all-ones OpenCV dilation/erosion (accuracy vs area, and the drop per +1 % area),
and the L∞ size of each part.

Masks: Fashion-MNIST objects by thresholding (objects are bright on black);
gallery photos have masks committed under assets/images/masks (GrabCut from a
rectangle, checked by eye); any other photo gets an automatic GrabCut mask from
a centred rectangle that the caller can move.

Search-based attacks (Menn 2023, §5.1): `copies_sweep` averages a query-only attack
(Square, started from δ = 0) over more and more noisy copies and follows how much
of δ's energy lies on the object, next to the contour-vs-background accuracies.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from engine import progress
from engine.analysis.recognisable import accuracy_rows, complementarity, random_signs, sign_quantise
from engine.attacks.averaging import averaged
from engine.masks import FMNIST_THRESHOLD, MASKS, fill_holes, gallery_mask, grabcut_mask, threshold_mask  # noqa: F401

_KERNEL = np.ones((3, 3), np.uint8)


def morph(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` > 0: dilate that many times with a 3×3 all-ones kernel; < 0: erode (OpenCV's
    dilate/erode, as the thesis grows and shrinks its masks)."""
    if steps == 0:
        return mask.clone()
    op = cv2.dilate if steps > 0 else cv2.erode
    arr = mask.reshape(-1, *mask.shape[-2:]).cpu().numpy().astype(np.uint8)
    out = np.stack([op(a, _KERNEL, iterations=abs(int(steps))) for a in arr])
    return torch.from_numpy(out).reshape(mask.shape).to(mask.device).bool()


def area(mask: torch.Tensor) -> float:
    return float(mask.float().mean())


def sweep_steps(mask: torch.Tensor, count: int = 9, low: float = 0.02, high: float = 0.98) -> list[int]:
    """About `count` erosion (−)/dilation (+) steps for `mask_sweep` whose areas spread evenly from ~`low` to
    ~`high` of the image (as far as the mask reaches), always with 0, the mask itself.

    A fixed ±4 steps of a 3×3 kernel spans two thirds of a 28-px image but only ±2 % of a 224-px photo: there
    the curve is flat whatever the perturbation does."""
    frame = mask.reshape(-1, *mask.shape[-2:])[0].cpu().numpy().astype(np.uint8)
    limit = max(frame.shape)
    areas = {0: float(frame.mean())}
    for sign, op in ((-1, cv2.erode), (1, cv2.dilate)):
        grown, k = frame, 0
        while k < limit:
            grown, k = op(grown, _KERNEL), k + 1
            areas[sign * k] = float(grown.mean())
            if (sign < 0 and areas[sign * k] <= low) or (sign > 0 and areas[sign * k] >= high):
                break
    lo, hi = min(areas.values()), max(areas.values())
    wanted = np.linspace(max(lo, low), min(hi, high), count) if hi > lo else [areas[0]]
    picked = {min(areas, key=lambda k: (abs(areas[k] - a), abs(k))) for a in wanted} | {0}
    # Steps that give the same area (a mask already gone, or filling the image) are one point.
    by_area = {}
    for k in sorted(picked, key=abs):
        by_area.setdefault(round(areas[k], 6), k)
    return sorted(by_area.values())


def sweep_note(rows: list[dict], eps: float) -> str | None:
    """A sentence instead of the mask sweep's charts where its accuracy is the same at every mask size (a flat
    line and a zero derivative say nothing), with what to try; None where the curve moves."""
    values = [r["accuracy"] for r in rows]
    if not rows or max(values) - min(values) > 1e-9:
        return None
    areas = [r["area"] for r in rows]
    span = f"from {min(areas):.0%} to {max(areas):.0%} of the image"
    if values[0] <= 0.0:
        return (
            f"δ' = {eps:g}·sign(δ) fools every judge at every mask size {span}: even its smallest part is "
            f"enough at this ε. Lower ε (e.g. {eps / 4:.3g}) to see how much of the image δ' must cover."
        )
    return (
        f"δ' = {eps:g}·sign(δ) fools no judge at any mask size {span} (accuracy {values[0]:.0%}). Raise ε "
        f"(e.g. {eps * 3:.3g}; the L∞ sweep shows where each part starts to fool) or average over more copies."
    )


def _parts(mask: torch.Tensor):
    return {"object": mask.float(), "background": 1.0 - mask.float()}


def _control(x: torch.Tensor, quantised: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """Random ±ε on the pixels δ' moves: a search-based δ leaves pixels at exactly 0, and a control that
    covered those too would be a larger perturbation than the one it checks."""
    return random_signs(x, eps, seed) * (quantised != 0).to(x.dtype)


def contour_vs_background(
    tests: Sequence,
    x: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
    seed: int = 0,
) -> list[dict]:
    """Accuracy with δ' only inside the object, only on the background, and ±ε random controls on the same pixels."""
    quantised = sign_quantise(delta, eps)
    control = _control(x, quantised, eps, seed)
    rows = []
    for part, weight in _parts(mask).items():
        share = float(weight.mean())
        rows += accuracy_rows(tests, (x + quantised * weight).clamp(0, 1), y, part=part, perturbation="δ'", area=share)
        rows += accuracy_rows(
            tests, (x + control * weight).clamp(0, 1), y, part=part, perturbation="random ±ε", area=share
        )
    return rows


def mask_sweep(
    tests: Sequence,
    x: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
    steps: Sequence[int] = range(-3, 4),
    seed: int = 0,
) -> list[dict]:
    """δ' on the eroded/dilated object mask: mean test accuracy vs area fraction, with the control,
    and the slope "accuracy change per +1 % of image area" between consecutive masks."""
    quantised = sign_quantise(delta, eps)
    control = _control(x, quantised, eps, seed)
    rows = []
    for k in sorted(steps):
        grown = morph(mask, k).float()
        acc = [r["accuracy"] for r in accuracy_rows(tests, (x + quantised * grown).clamp(0, 1), y)]
        ctl = [r["accuracy"] for r in accuracy_rows(tests, (x + control * grown).clamp(0, 1), y)]
        rows.append(
            {
                "steps": k,
                "area": float(grown.mean()),
                "accuracy": float(np.mean(acc)),
                "control accuracy": float(np.mean(ctl)),
            }
        )
    for prev, row in zip(rows, rows[1:]):
        gained = 100.0 * (row["area"] - prev["area"])
        row["per +1% area"] = (row["accuracy"] - prev["accuracy"]) / gained if gained > 0 else None
    if rows:
        rows[0]["per +1% area"] = None
    return rows


def linf_sweep(
    tests: Sequence,
    x: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    mask: torch.Tensor,
    eps_values: Sequence[float] = tuple(round(0.01 * i, 2) for i in range(1, 11)),
    seed: int = 0,
) -> list[dict]:
    """Mean test accuracy with ε·sign(δ) on each part as ε grows (background saturates, the object keeps falling)."""
    rows = []
    for eps in eps_values:
        quantised = sign_quantise(delta, eps)
        control = _control(x, quantised, eps, seed)
        for part, weight in _parts(mask).items():
            acc = [r["accuracy"] for r in accuracy_rows(tests, (x + quantised * weight).clamp(0, 1), y)]
            ctl = [r["accuracy"] for r in accuracy_rows(tests, (x + control * weight).clamp(0, 1), y)]
            rows.append(
                {
                    "eps": float(eps),
                    "part": part,
                    "accuracy": float(np.mean(acc)),
                    "control accuracy": float(np.mean(ctl)),
                }
            )
    return rows


def complementarity_coverage(delta: torch.Tensor, mask: torch.Tensor) -> dict:
    """After zeroing |δ| below its mean: the share of object and of background pixels still perturbed
    (the thesis' observation: the object can be left clear while the background is covered)."""
    kept = complementarity(delta).abs().amax(1, keepdim=True) > 0
    obj, bg = mask.bool(), ~mask.bool()
    return {
        "object kept": float(kept[obj].float().mean()) if obj.any() else None,
        "background kept": float(kept[bg].float().mean()) if bg.any() else None,
    }


def energy_in_mask(delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image, the share of δ's energy Σδ² (over channels and pixels) inside the object mask;
    NaN for a δ that is zero everywhere. A δ spread evenly over the image scores the mask's area."""
    energy = (delta**2).sum(1)  # N×H×W
    inside = (energy * mask.reshape(energy.shape).to(energy.dtype)).flatten(1).sum(1)
    total = energy.flatten(1).sum(1)
    return torch.where(
        total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)), torch.full_like(total, float("nan"))
    )


def mean_energy_in_mask(delta: torch.Tensor, mask: torch.Tensor) -> float | None:
    """`energy_in_mask` averaged over the images that have any energy (None if none has)."""
    share = energy_in_mask(delta, mask)
    share = share[torch.isfinite(share)]
    return float(share.mean()) if share.numel() else None


def copies_sweep(
    models: Sequence,
    tests: Sequence,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    attack: str,
    params: dict,
    copies: Sequence[int] = (1, 4, 16, 64),
    sigma: float = 0.2,
    eps: float = 0.2,
    seed: int = 0,
    callback: progress.Callback | None = None,
) -> list[dict]:
    """How the number n of averaged perturbations changes the picture (Menn 2023, §5.1).

    Per n: `attack` with `params` averaged over n noisy copies (σ) on `models`; the share of δ's energy inside
    the object (`energy in object`, mean over images, beside the mask's `area`), the share of pixels any copy moved,
    and the contour-vs-background accuracies of δ' = ε·sign(δ) with the random ±ε control, averaged over
    the test models. Each row keeps its averaged δ under "delta" (for display). A cancelled n is left out."""
    rows = []
    for i, n in enumerate(copies):
        result = averaged(
            attack,
            models,
            x,
            y=y,
            copies=int(n),
            sigma=sigma,
            seed=seed,
            callback=progress.part(callback, i, len(copies), copies=int(n)),
            **params,
        )
        if result.stopped_early:
            break
        parts = contour_vs_background(tests, x, y, result.delta, mask, eps, seed=seed)
        rows.append(
            {
                "copies": int(n),
                "energy in object": mean_energy_in_mask(result.delta, mask),
                "area": area(mask),
                "moved": float((result.delta.abs().amax(1) > 0).float().mean()),
                **{
                    f"{part} {name}": _mean_accuracy(parts, part, kind)
                    for part in ("object", "background")
                    for name, kind in (("δ'", "δ'"), ("control", "random ±ε"))
                },
                "success rate": result.success_rate,
                "delta": result.delta,
            }
        )
    return rows


def _mean_accuracy(rows: list[dict], part: str, perturbation: str) -> float:
    return float(np.mean([r["accuracy"] for r in rows if r["part"] == part and r["perturbation"] == perturbation]))


def linf_note(rows: list[dict]) -> str | None:
    """A sentence instead of the L∞ sweep's chart where every part has the same accuracy at every ε."""
    values = [r["accuracy"] for r in rows]
    if not rows or max(values) - min(values) > 1e-9:
        return None
    eps = sorted({r["eps"] for r in rows})
    state = "fools every judge" if values[0] <= 0.0 else f"leaves the judges' accuracy at {values[0]:.0%}"
    step = f"smaller ε than {eps[0]:g}" if values[0] <= 0.0 else f"a larger ε than {eps[-1]:g}"
    return (
        f"ε·sign(δ) on the object or on the background {state} at every ε from {eps[0]:g} to {eps[-1]:g}: "
        f"try {step} (the ε above sets the range)."
    )


def contour_sentence(rows: list[dict]) -> str:
    """What the contour-vs-background table says, in one sentence (mean accuracy over the judges): which part
    of δ' fools the judges, against random ±ε signs on the same pixels."""
    acc = {
        (part, kind): _mean_accuracy(rows, part, kind)
        for part in ("object", "background")
        for kind in ("δ'", "random ±ε")
    }
    obj, bg = acc[("object", "δ'")], acc[("background", "δ'")]
    obj_c, bg_c = acc[("object", "random ±ε")], acc[("background", "random ±ε")]
    numbers = (
        f"judges' accuracy with δ' on the object {obj:.0%} (random ±ε there {obj_c:.0%}), on the background "
        f"{bg:.0%} (random ±ε {bg_c:.0%})"
    )
    if obj < bg:
        return f"δ' works through the object: {numbers}."
    if bg < obj:
        return f"δ' works through the background more than through the object: {numbers}."
    if obj < min(obj_c, bg_c):
        return (
            f"Either part of δ' alone is enough, where random signs of the same size are not: {numbers}; "
            "what δ' changes matters, not how much."
        )
    return f"Neither part of δ' alone does more than random signs of the same size: {numbers}."


# ---- the Anatomy page's mask section -------------------------------------------------------------


def box(left: float, top: float, width: float, height: float) -> tuple[float, float, float, float]:
    """A GrabCut rectangle (shares of the image) cut back so that it stays inside the image."""
    return left, top, min(width, 1.0 - left), min(height, 1.0 - top)


def share_note(share: float) -> str | None:
    """A warning where one part of the image is a sliver (under 10 %): its accuracy then says little."""
    if 0.1 <= share <= 0.9:
        return None
    part = "background" if share > 0.9 else "object"
    return (
        f"The mask covers {share:.0%} of the image, so the {part} is only {min(share, 1 - share):.0%} of it: "
        f"δ' on so few pixels barely moves any model, and the {part} numbers below say little. Shrink or grow "
        "the mask, draw a GrabCut box, or pick a photo where the object fills less of the frame."
    )


def shown_rows(rows: list[dict]) -> list[dict]:
    """The contour-vs-background rows with accuracy and area as percentages."""
    return [{k: (f"{v:.0%}" if k in ("accuracy", "area") else v) for k, v in r.items()} for r in rows]


def linf_values(eps: float, factors: Sequence[float] = (0.25, 0.5, 1, 1.5, 2, 3, 4)) -> list[float]:
    """The ε values of the L∞ sweep: multiples of the chosen ε around it."""
    return [round(float(eps) * f, 4) for f in factors]


def coverage_sentence(coverage: dict) -> str:
    """`complementarity_coverage` in words."""
    return (
        f"Complementarity: after zeroing |δ| below its mean, {coverage['object kept'] or 0:.0%} of object pixels "
        f"and {coverage['background kept'] or 0:.0%} of background pixels are still perturbed."
    )


def mask_report(
    judges: Sequence, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, mask: torch.Tensor, eps: float
) -> dict:
    """Everything the contour-vs-background section shows for one H×W object mask: the table ("rows", "shown"
    and its "sentence"), the area sweep ("sweep", with "flat" the words that replace a flat chart), the L∞
    sweep ("linf", "still" likewise), the complementarity "coverage" and a "note" where a part is a sliver."""
    rows = contour_vs_background(judges, x, y, delta, mask[None], float(eps))
    sweep = mask_sweep(judges, x, y, delta, mask[None], float(eps), steps=sweep_steps(mask[None]))
    linf = linf_sweep(judges, x, y, delta, mask[None], eps_values=linf_values(eps))
    return {
        "rows": rows,
        "shown": shown_rows(rows),
        "sentence": contour_sentence(rows),
        "sweep": sweep,
        "flat": sweep_note(sweep, float(eps)),
        "linf": linf,
        "still": linf_note(linf),
        "coverage": coverage_sentence(complementarity_coverage(delta, mask[None])),
        "note": share_note(area(mask)),
    }


# The GrabCut box's sliders: (label, lowest, highest, start, step, the last part of the widget's key).
BOX_SLIDERS = (
    ("Box left", 0.0, 0.9, 0.1, 0.05, "left"),
    ("Box top", 0.0, 0.9, 0.1, 0.05, "top"),
    ("Box width", 0.1, 1.0, 0.8, 0.05, "width"),
    ("Box height", 0.1, 1.0, 0.8, 0.05, "height"),
)
STORED_HELP = "stored: the gallery photo's committed mask, or the one that came with your images"


def mask_kinds(stored: torch.Tensor | None) -> list[str]:
    """The masks a photo may use: GrabCut, and first the stored one where there is one."""
    return ["GrabCut"] if stored is None else ["stored", "GrabCut"]


def shown_mask(x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The image with its object mask in red and the background dimmed, enlarged for the page."""
    from engine import images

    return images.enlarged(images.overlay(x, mask, (255, 60, 60), 0.4, outside=0.35))


def mask_caption(mask: torch.Tensor) -> str:
    return f"object mask: {area(mask):.1%} of the image"
