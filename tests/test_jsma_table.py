"""Papernot et al. 2016's increasing-vs-decreasing JSMA table and robustness R(F), on the committed digits CNN."""

import math

import pytest
import torch
from conftest import cli_json

from engine import attacks, targets
from engine.analysis.jsma_extras import adversarial_distance, binomial_se, jsma_table, robustness, source_target_pairs
from engine.cli import main

UPSILON = 0.3  # 8×8 digits have 64 features: the paper's 14.5 % would allow only 4 pair steps


@pytest.fixture(scope="module")
def sample(digits):
    """The digits CNN, 6 images it gets right and 2 it gets wrong (labels shifted), so the table must skip some."""
    model, x, y = digits
    y = y[:8].clone()
    y[6:] = (y[6:] + 1) % 10
    return model, x[:8], y


def test_every_other_pairs_each_example_with_every_other_class():
    y = torch.tensor([2, 0, 2])
    rows, target = targets.every_other(y, 4)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert target.tolist() == [0, 1, 3, 1, 2, 3, 0, 1, 3]


def test_pairs_are_the_correctly_classified_images_towards_every_other_class(sample):
    model, x, y = sample
    index, target = source_target_pairs(model, x, y)
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().squeeze(1).tolist()
    assert sorted(set(index.tolist())) == right and len(right) == 6
    assert index.numel() == 9 * len(right) and not bool((target == y[index]).any())
    assert len(set(zip(index.tolist(), target.tolist()))) == index.numel()


@pytest.mark.parametrize("theta", [1, -1])
def test_the_table_equals_a_recomputation_pair_by_pair(sample, theta):
    model, x, y = sample
    (row,) = jsma_table([model], x, y, thetas=(theta,), max_distortion=UPSILON, batch=1000)
    index, target = source_target_pairs(model, x, y)
    res = attacks.run("jsma", model, x[index], y=y[index], target=target, theta=theta, max_distortion=UPSILON)
    hit = res.pred_adv == target
    share = (res.delta != 0).flatten(1).float().mean(1)
    assert row["pairs"] == index.numel() == 54 and row["images"] == 6
    assert row["successes"] == int(hit.sum()) and 0 < row["successes"] < row["pairs"]
    assert row["success_rate"] == pytest.approx(float(hit.float().mean()))
    assert row["mean_distortion"] == pytest.approx(float(share[hit].mean()))
    p = row["success_rate"]
    assert row["success_se"] == pytest.approx(math.sqrt(p * (1 - p) / 54))
    assert row["variant"] == ("increasing" if theta > 0 else "decreasing") and row["upsilon"] == UPSILON


def test_the_table_does_not_depend_on_the_batch(sample):
    model, x, y = sample
    whole = jsma_table([model], x, y, thetas=(1,), max_distortion=UPSILON, batch=1000)
    split = jsma_table([model], x, y, thetas=(1,), max_distortion=UPSILON, batch=7)
    assert whole[0]["successes"] == split[0]["successes"]
    assert whole[0]["mean_distortion"] == pytest.approx(split[0]["mean_distortion"])


@pytest.mark.parametrize("theta", [1, -1])
def test_each_variant_only_ever_moves_features_its_own_way(digits, theta):
    """At every step, not only at the end: increasing never lowers a feature, decreasing never raises one,
    and a changed feature stays changed."""
    model, x, y = digits
    x, y = x[:12], y[:12]
    frames = []
    attacks.run(
        "jsma",
        model,
        x,
        y=y,
        target=(y + 3) % 10,
        theta=theta,
        max_distortion=UPSILON,
        callback=lambda step, total, state: frames.append(state["x_adv"].clone()),
    )
    assert len(frames) > 3
    previous = x
    for frame in frames:
        assert bool(((frame - previous) * theta >= 0).all())
        assert bool(((frame - x) * theta >= 0).all())
        previous = frame
    assert bool((frames[-1] != x).any())


def test_cancelling_the_table_keeps_finished_parts(sample):
    model, x, y = sample
    seen = []

    def stop_in_second_part(step, total, state):
        seen.append(state["theta"])
        return state["theta"] == 1

    rows = jsma_table([model], x, y, thetas=(1, -1), max_distortion=UPSILON, callback=stop_in_second_part)
    assert [r["theta"] for r in rows] == [1] and -1 in seen


def test_robustness_is_the_minimum_of_a_recomputed_pair_by_pair(sample):
    model, x, y = sample
    out = robustness(model, x, y, batch=10)
    index, target = source_target_pairs(model, x, y)
    direct = torch.stack([adversarial_distance(model, x[i : i + 1], int(t))[0] for i, t in zip(index, target)])
    assert out["pairs"] == direct.numel() == 54 and out["complete"]
    assert out["R"] == pytest.approx(float(direct.min()), abs=1e-9)
    assert out["mean_A"] == pytest.approx(float(direct.mean()), abs=1e-6)
    worst = out["argmin"]
    at = adversarial_distance(model, x[worst["image"] : worst["image"] + 1], worst["target"])[0]
    assert float(at) == pytest.approx(out["R"], abs=1e-9)
    assert worst["source"] == int(y[worst["image"]]) != worst["target"]
    # A counts features: a multiple of 1/64 on 8×8 digits.
    assert out["R"] * 64 == pytest.approx(round(out["R"] * 64), abs=1e-6)


def test_robustness_stopped_early_is_over_what_it_reached(sample):
    model, x, y = sample
    out = robustness(model, x, y, batch=10, callback=lambda step, total, state: False)
    index, target = source_target_pairs(model, x, y)
    first = adversarial_distance(model, x[index[:10]], target[:10])
    assert not out["complete"] and out["pairs"] == 10
    assert out["R"] == pytest.approx(float(first.min()), abs=1e-9)


def test_binomial_se():
    assert binomial_se(0, 0) is None
    assert binomial_se(25, 100) == pytest.approx(math.sqrt(0.25 * 0.75 / 100))


@pytest.mark.slow
def test_cli_jsma_table_and_robustness(capsys):
    rows = cli_json(capsys, "jsma-table", "--models", "fmnist-lenet-0", "--n", "2", "--thetas", "-1", "--json")
    assert len(rows) == 1 and rows[0]["theta"] == -1 and rows[0]["pairs"] == 9 * rows[0]["images"]
    out = cli_json(capsys, "robustness", "--models", "fmnist-lenet-0", "fmnist-mlp-0", "--n", "3", "--json")
    assert [r["model"] for r in out] == ["fmnist-lenet-0", "fmnist-mlp-0"]
    assert all(0 <= r["R"] <= r["mean_A"] <= 1 for r in out)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["jsma-table", "--n", "0"], "--n must be at least 1"),
        (
            ["robustness", "--models", "fmnist-lenet-0", "efficientnet-lite0", "--n", "1"],
            "compare models of one domain",
        ),
        (["robustness", "--models", "no-such-model"], "unknown model"),
        (["jsma-table", "--thetas", "0"], "invalid choice"),
        (["jsma-table", "--models", "fmnist-lenet-0", "--n", "1", "--max-distortion", "1.5"], "max_distortion"),
    ],
)
def test_cli_rejects_bad_input(capsys, argv, message):
    assert main([*argv, "--json"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
