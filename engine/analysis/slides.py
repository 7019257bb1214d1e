"""The one number each presentation slide states, computed from an Explorer result's panels.

A slide is one idea: its pictures, two lines of explanation and the figure that says it.
The numbers here are plain values; `*_items` words them as a slide's metrics (label, value, glossary term)
and EXPLAIN holds each slide's two lines. The app only lays them out.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.analysis.checkerboard import dominant_period

# The share of a heat map called its hot region: the warmest quarter of the pixels.
HOT_SHARE = 0.25

# Two lines at 1280 px each: the one idea of the slide, in the app's own words.
EXPLAIN = {
    "attack": "δ is too small to see, yet the white-box model changes its answer. Gradient attacks step along the "
    "loss gradient within ε; C&W and DeepFool look for the smallest change that crosses the boundary.",
    "perturbation": "The same δ three ways: signed (red brighter, blue darker), |δ| amplified to show where the attack "
    "acts, and display-normalised, where an averaged δ can start to look like the object.",
    "heat": "Grad-CAM: warm regions are the model's evidence for a class. Compare the clean image's evidence for its "
    "class with the adversarial image's; the last panel keeps δ only where the model looks.",
    "spectrum": "δ's power at each spatial frequency, zero in the centre. Noise spreads evenly; a regular grid (the "
    "checkerboard artefacts of strided layers) shows up as bright peaks off the centre.",
    "models": "The black-box models never saw the attack. When their answer changes too, the perturbation transfers: "
    "each bar is a model's confidence in the true class, before and after.",
}


def _hot(heat: np.ndarray, share: float = HOT_SHARE) -> np.ndarray:
    return heat >= np.quantile(heat, 1.0 - share)


def heat_numbers(delta: torch.Tensor, heat: dict) -> dict:
    """How the evidence moved: the correlation of the source class's map on the clean and the adversarial image,
    and the share of |δ| that falls in the clean map's hot region (a quarter of the pixels: 25 % is chance)."""
    clean, adversarial = heat["clean · source"], heat["adversarial · source"]
    if float(np.std(clean)) == 0.0 or float(np.std(adversarial)) == 0.0:
        kept = None  # a flat map has no pattern to keep
    else:
        kept = float(np.corrcoef(clean.ravel(), adversarial.ravel())[0, 1])
    size = delta.detach().abs()[0].float().mean(0).cpu().numpy()
    total = float(size.sum())
    inside = None if total == 0.0 or float(np.std(clean)) == 0.0 else float(size[_hot(clean)].sum()) / total
    return {"kept": kept, "in_hot": inside, "hot_share": HOT_SHARE}


def spectrum_numbers(delta: torch.Tensor) -> dict:
    """The strongest repeating pattern of δ (period in pixels, prominence over the median power) and the share
    of δ's power at fine detail: periods under 4 pixels (frequencies above 1/4 cycle per pixel)."""
    gray = delta.detach()[0].float().mean(0)
    gray = gray - gray.mean()
    power = torch.fft.fft2(gray).abs().pow(2)
    fy = torch.fft.fftfreq(gray.shape[0], device=gray.device).abs()
    fx = torch.fft.fftfreq(gray.shape[1], device=gray.device).abs()
    fine = torch.maximum(fy[:, None], fx[None, :]) > 0.25
    total = float(power.sum())
    try:
        peak = dominant_period(delta.detach()[0])
    except ValueError:  # too small an image to hold a repeating pattern
        peak = None
    return {
        "period": None if peak is None or total == 0.0 else peak["period"],
        "prominence": None if peak is None or total == 0.0 else peak["prominence"],
        "fine_share": None if total == 0.0 else float(power[fine].sum()) / total,
    }


def transfer_numbers(predictions: list[dict], source: int) -> dict:
    """How many models changed their answer, and each model's probability of the true class before and after
    (0 when it left the top-k)."""

    def p(rows: list[dict]) -> float:
        return next((r["probability"] for r in rows if r["index"] == source), 0.0)

    blacks = [m for m in predictions if m["role"] == "black-box"]
    return {
        "fooled": sum(m["fooled"] for m in predictions),
        "models": len(predictions),
        "black_fooled": sum(m["fooled"] for m in blacks),
        "blacks": len(blacks),
        "rows": [
            {
                "model": m["model"],
                "role": m["role"],
                "before": p(m["before"]),
                "after": p(m["after"]),
                "now": m["after"][0]["label"],
                "fooled": m["fooled"],
            }
            for m in predictions
        ],
    }


Item = tuple[str, str, str | None]  # one metric: label, value, glossary term (None: no help text)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def attack_items(row: dict) -> list[Item]:
    """The first slide's numbers: the largest change in 8-bit levels (what a viewer's screen can show), L2, SSIM,
    and the work the attack took."""
    steps = (
        ("Queries", row["queries"], "queries")
        if row["queries"] is not None
        else ("Iterations", row["iterations"], "iterations")
    )
    return [
        ("L∞ (of 255 levels)", f"{row['linf'] * 255:.1f}", "L∞"),
        ("L2", f"{row['l2']:.3f}", "L2"),
        ("SSIM", f"{row['ssim']:.3f}", "SSIM"),
        (steps[0], f"{steps[1]:,}", steps[2]),
    ]


def perturbation_items(row: dict) -> list[Item]:
    return [
        ("Pixels changed", f"{row['l0_pct']:.1f} %", "L0"),
        ("Largest change", f"{row['linf'] * 255:.1f} / 255", "L∞"),
        ("L2", f"{row['l2']:.3f}", "L2"),
    ]


def heat_items(numbers: dict, source: str) -> list[Item]:
    """`numbers` from heat_numbers; `source` is the true class's name."""
    kept = "—" if numbers["kept"] is None else f"{numbers['kept']:.2f}"
    return [
        (f"{source}: clean vs adversarial map (correlation)", kept, None),
        (f"|δ| in the warmest {numbers['hot_share']:.0%} of pixels", _percent(numbers["in_hot"]), None),
    ]


def spectrum_items(numbers: dict) -> list[Item]:
    """`numbers` from spectrum_numbers."""
    period = "—" if numbers["period"] is None else f"{numbers['period']:.1f} px"
    prominence = "—" if numbers["prominence"] is None else f"{numbers['prominence']:.0f}×"
    return [
        ("Strongest repeat: period", period, None),
        ("Its peak over the median power", prominence, None),
        ("Power in detail under 4 px", _percent(numbers["fine_share"]), None),
    ]


def transfer_items(numbers: dict) -> list[Item]:
    """`numbers` from transfer_numbers; the black-box count only when there are black-box models."""
    items = [("Models fooled", f"{numbers['fooled']} of {numbers['models']}", None)]
    if numbers["blacks"]:
        items.append(("Black boxes fooled", f"{numbers['black_fooled']} of {numbers['blacks']}", "black-box model"))
    return items
