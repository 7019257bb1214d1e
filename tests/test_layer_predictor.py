"""The layer predictor (separability, class distance, AA's tSuc per layer) on the digits CNNs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from tiny_models import MEAN, STD
from torch import nn

from engine.analysis import transfer
from engine.analysis.layer_predictor import chart_rows, class_distance, layer_predictor
from engine.cli import main
from engine.models import Classifier

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


class _Labels(nn.Module):
    """The one-hot predicted class: for images the model gets right, a layer whose features are the labels."""

    def forward(self, logits):
        # Exactly one-hot in value; the logits' gradient passes, so AA has something to follow at this layer.
        return nn.functional.one_hot(logits.argmax(1), logits.shape[1]).float() + (logits - logits.detach())


class _WithLabels(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.labels = net, _Labels()

    def forward(self, x):
        logits = self.net(x)
        # The label layer sits on the forward path (so hooks see it) without changing the logits.
        return logits + 0.0 * self.labels(logits).sum(1, keepdim=True)


@pytest.fixture(scope="module")
def labelled_layer(digits):
    model, x, y = digits
    wrapped = Classifier(
        _WithLabels(model.net),
        name="digits-with-labels",
        domain="digits",
        input_size=(1, 8, 8),
        class_names=[str(i) for i in range(10)],
        mean=(MEAN,),
        std=(STD,),
        block_names=["net.features.1", "net.features.4", "labels"],
        cam_layer="net.features.6",
    )
    return wrapped, x[:40], y[:40]


def test_a_layer_whose_features_are_the_labels_is_the_most_separable(labelled_layer):
    model, x, y = labelled_layer
    found = layer_predictor(model, [], x, y, eps=0.2, steps=2)
    rows = found["rows"]
    assert [r["layer"] for r in rows] == [0, 1, 2]
    labels = rows[2]
    # One-hot rows: identical within a class (angle 0), orthogonal between classes (angle π/2).
    assert labels["within"] == pytest.approx(0.0, abs=1e-6) and labels["between"] == pytest.approx(0.5)
    assert labels["separability"] == float("inf")
    assert all(r["separability"] < labels["separability"] for r in rows[:2])
    assert all(np.isfinite(r["separability"]) and r["separability"] > 1 for r in rows[:2])
    assert found["input_separability"] < labels["separability"]


def test_class_distance_is_zero_towards_the_own_class_and_grows_with_the_gap():
    gen = torch.Generator().manual_seed(0)
    y = np.repeat(np.arange(3), 20)
    # Three clusters on a line: class c sits at 4c along the first axis.
    f = (torch.randn(60, 5, generator=gen) * 0.3).double().numpy()
    f[:, 0] += 4.0 * y
    assert class_distance(f, y, y)["class_distance"] == 0.0
    near = class_distance(f, y, np.minimum(y + 1, 2))["class_distance"]
    far = class_distance(f, y, 2 - y)["class_distance"]
    # Targets one cluster away (4 apart; class 2 stays put) against mirror targets (8, 0 and 8 apart).
    assert near == pytest.approx(4.0 * 2 / 3, rel=0.1) and far == pytest.approx(8.0 * 2 / 3, rel=0.1)
    # A target class without images has no centroid: those images are left out.
    assert class_distance(f, y, np.full(60, 7))["class_distance"] is None


def test_tsuc_per_layer_is_the_layer_sweeps(digits, digits_pair):
    white, x, y = digits
    black = digits_pair[0][1]
    settings = dict(steps=3, seed=1)
    layers = list(range(len(white.layers())))
    sweep = transfer.sweep(white, [black], ["aa"], x, y, eps_values=[0.3], layers=layers, **settings)
    found = layer_predictor(white, [black], x, y, eps=0.3, **settings)
    assert len(found["rows"]) == len(sweep) == len(layers)
    for mine, theirs in zip(found["rows"], sweep):
        assert mine["layer"] == theirs["layer"]
        got = mine["black"][black.name]
        for key in ("n", "error", "uTR", "tSuc", "tTR", "white_tSuc"):
            assert got[key] == theirs[key], (mine["layer"], key)
        assert mine["tSuc"] == theirs["tSuc"]
        assert 0 < mine["pixel_l2"] <= 0.3 * 8 + 1e-4  # L∞ 0.3 on 8×8 pixels bounds the L2
        assert mine["travel"] > 0 and mine["class_distance"] > 0
    assert any(r["tSuc"] > 0 for r in found["rows"])  # the comparison is not one of zeros
    shown = chart_rows(found)
    assert {r["curve"] for r in shown} == {"separability", "class distance (PCA)", "AA tSuc (mean over black boxes)"}
    assert max(r["value"] for r in shown) == pytest.approx(1.0)


def test_cancel_keeps_the_finished_layers(digits):
    model, x, y = digits
    calls = []

    def stop_in_second_layer(step, total, state):
        calls.append(step)
        return step < 1.5

    found = layer_predictor(model, [], x[:16], y[:16], eps=0.2, steps=2, callback=stop_in_second_layer)
    assert found["stopped"] and [r["layer"] for r in found["rows"]] == [0]


@pytest.mark.slow
def test_cli_layer_predictor(capsys):
    code = main(
        [
            "layer-predictor",
            "--model",
            "fmnist-lenet-0",
            "--black",
            "fmnist-lenet-1",
            "--n",
            "24",
            "--steps",
            "2",
            "--bank-per-class",
            "5",
            "--layer",
            "0",
            "3",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    found = json.loads(out)
    assert [r["layer"] for r in found["rows"]] == [0, 3] and found["blacks"] == ["fmnist-lenet-1"]
    assert found["eps"] == 0.2  # the domain's Feature-space ε
    assert set(found["best"]) == {"separability", "class_distance", "travel", "tSuc", "per_black"}
    assert all(r["black"]["fmnist-lenet-1"]["n"] > 0 for r in found["rows"])


@pytest.mark.slow
def test_feature_space_page_draws_the_three_curves():
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.query_params["model"] = "fmnist-lenet-0"
    at.run()
    at.switch_page("views/features.py").run()
    at.number_input(key="features.n").set_value(10)
    at.number_input(key="features.steps").set_value(1)
    at.run()
    at.button(key="layer_predictor").click().run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 1  # the predictor's chart only: the plane waits for Compute
    names = {trace["name"] for trace in json.loads(charts[0].proto.spec)["data"]}
    assert names == {"separability", "class distance (PCA)", "AA tSuc (mean over black boxes)"}
    assert any(m.value.startswith("**What it shows:** AA's targets reach") for m in at.markdown)
