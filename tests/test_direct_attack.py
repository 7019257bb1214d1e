"""A black-box model attacked directly from its labels (engine.analysis.direct), beside transfer from the white box.

Fashion-MNIST zoo: fmnist-lenet-0 is the white box, fmnist-lenet-1 (a held-out judge) the black box. The yardstick
for "small" is random noise: the smallest L2 along any of 20 random directions that changes the black box's label.
"""

from __future__ import annotations

import json

import pytest
import torch

from engine import attacks, models, targets
from engine.analysis import direct
from engine.cli import main
from engine.datasets import fashion_mnist

WHITE, BLACK = "fmnist-lenet-0", "fmnist-lenet-1"


@pytest.fixture(scope="module")
def world():
    x, y = fashion_mnist.evaluation_slice(64)
    white, black = models.load(WHITE, device="cpu"), models.load(BLACK, device="cpu")
    return white, black, x[:1], targets.bank(white, x, y)


def _label(model, x) -> int:
    with torch.no_grad():
        return int(model(x).argmax(1)[0])


def noise_radius(model, x, label: int, directions: int = 20) -> float:
    """The smallest L2 of random noise (clipped to [0, 1]) that changes `model`'s label, over seeded directions,
    by bisection along each one."""
    u = torch.randn(directions, *x.shape[1:], generator=torch.Generator().manual_seed(0))
    u = u / u.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    low, high = torch.zeros(directions), torch.full((directions,), 30.0)
    for _ in range(30):
        mid = (low + high) / 2
        with torch.no_grad():
            flipped = model((x + mid.view(-1, 1, 1, 1) * u).clamp(0, 1)).argmax(1) != label
        high, low = torch.where(flipped, mid, high), torch.where(flipped, low, mid)
    return float(high.min())


@pytest.mark.parametrize("attack, budget, share", [("hopskipjump", 1000, 0.5), ("boundary", 3000, 0.75)])
def test_a_direct_attack_changes_the_label_within_its_budget_far_closer_than_noise(world, attack, budget, share):
    _, black, x, _ = world
    seen = []
    found = direct.run(black, x, attack, callback=lambda s, t, state: seen.append(dict(state)), n_queries=budget)
    assert found["success"] and found["label_before"] == _label(black, x)
    assert found["label_after"] == _label(black, found["x_adv"]) != found["label_before"]
    assert 0 < found["queries"] <= budget == found["budget"]
    assert torch.allclose(found["delta"], found["x_adv"] - found["x"])
    assert found["l2"] == pytest.approx(float(found["delta"].norm()), rel=1e-5)
    assert found["linf"] == pytest.approx(float(found["delta"].abs().max()), rel=1e-5)
    # The progress state counts the queries spent: whole numbers, never falling, never past the budget.
    spent = [s["queries"] for s in seen]
    assert spent and all(isinstance(q, int) for q in spent) and spent == sorted(spent)
    assert 0 < spent[-1] <= found["queries"] and {s["budget"] for s in seen} == {budget}
    radius = noise_radius(black, x, found["label_before"])
    assert found["l2"] < share * radius, (found["l2"], radius)
    if attack == "hopskipjump":  # the quicker one: the function adds nothing to the attack, image for image
        same = attacks.run(attack, black, x, y=torch.tensor([found["label_before"]]), seed=0, n_queries=budget)
        assert torch.equal(same.x_adv, found["x_adv"])


def test_a_cancelled_direct_attack_keeps_an_adversarial_image_and_its_count(world):
    _, black, x, _ = world
    found = direct.run(black, x, "boundary", callback=lambda s, t, state: state["queries"] < 400, n_queries=5000)
    assert found["stopped_early"] and 400 <= found["queries"] < 5000
    assert found["success"] and _label(black, found["x_adv"]) != found["label_before"]


def test_the_comparison_scores_the_transferred_perturbation_on_the_same_black_box(world):
    white, black, x, bank = world
    transferred = direct.transferred_image(white, x, bank, method="tpgd", eps=0.1, steps=10)
    assert float((transferred["x_adv"] - x).abs().max()) <= 0.1 + 1e-6
    found = direct.run(black, x, "hopskipjump", transferred=transferred, n_queries=500)
    row = found["comparison"]
    delta = transferred["x_adv"] - x
    assert row["transfer_l2"] == pytest.approx(float(delta.norm()), rel=1e-5)
    assert row["transfer_success"] == (_label(black, transferred["x_adv"]) != found["label_before"])
    assert (row["direct_l2"], row["direct_success"], row["queries"]) == (found["l2"], True, found["queries"])
    assert BLACK in row["sentence"] and "TPGD" in row["sentence"] and f"{found['queries']:,} queries" in row["sentence"]
    # AA takes its target image from the bank's images: the same call works for it.
    aa = direct.transferred_image(white, x, bank, method="aa", eps=0.1, steps=5)
    assert aa["layer"] is not None and aa["target"] != _label(white, x)


def test_only_label_only_attacks_on_one_image(world):
    _, black, x, _ = world
    with pytest.raises(ValueError, match="not a label-only attack"):
        direct.run(black, x, "pgd")
    with pytest.raises(ValueError, match="one image"):
        direct.run(black, torch.cat([x, x]), "hopskipjump")


def test_the_cli_reports_queries_for_a_direct_attack_and_for_attack_on_a_black_box(capsys):
    common = ["--image", "fmnist:0", "--n-queries", "200", "--json"]
    assert (
        main(["transfer", "--model", WHITE, "--black", BLACK, "--attack", "tpgd", "--direct", "hopskipjump", *common])
        == 0
    )
    (row,) = json.loads(capsys.readouterr().out)["direct"]
    assert row["black"] == BLACK and 0 < row["queries"] <= 200 and row["success"]
    assert row["comparison"]["method"] == "tpgd" and row["comparison"]["eps"] == 0.07  # the domain's middle ε
    assert main(["attack", "--model", BLACK, "--attack", "hopskipjump", *common]) == 0
    (example,) = json.loads(capsys.readouterr().out)["examples"]
    assert example["queries"] == row["queries"] and example["l2"] == pytest.approx(row["l2"])
    assert main(["transfer", "--model", WHITE, "--black", BLACK, "--direct", "boundary"]) == 2  # no --image


def test_a_photo_black_box_gets_the_photo_domains_query_budget(lite0):
    """A query is a forward of a photo model: the domain's smaller budgets, not the attacks' own, unless given."""
    assert direct.budget(lite0, "hopskipjump") == 200 and direct.budget(lite0, "boundary") == 400
    assert direct.budget(lite0, "boundary", {"n_queries": 50}) == 50
    lenet = models.load("fmnist-lenet-1")
    assert direct.budget(lenet, "hopskipjump") == 1000 and direct.budget(lenet, "boundary") == 5000
    assert direct.seconds(lite0, "boundary") < direct.seconds(lite0, "boundary", {"n_queries": 5000}) / 5
