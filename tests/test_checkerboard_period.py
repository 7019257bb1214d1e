"""The checkerboard period detectors on synthetic grids of known period, with noise and an object-like bump."""

import sys
from pathlib import Path

import pytest
import torch

from engine.analysis.checkerboard import dominant_period, grid_period, periodic_share

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from checkerboard_period import blob, pattern  # noqa: E402

# Periods on a photo-sized and a Fashion-MNIST-sized image: up to a quarter of the side, where the detectors look.
CASES = [(224, p) for p in (2, 3, 4, 6, 8, 16, 24, 32)] + [(28, p) for p in (2, 3, 5, 7)]


def _grid(kind: str, side: int, period: int, seed: int, bump: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # As much noise as grid (SNR 1 per pixel); the bump, where asked, twice the grid's amplitude.
    return pattern(kind, side, period, gen) + torch.randn(side, side, generator=gen) + bump * blob(side)


@pytest.mark.parametrize("kind", ["cosine", "squares", "dots"])
def test_grid_period_recovers_known_periods(kind):
    for seed, (side, period) in enumerate(CASES):
        for bump in (0.0, 2.0):
            found = grid_period(_grid(kind, side, period, seed, bump))
            assert found["period"] == period, (kind, side, period, bump, found["period"])
            # Noise alone holds ≤ 0.02 beyond chance (28 px) and ≤ 0.003 (224 px); these grids ≥ 0.1.
            assert found["share"] > 0.1


def test_the_strongest_peak_reads_a_lattice_of_dots_as_a_harmonic():
    # Strided convolutions repeat a point-like pattern, whose harmonics are as strong as its fundamental: the
    # strongest spectral peak is then one of them, at random, and reads a fraction of the period.
    misread = [
        period
        for seed, (side, period) in enumerate(CASES)
        if period >= 4 and dominant_period(_grid("dots", side, period, seed))["period"] < 0.95 * period
    ]
    assert len(misread) >= 4, misread
    # On cosines (one harmonic) both detectors agree.
    for seed, (side, period) in enumerate(CASES[:6]):
        d = _grid("cosine", side, period, seed)
        assert dominant_period(d)["period"] == pytest.approx(period, rel=0.05)


def test_noise_and_a_bare_object_hold_no_grid():
    gen = torch.Generator().manual_seed(0)
    for side, limit in ((224, 0.005), (28, 0.04)):
        for _ in range(3):
            assert grid_period(torch.randn(side, side, generator=gen))["share"] < limit
    assert grid_period(blob(224) + 0.3 * torch.randn(224, 224, generator=gen))["period"] == 1


def test_periodic_share_is_one_for_a_pure_grid_and_channels_are_averaged():
    grid = pattern("dots", 56, 8, torch.Generator().manual_seed(0))
    assert periodic_share(grid, 8) == pytest.approx(1.0, abs=1e-5)
    assert periodic_share(grid, 16) == pytest.approx(1.0, abs=1e-5)  # a multiple repeats too
    assert periodic_share(grid, 7) < 0.1
    three = torch.stack([grid, grid, grid])
    assert periodic_share(three, 8) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="too small"):
        grid_period(torch.randn(6, 6))
