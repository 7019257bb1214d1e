"""The one number each presentation slide states, computed from an Explorer result's panels.

A slide is one idea: its pictures, two lines of explanation and the figure that says it.
The figures here are plain numbers; the app words and lays them out.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.analysis.checkerboard import dominant_period

# The share of a heat map called its hot region: the warmest quarter of the pixels.
HOT_SHARE = 0.25


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
        "fooled": sum(m["fooled"] for m in predictions), "models": len(predictions),
        "black_fooled": sum(m["fooled"] for m in blacks), "blacks": len(blacks),
        "rows": [{"model": m["model"], "role": m["role"], "before": p(m["before"]), "after": p(m["after"]),
                  "now": m["after"][0]["label"], "fooled": m["fooled"]} for m in predictions],
    }
