"""JSMA (SPEC §4) and Mask-FGSM (SPEC §5): budgets, directions, masks, and the seed-001 extras."""
import numpy as np
import pytest
import torch

from engine import attacks, images
from engine.analysis.gradcam import grad_cam
from engine.analysis.saliency_maps import adversarial_distance, distortions, hardness, hardness_matrix, success_curve
from conftest import hooks_left


@pytest.mark.parametrize("theta", [1, -1])
def test_jsma_changes_at_most_upsilon_only_in_thetas_direction(digits, theta):
    model, x, y = digits
    target = (y + 1) % 10
    res = attacks.run("jsma", model, x, y=y, target=target, theta=theta, max_distortion=0.3)
    changed = res.delta != 0
    share = changed.flatten(1).float().mean(1)
    assert float(share.max()) <= 0.3 + 1e-9
    moved = res.x_adv[changed]
    assert bool((moved == (1.0 if theta > 0 else 0.0)).all())  # saturated to the extreme
    assert bool((res.delta[changed] * theta > 0).all())
    assert res.success_rate > 0.5
    assert torch.equal(res.success, res.pred_adv == target)


def test_jsma_beats_random_features_of_the_same_count(digits):
    model, x, y = digits
    target = (y + 1) % 10
    res = attacks.run("jsma", model, x, y=y, target=target, max_distortion=0.3)
    g = torch.Generator().manual_seed(0)
    count = (res.delta != 0).flatten(1).sum(1)
    noise = x.clone().flatten(1)
    for i in range(x.shape[0]):
        noise[i, torch.randperm(noise.shape[1], generator=g)[: int(count[i])]] = 1.0
    with torch.no_grad():
        random_hits = float((model(noise.view_as(x)).argmax(1) == target).float().mean())
    assert res.success_rate > random_hits + 0.3


def test_jsma_runs_on_a_photo_with_bounded_memory(lite0):
    x = images.load(images.gallery()["coffee"], lite0)
    res = attacks.run("jsma", lite0, x, target=1, max_distortion=0.0004, candidates=128, pairs=8)
    changed = int((res.delta != 0).sum())
    assert 0 < changed <= int(0.0004 * x.numel())
    assert hooks_left(lite0) == 0


def test_success_curve_and_hardness():
    d = torch.tensor([0.01, 0.02, 0.04, float("inf")])
    curve = success_curve(d, [0.0, 0.01, 0.02, 0.05])
    assert [r["success_rate"] for r in curve] == [0.0, 0.25, 0.5, 0.75]
    assert curve[2]["mean_distortion"] == pytest.approx(0.015)
    # ∫ ε dτ by trapezoids: (0+0.01)/2·0.25 + (0.01+0.015)/2·0.25 + (0.015+0.07/3)/2·0.25
    expected = np.trapezoid([0.0, 0.01, 0.015, 0.07 / 3], [0.0, 0.25, 0.5, 0.75])
    assert hardness(d, [0.0, 0.01, 0.02, 0.05]) == pytest.approx(expected)


def test_hardness_matrix_and_adversarial_distance(digits):
    model, x, y = digits
    rows = hardness_matrix(model, x, y, classes=[0, 1, 7], per_pair=4, max_distortion=0.3)
    assert len(rows) == 6 and all(0 <= r["success_rate"] <= 1 for r in rows)
    assert all((r["hardness"] is None) == (r["success_rate"] == 0) for r in rows)
    assert all(r["hardness"] is None or r["hardness"] >= 0 for r in rows)
    d = distortions(model, x[:8], y[:8], (y[:8] + 1) % 10, max_distortion=0.3)
    assert bool(((d > 0) & (d <= 0.3) | torch.isinf(d)).all())
    a = adversarial_distance(model, x[:8], 3)
    assert a.shape == (8,) and bool(((a >= 0) & (a <= 1)).all())


def test_mask_fgsm_changes_nothing_outside_the_thresholded_mask(lite0):
    x = torch.cat([images.load(images.gallery()[n], lite0) for n in ("chelsea", "coffee")])
    with torch.no_grad():
        y = lite0(x).argmax(1)
    res = attacks.run("maskfgsm", lite0, x, y=y, eps=0.05, p_th=0.6)
    heat = grad_cam(lite0, x, target=y)
    outside = (heat <= 0.6).unsqueeze(1).expand_as(res.delta)
    assert float(res.delta[outside].abs().max()) == 0.0
    # Inside, the step is ε·S (up to clipping at 0 and 1).
    assert float((res.delta.abs() - 0.05 * heat.unsqueeze(1)).max()) <= 1e-6
    l0 = (res.delta.abs() > 0).any(1).float().mean()
    assert 0 < float(l0) < float((heat > 0.6).float().mean()) + 1e-6


def test_iterative_mask_fgsm_stops_at_success_or_budget(digits):
    model, x, y = digits
    one = attacks.run("maskfgsm", model, x, y=y, eps=0.3, p_th=0.2)
    many = attacks.run("maskfgsm", model, x, y=y, eps=0.3, p_th=0.2, steps=8, tau=60)
    assert many.success_rate >= one.success_rate
    assert int(many.iterations.max()) <= 8
    assert bool((many.iterations[one.success] == 1).all())  # fooled after the first pass: no more passes
    assert float(many.delta.abs().max()) <= 0.3 + 1e-6
