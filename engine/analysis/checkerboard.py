"""Checkerboard artefacts of noisy single-model averaging (Menn 2023, §5.2).

Averaging one model's perturbations over many Gaussian copies turns a grid
pattern visible as σ grows; its period (the thesis: ~1 px at σ = 0.05 up to
~30 px at σ = 0.5) is measured here as the dominant peak of the perturbation's
2-D power spectrum. A grid of period p has its peaks at frequencies whose
larger axis component is 1/p cycles per pixel, so the period is 1 / max(|fx|, |fy|).
Patterns that repeat fewer than four times across the image (periods above
a quarter of its side: the object's own shape, not a grid) are left out of
the search.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine import progress
from engine.attacks.averaging import averaged


def power_spectrum(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """|FFT|² of the channel-mean of one perturbation (C×H×W or H×W), mean removed,
    with the frequencies (cycles per pixel) of its rows and columns."""
    if delta.dim() == 4:
        delta = delta[0]
    gray = delta.float().mean(0) if delta.dim() == 3 else delta.float()
    gray = gray - gray.mean()
    h, w = gray.shape
    power = torch.fft.rfft2(gray).abs().pow(2)
    fy = torch.fft.fftfreq(h, device=gray.device)
    fx = torch.fft.rfftfreq(w, device=gray.device)
    return power, fy, fx


def dominant_period(delta: torch.Tensor, min_repeats: float = 4.0) -> dict:
    """The spectrum's strongest peak: its period in pixels, frequency, and prominence (peak / median power)."""
    power, fy, fx = power_spectrum(delta)
    h, w = (power.shape[0], (power.shape[1] - 1) * 2)
    reach = torch.maximum(fy.abs()[:, None], fx.abs()[None, :])
    allowed = reach >= min_repeats / min(h, w)
    if not bool(allowed.any()):
        raise ValueError(f"a {h}×{w} perturbation is too small to hold a repeating pattern")
    # −inf, not 0, outside: a flat spectrum must still peak inside the allowed band, never at zero frequency.
    masked = torch.where(allowed, power, torch.full_like(power, float("-inf")))
    flat = int(masked.argmax())
    iy, ix = divmod(flat, power.shape[1])
    peak = float(masked.flatten()[flat])
    median = float(power[allowed].median())
    return {
        "period": 1.0 / float(reach[iy, ix]),
        "fy": float(fy[iy]),
        "fx": float(fx[ix]),
        "prominence": peak / median if median > 0 else float("inf"),
    }


def checkerboard(
    model,
    x: torch.Tensor,
    sigmas: Sequence[float] = (0.05, 0.1, 0.2, 0.5),
    copies: int = 256,
    attack: str = "bim",
    seed: int = 0,
    callback=None,
    **params,
) -> list[dict]:
    """Noisy single-model averaging of one image at each σ, and the measured period of each average.

    Rows: σ, period, frequency, prominence, and the averaged δ itself (for display)."""
    rows = []
    for i, sigma in enumerate(sigmas):
        result = averaged(
            attack,
            [model],
            x[:1],
            copies=copies,
            sigma=float(sigma),
            seed=seed,
            callback=progress.part(callback, i, len(sigmas), sigma=float(sigma)),
            **params,
        )
        if result.stopped_early:  # a part-averaged δ has no period worth reporting
            break
        rows.append({"sigma": float(sigma), **dominant_period(result.delta[0]), "delta": result.delta[0]})
    return rows


SIGMA_CHOICES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
DEFAULT_SIGMAS = (0.05, 0.2, 0.5)  # a low, a middle and a high σ: the period grows with σ


def seconds(model, sigmas: Sequence[float], copies: int, settings: dict) -> float:
    """Expected time of `for_settings` on one image."""
    from engine import cost
    from engine.analysis.recognisable import attack_params

    return len(sigmas) * cost.averaged_seconds("bim", [model], 1, int(copies), attack_params("bim", settings))


def panels(rows: list[dict]) -> list[tuple]:
    """(title, signed map, "signed") per σ: each average with its measured period."""
    from engine import images

    return [
        (f"σ={r['sigma']:g}: period {r['period']:.1f} px", images.signed_map(r["delta"][None]), "signed") for r in rows
    ]


def for_settings(
    model, x: torch.Tensor, sigmas: Sequence[float], copies: int, settings: dict, callback=None
) -> list[dict]:
    """`checkerboard` with BIM at the Anatomy page's ε and steps."""
    from engine.analysis.recognisable import attack_params

    return checkerboard(model, x, sigmas=sigmas, copies=copies, callback=callback, **attack_params("bim", settings))
