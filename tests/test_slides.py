"""The key number of each presentation slide measures what its label says."""

from __future__ import annotations

import numpy as np
import torch

from engine.analysis import slides


def _grid(period: int, size: int = 64) -> torch.Tensor:
    i = torch.arange(size)
    stripes = ((i[:, None] // (period // 2) + i[None, :] // (period // 2)) % 2).float() * 2 - 1
    return (0.03 * stripes).expand(3, size, size)[None].clone()


def test_a_checkerboard_is_found_at_its_period_and_counts_as_fine_detail():
    fine = slides.spectrum_numbers(_grid(2))
    assert fine["fine_share"] > 0.99
    i = torch.arange(64.0)
    wave = torch.cos(2 * torch.pi * i / 8)  # a smooth grid: no sharp edges, so no fine harmonics
    coarse = slides.spectrum_numbers((0.03 * wave[:, None] * wave[None, :]).expand(1, 3, 64, 64).clone())
    assert abs(coarse["period"] - 8) < 1e-6 and coarse["fine_share"] < 0.05
    assert coarse["prominence"] > 10  # one grid, far above the median power
    assert slides.spectrum_numbers(torch.zeros(1, 3, 64, 64)) == {
        "period": None,
        "prominence": None,
        "fine_share": None,
    }


def test_the_share_of_delta_in_the_warm_quarter_is_chance_for_uniform_noise_and_all_for_a_masked_one():
    rng = np.random.default_rng(0)
    heat = rng.random((32, 32)).astype(np.float32)
    maps = {"clean · source": heat, "adversarial · source": heat}
    uniform = torch.full((1, 3, 32, 32), 0.01)
    assert abs(slides.heat_numbers(uniform, maps)["in_hot"] - 0.25) < 0.01
    masked = uniform * torch.from_numpy(heat >= np.quantile(heat, 0.75)).float()
    numbers = slides.heat_numbers(masked, maps)
    assert numbers["in_hot"] == 1.0 and abs(numbers["kept"] - 1.0) < 1e-6
    moved = slides.heat_numbers(uniform, {"clean · source": heat, "adversarial · source": heat.T.copy()})
    assert abs(moved["kept"]) < 0.2  # an unrelated map keeps almost nothing of the clean one
    flat = slides.heat_numbers(uniform, {"clean · source": np.zeros((32, 32)), "adversarial · source": heat})
    assert flat["kept"] is None and flat["in_hot"] is None


def test_transfer_counts_fooled_models_and_reads_the_true_class_probability():
    def top(*pairs):
        return [{"index": i, "label": f"c{i}", "probability": p} for i, p in pairs]

    predictions = [
        {
            "model": "w",
            "role": "white-box",
            "before": top((3, 0.9), (1, 0.1)),
            "after": top((1, 0.8), (3, 0.2)),
            "fooled": True,
        },
        {"model": "b1", "role": "black-box", "before": top((3, 0.7)), "after": top((5, 0.6), (2, 0.4)), "fooled": True},
        {"model": "b2", "role": "black-box", "before": top((3, 0.6)), "after": top((3, 0.5)), "fooled": False},
    ]
    numbers = slides.transfer_numbers(predictions, source=3)
    assert (numbers["fooled"], numbers["models"], numbers["black_fooled"], numbers["blacks"]) == (2, 3, 1, 2)
    assert [(r["before"], r["after"], r["now"]) for r in numbers["rows"]] == [
        (0.9, 0.2, "c1"),
        (0.7, 0.0, "c5"),
        (0.6, 0.5, "c3"),
    ]
