"""Checkerboard artefacts of noisy single-model averaging (Menn 2023, §5.2).

Averaging one model's perturbations over many Gaussian copies turns a grid
pattern visible as σ grows (the thesis: ~1 px at σ = 0.1 up to ~30 px at
σ = 0.5, seven repeats across a 224-px row). Two readings of its period:

- `grid_period` (a row's `period`): the shortest period whose repeating part
  holds the perturbation's periodic energy, once the object's own shape
  (frequencies below four cycles per side) is removed. Strided convolutions
  leave lattice-like grids whose harmonics are as strong as their fundamental;
  this reads them by their fundamental.
- `dominant_period` (a row's `peak_period`, with its frequency and prominence):
  the power spectrum's strongest peak, as 1 / max(|fx|, |fy|). It reads a
  lattice as one of its harmonics, and an object-shaped perturbation as a
  period near a quarter of the side (the edge of the band it searches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from engine import progress
from engine.attacks.averaging import averaged


def _gray(delta: torch.Tensor) -> torch.Tensor:
    """The channel mean of one perturbation (N×C×H×W: the first, C×H×W or H×W), its own mean removed."""
    if delta.dim() == 4:
        delta = delta[0]
    gray = delta.float().mean(0) if delta.dim() == 3 else delta.float()
    return gray - gray.mean()


def power_spectrum(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """|FFT|² of the channel-mean of one perturbation (C×H×W or H×W), mean removed,
    with the frequencies (cycles per pixel) of its rows and columns."""
    gray = _gray(delta)
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


def _repeating_energy(gray: torch.Tensor, period: int) -> float:
    """Energy of the part of `gray` that repeats every `period` pixels along both axes: the mean of each of the
    period × period phases, tiled back over the image (the image folded onto one cell, zero-padded)."""
    h, w = gray.shape
    tall, wide = -(-h // period) * period, -(-w // period) * period
    padded = torch.nn.functional.pad(gray, (0, wide - w, 0, tall - h))
    sums = padded.reshape(tall // period, period, wide // period, period).sum((0, 2))
    rows = torch.full((period,), h // period, dtype=gray.dtype, device=gray.device)
    cols = torch.full((period,), w // period, dtype=gray.dtype, device=gray.device)
    rows[: h % period] += 1
    cols[: w % period] += 1
    return float((sums.pow(2) / (rows[:, None] * cols[None, :])).sum())


def periodic_share(delta: torch.Tensor, period: int) -> float:
    """Share of the perturbation's energy (channel mean, mean removed) in its part that repeats every `period`
    pixels along both axes. This is the power at every harmonic of 1/period at once, so a grid whose harmonics
    are as strong as its fundamental (a lattice of dots, as strided convolutions leave) counts whole."""
    gray = _gray(delta)
    total = float(gray.pow(2).sum())
    return _repeating_energy(gray, period) / total if total > 0 else 0.0


def _without_shape(gray: torch.Tensor, min_repeats: float) -> torch.Tensor:
    """`gray` less its frequencies below `min_repeats` cycles per side: the object's own shape, never part of a
    grid of at most a `min_repeats`-th of the side (every harmonic of such a grid lies above)."""
    h, w = gray.shape
    fy = torch.fft.fftfreq(h, device=gray.device).abs()[:, None]
    fx = torch.fft.fftfreq(w, device=gray.device).abs()[None, :]
    kept = torch.maximum(fy, fx) >= min_repeats / min(h, w) - 1e-9
    return torch.fft.ifft2(torch.fft.fft2(gray) * kept).real


def grid_period(delta: torch.Tensor, min_repeats: float = 4.0, keep: float = 0.8, min_z: float = 6.0) -> dict:
    """The grid's period in whole pixels, up to a `min_repeats`-th of the side.

    The image's shape (frequencies below `min_repeats` cycles per side) is removed first; each period p then
    scores the share of what is left that repeats every p pixels, less what white noise would give it
    (p² / pixels: a period-p part fits p² free values), and counts only `min_z` noise deviations above zero.
    The period is the shortest local maximum holding at
    least `keep` of the best score: a multiple of the true period repeats too, hence the shortest, and a period
    a pixel off still holds much of a long grid, hence a local maximum. `share` is the chosen period's score,
    `shares` every period's. Unlike the spectrum's strongest peak, a grid whose harmonics are as strong as its
    fundamental reads as its own period, not as a harmonic's."""
    gray = _gray(delta).double()
    h, w = gray.shape
    longest = int(min(h, w) // min_repeats)
    if longest < 2:
        raise ValueError(f"a {h}×{w} perturbation is too small to hold a repeating pattern")
    detail = _without_shape(gray, min_repeats)
    total = float(detail.pow(2).sum())
    shares = {}
    for p in range(2, longest + 1):
        chance = p * p / (h * w)
        found = _repeating_energy(detail, p) / total if total > 0 else 0.0
        shares[p] = (found - chance) / (1 - chance)
    # On white noise a period's score has a standard deviation of about √2·p / pixels: only scores `min_z` of
    # those above zero count as a grid.
    real = {p: v for p, v in shares.items() if v * h * w / (math.sqrt(2) * p) >= min_z}
    if not real:  # nothing repeats beyond chance: no grid coarser than a pixel
        return {"period": 1, "share": 0.0, "shares": shares}
    best = max(real.values())
    peaks = [
        p for p, v in real.items() if v >= keep * best and v >= shares.get(p - 1, -1) and v >= shares.get(p + 1, -1)
    ]
    period = min(peaks) if peaks else max(real, key=real.get)
    return {"period": period, "share": shares[period], "shares": shares}


def readings(delta: torch.Tensor) -> dict:
    """Both readings of one perturbation: `period` and `share` (grid_period), and the strongest spectral peak
    (peak_period, fy, fx, prominence)."""
    grid, peak = grid_period(delta), dominant_period(delta)
    return {
        "period": grid["period"],
        "share": grid["share"],
        "peak_period": peak["period"],
        "fy": peak["fy"],
        "fx": peak["fx"],
        "prominence": peak["prominence"],
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

    Rows: σ, period and share (`grid_period`), the spectrum's strongest peak (peak_period, fy, fx, prominence)
    and the averaged δ itself (for display)."""
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
        rows.append({"sigma": float(sigma), **readings(result.delta[0]), "delta": result.delta[0]})
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
        (
            f"σ={r['sigma']:g}: " + ("no grid" if r["period"] == 1 else f"period {r['period']} px"),
            images.signed_map(r["delta"][None]),
            "signed",
        )
        for r in rows
    ]


def for_settings(
    model, x: torch.Tensor, sigmas: Sequence[float], copies: int, settings: dict, callback=None
) -> list[dict]:
    """`checkerboard` with BIM at the Anatomy page's ε and steps."""
    from engine.analysis.recognisable import attack_params

    return checkerboard(model, x, sigmas=sigmas, copies=copies, callback=callback, **attack_params("bim", settings))
