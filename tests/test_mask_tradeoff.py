"""Mask-FGSM beside FGSM and DeepFool on one image (the Explorer's side by side), and its L0-vs-success sweep over
the heat-map threshold P_th."""

from __future__ import annotations

import pytest
import torch
from test_cli import run_json

from engine import attacks, images, models
from engine.analysis import sparsity
from engine.datasets import fashion_mnist
from engine.metrics import perturbation_report

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def fmnist():
    model = models.load("fmnist-lenet-0", device="cpu")
    x, y = fashion_mnist.evaluation_slice(64)
    return model, x, y


def test_the_side_by_side_rows_are_the_three_attacks_run_alone(fmnist):
    model, x, _ = fmnist
    image = x[3:4]
    found = sparsity.side_by_side(model, image, seed=5)
    assert not found["cancelled"] and [r["method"] for r in found["rows"]] == ["fgsm", "deepfool", "maskfgsm"]
    assert found["clean"] == int(model(image).argmax())
    for row, (name, kw) in zip(found["rows"], sparsity.SIDE_BY_SIDE):
        alone = attacks.run(name, model, image, seed=5, **kw)
        numbers = perturbation_report(image, alone.x_adv)[0]
        assert row["l0_pct"] == pytest.approx(numbers["l0_pct"], abs=1e-9)
        assert row["ssim"] == pytest.approx(numbers["ssim"], abs=1e-9)
        assert row["success_rate"] == float(alone.success[0])
        assert row["answer"] == int(alone.logits_adv.argmax())
        assert (row["adversarial"] == images.to_uint8(alone.x_adv[0])).all()
        assert (row["perturbation"] == images.signed(alone.delta[0])).all()
    # Mask-FGSM keeps FGSM's step to the hot part of the map: fewer pixels, a closer image.
    fgsm, _, mask = found["rows"]
    assert mask["l0_pct"] < fgsm["l0_pct"] and mask["ssim"] > fgsm["ssim"]


def test_a_cancelled_side_by_side_keeps_the_methods_it_finished(fmnist):
    model, x, _ = fmnist
    found = sparsity.side_by_side(model, x[:1], callback=lambda step, total, state: step <= 1)
    assert found["cancelled"] and [r["method"] for r in found["rows"]] == ["fgsm"]


def test_the_threshold_sweep_trades_l0_for_success_and_its_loosest_binary_point_is_fgsm(fmnist):
    """Eq. 5 (one step): a higher P_th keeps a subset of the pixels, so L0 cannot grow; the binary mask at P_th = 0
    covers every pixel with the full step, which is FGSM."""
    model, x, y = fmnist
    p_ths = (0.0, 0.3, 0.6, 0.9)
    rows = sparsity.mask_tradeoff(model, x, y, p_ths=p_ths, masks=("weighted", "binary"), steps=1)
    fgsm = rows[0]
    assert fgsm["method"] == "fgsm" and fgsm["p_th"] is None and len(rows) == 1 + 2 * len(p_ths)
    for mask in ("weighted", "binary"):
        line = [r for r in rows if r["mask"] == mask]
        assert [r["p_th"] for r in line] == list(p_ths)
        for looser, tighter in zip(line, line[1:]):
            assert tighter["l0_any_pct"] <= looser["l0_any_pct"] + 1e-9
            assert tighter["l0_pct"] <= looser["l0_pct"] + 1e-9
        assert line[-1]["l0_any_pct"] < 0.5 * line[0]["l0_any_pct"]  # the sweep spans a real trade-off
    loosest = next(r for r in rows if r["mask"] == "binary" and r["p_th"] == 0.0)
    assert loosest["success_rate"] == fgsm["success_rate"] and loosest["l0_any_pct"] == fgsm["l0_any_pct"]
    weighted = next(r for r in rows if r["mask"] == "weighted" and r["p_th"] == 0.0)
    assert weighted["success_rate"] < fgsm["success_rate"]  # the map's weights shrink the step below ε
    same = attacks.run("maskfgsm", model, x, y=y, eps=0.2, p_th=0.0, mask="binary")
    assert torch.equal(same.x_adv, attacks.run("fgsm", model, x, y=y, eps=0.2).x_adv)


def test_the_cli_sweep(capsys):
    rows = run_json(
        capsys, "mask-tradeoff", "--model", "fmnist-lenet-0", "--n", "8", "--p-th", "0", "0.9", "--steps", "1", "--json"
    )
    assert [(r["method"], r["p_th"]) for r in rows] == [("fgsm", None), ("maskfgsm", 0.0), ("maskfgsm", 0.9)]
    assert rows[2]["l0_any_pct"] <= rows[1]["l0_any_pct"]
