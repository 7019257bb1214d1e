"""The decisions behind what the lab pages show at their defaults: when a chart gives way to a sentence, which
spot the patch view starts on, which target JSMA starts at, how the spectrum and the mask sweep span their data,
and that axes and legends speak in words (engine and figure level, no browser)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app import figures
from engine import domains, models
from engine.analysis import features, jsma_extras, masking, panels, quiz, quiz_views, transfer
from engine.analysis import patch_distance as pd


@pytest.fixture(scope="module")
def lenet():
    return models.load("fmnist-lenet-0", device="cpu")


def _row(black="b", eps=0.03, **metrics):
    return {
        "white": "w",
        "black": black,
        "method": "tmifgsm",
        "eps": eps,
        "layer": None,
        "n": 8,
        **{"error": 0.25, "uTR": 0.25, "tSuc": 0.0, "tTR": 0.0},
        **metrics,
    }


# ---- all zero → a sentence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values,empty", [([0, 0.0, None], True), ([], True), ([None], True), ([0, 0.1], False), ([0.5], False)]
)
def test_a_chart_of_only_zeros_or_nothing_says_nothing(values, empty):
    assert transfer.says_nothing(values) is empty


def test_all_zero_targeted_transfer_is_a_sentence_with_a_larger_eps_to_try():
    rows = [_row(eps=0.03), _row(eps=0.05)]
    note = transfer.empty_note(rows, "tSuc", "b")
    assert note.startswith("tSuc on b is 0 at ε 0.03 and 0.05") and "ε 0.07 or 0.1" in note
    assert transfer.empty_note(rows, "error", "b") is None  # 25 %: the chart is drawn
    assert transfer.empty_note(rows, "tSuc", "other") is None  # another black box's rows are not this one's
    unmeasured = transfer.empty_note([_row(tTR=None), _row(eps=0.2, tTR=None)], "tTR", "b")
    assert "not measured" in unmeasured and unmeasured.endswith("To measure it, raise Steps.")  # none above 0.2
    nobody = transfer.empty_note([_row(n=0, error=None, uTR=None, tSuc=None, tTR=None)], "error", "b")
    assert nobody.startswith("No image counts on b")


def test_the_summary_names_the_best_method_and_how_the_rate_grows_with_eps():
    rows = [
        _row(eps=0.03, error=0.25, tSuc=0.0),
        _row(eps=0.1, error=0.625, tSuc=0.25),
        {**_row(eps=0.1, error=0.375), "method": "aa"},
    ]
    said = transfer.summary(rows, "b")
    assert said.startswith("At ε 0.1, TMI-FGSM transfers best: b misclassifies 62%") and "(at ε 0.03: 25%)" in said
    assert "target class on 25%" in said
    assert transfer.summary(rows, "nobody") is None


def test_the_photo_transfer_default_reaches_an_eps_where_targets_can_transfer():
    """At ε 0.03 no targeted attack made another photo model say its target (bench/results_transfer_photos.md):
    the default sweeps on to 0.1."""
    eps = domains.get(domains.IMAGENET_NAME).defaults["transfer"]["eps"]
    assert min(eps) <= 0.03 and max(eps) >= 0.1


def test_a_flat_mask_sweep_is_a_sentence_and_a_moving_one_is_not():
    flat = [{"area": a, "accuracy": 0.0} for a in (0.88, 0.9, 0.92)]
    note = masking.sweep_note(flat, 0.02)
    assert "fools every judge at every mask size from 88% to 92%" in note and "0.005" in note
    assert "fools no judge" in masking.sweep_note([{**r, "accuracy": 1.0} for r in flat], 0.02)
    assert masking.sweep_note([*flat, {"area": 0.5, "accuracy": 1.0}], 0.02) is None
    assert masking.linf_note(
        [{"eps": e, "part": p, "accuracy": 1.0} for e in (0.01, 0.02) for p in ("object", "background")]
    ).startswith("ε·sign(δ) on the object")


def test_the_mask_sweep_spans_the_image_even_when_the_mask_covers_most_of_a_photo(lenet):
    """Chelsea's committed mask covers 90 % of the photo: ±4 steps of a 3×3 kernel move it by 2 %; the chosen steps
    reach from a sliver to (almost) the whole image. A 28-px mask spans as widely."""
    lite = models.load("efficientnet-lite0", device="cpu")
    photo = domains.of(lite).stored_mask("chelsea", lite)[None]
    x = domains.of(lenet).load("fmnist:0", lenet)
    small = masking.threshold_mask(x, 0.05)
    for mask in (photo, small):
        steps = masking.sweep_steps(mask)
        areas = [masking.area(masking.morph(mask, k)) for k in steps]
        assert 0 in steps and steps == sorted(steps) and len(steps) >= 7
        assert min(areas) <= 0.1 and max(areas) >= 0.9, areas
        assert areas == sorted(areas)  # each step a larger mask: the curve reads left to right


# ---- the patch view starts where a patch is drawn ------------------------------------------------------


def test_the_patch_view_starts_inside_the_image_on_28_px_images(lenet):
    s = pd.defaults(lenet)
    x = domains.of(lenet).evaluation_split(lenet, 40)[0][0]
    edge = 0
    for i in range(x.shape[0]):
        found = pd.photo_centre(lenet, x[i : i + 1], "peak")
        if found["centre"] is None:
            continue
        spot = pd.first_spot(found["centre"], s["distances"], s["directions"], s["size"], (28, 28))
        assert spot is not None, i
        box = next(
            b
            for b in pd.ring_at(found["centre"], spot[0], s["directions"], s["size"], (28, 28))
            if b["angle"] == spot[1]
        )
        assert box["inside"]
        edge += spot[0] > 0
    assert edge >= 1  # some heat-map peaks sit on the edge: their view starts a step out, not on a skipped spot


def test_the_first_spot_is_the_nearest_fitting_one_and_none_where_nothing_fits():
    assert pd.first_spot((14.0, 14.0), [0, 2, 4], 8, 7, (28, 28)) == (0.0, 0.0)
    assert pd.first_spot((1.0, 8.0), [0, 2, 4], 8, 7, (28, 28)) == (2.0, 270.0)  # down, into the image
    assert pd.first_spot((1.0, 8.0), [0, 2, 4], 8, 29, (28, 28)) is None


# ---- JSMA's default reaches its target -----------------------------------------------------------------


@pytest.mark.parametrize("name,key", [("efficientnet-lite0", "chelsea"), ("fmnist-lenet-0", "fmnist:0")])
def test_the_jsma_default_reaches_its_target(name, key):
    model = models.load(name, device="cpu")
    own = domains.of(model).defaults["jsma"]
    x = domains.of(model).load(key, model)
    target = jsma_extras.default_target(model, x)
    result = jsma_extras.run_jsma(
        model, x, target, against=own["against"], theta=1, max_distortion=own["upsilon"], pairs=own["pairs"]
    )
    with torch.no_grad():
        said = model(result.x_adv).argmax(1)
    assert bool(result.success[0]) and int(said[0]) == target == int(result.target[0])
    assert int(result.y[0]) == int(model(x).argmax(1)[0])  # scored as the whole model answers, not the view
    assert float((result.delta.abs() > 0).float().mean()) <= own["upsilon"]


def test_the_rival_view_answers_the_target_exactly_when_the_model_does(lenet):
    x = domains.of(lenet).evaluation_split(lenet, 16)[0][0]
    view = jsma_extras.Rival(lenet, 3)
    with torch.no_grad():
        assert torch.equal(view(x).argmax(1) == 1, lenet(x).argmax(1) == 3)
    with pytest.raises(ValueError, match="against"):
        jsma_extras.run_jsma(lenet, x[:1], 3, against="some")


def test_the_curve_sentence_says_how_many_reach_the_target():
    rows = jsma_extras.success_curve(torch.tensor([0.01, 0.03, float("inf")]), np.linspace(0, 0.05, 6))
    said = jsma_extras.curve_sentence(rows, "Sneaker", 3)
    assert said.startswith("67% of the 3 images reach Sneaker by Υ = 5.0%")
    none = jsma_extras.success_curve(torch.tensor([float("inf")]), [0.0, 0.02])
    assert jsma_extras.curve_sentence(none, "tench", 1).startswith("No image reached tench")


# ---- the spectrum shows its structure ------------------------------------------------------------------


def test_the_spectrum_axes_span_exactly_the_frequencies_and_the_colours_its_values():
    gen = torch.Generator().manual_seed(0)
    delta = torch.randn(1, 3, 32, 48, generator=gen)
    delta[0, :, :, ::4] += 2.0  # a vertical grid: a bright off-centre peak
    view = panels.spectrum_view(panels.log_spectrum(delta))
    assert view["fx"][0] == -0.5 and view["fx"][-1] == pytest.approx(0.5 - 1 / 48)
    assert view["x_range"] == pytest.approx([-0.5 - 0.5 / 48, 0.5 - 0.5 / 48])  # the cells' outer edges
    assert view["y_range"] == pytest.approx([-0.5 - 0.5 / 32, 0.5 - 0.5 / 32])
    assert np.isnan(view["z"][16, 24])  # zero frequency: ~1e-12 after the mean is removed, blanked
    finite = view["z"][np.isfinite(view["z"])]
    assert finite.min() > -6  # no bin left at log −12 to stretch the colours over a dozen decades
    assert finite.min() <= view["zmin"] < view["zmax"] <= finite.max()
    assert view["z"][16, 24 + 12] >= view["zmax"]  # the grid's peak (fx = 0.25) is at the top of the colours
    assert np.median(finite) > view["zmin"] + 0.25 * (view["zmax"] - view["zmin"])  # the noise is not one colour
    fig = figures.linked_images(
        [("power spectrum of δ (log₁₀)", panels.log_spectrum(delta), "spectrum")], link=False
    ).to_dict()
    x, y, trace = fig["layout"]["xaxis"], fig["layout"]["yaxis"], fig["data"][0]
    assert list(x["range"]) == pytest.approx(view["x_range"])
    assert list(y["range"]) == pytest.approx(view["y_range"][::-1])  # downwards, as the picture's rows
    assert x["constrain"] == y["constrain"] == "domain"  # a wide slot narrows the square, never widens the axis
    assert "cycles/px" in x["title"]["text"] and "frequency" in x["title"]["text"]
    assert "frequency" in y["title"]["text"] and trace["zmin"] == pytest.approx(view["zmin"], abs=0.01)


# ---- words on axes, legends that leave the markers in sight, titles clear of the toolbar --------------


def test_axis_titles_are_words_and_zero_bars_carry_their_value():
    fig = figures.lines([{"upsilon": 0.1, "success_rate": 0.0}], "upsilon", "success_rate").to_dict()
    assert fig["layout"]["yaxis"]["title"]["text"] == "success rate"
    assert "_" not in fig["layout"]["xaxis"]["title"]["text"]
    assert fig["data"][0]["text"] == ["0%"]  # a zero bar reads 0 %, not as a missing bar
    grid = figures.matrix(
        np.eye(2), ["a", "b"], ["a", "b"], "H", row_title="source class", col_title="target class"
    ).to_dict()["layout"]
    assert grid["yaxis"]["title"]["text"] == "source class" and grid["xaxis"]["title"]["text"] == "target class"


def test_many_classes_share_one_legend_entry_and_the_markers_lead_and_sit_on_top():
    rng = np.random.default_rng(0)
    points = {f"class {i}": (rng.random((2, 2)), [f"class {i}"] * 2) for i in range(36)}
    points.update(
        {
            "source": (np.zeros((1, 2)), ["source"]),
            "target": (np.ones((1, 2)), ["target"]),
            "adversarial": (np.ones((1, 2)), ["adversarial"]),
        }
    )
    data = figures.plane(points, rng.random((4, 2)), "plane").to_dict()["data"]
    shown = [d["name"] for d in data if d.get("showlegend", True)]
    assert len(shown) == 5 and shown[-3:] == ["source", "target", "adversarial"]  # drawn last: on top
    ranks = {d["name"]: d["legendrank"] for d in data}
    assert max(ranks["source"], ranks["target"], ranks["adversarial"]) < min(
        r for n, r in ranks.items() if n.startswith("reference")
    )
    few = figures.plane({k: v for k, v in points.items() if k in ("class 0", "class 1", "source")}, None, "p")
    assert [d["name"] for d in few.to_dict()["data"]] == ["class 0", "class 1", "source"]


def test_the_input_pixel_level_is_a_legend_entry_not_a_label_on_the_curve():
    fig = figures.separability([{"layer": 0, "ratio": 1.2}, {"layer": 3, "ratio": 2.0}], 1.4, "s").to_dict()
    assert [d["name"] for d in fig["data"]][-1] == "input pixels"
    assert not fig["layout"].get("annotations")


def test_picture_titles_start_below_the_toolbar_band():
    rgb = np.zeros((8, 8, 3), np.uint8)
    long = "a title long enough to take two lines in a panel half the width of the chart"
    layout = figures.linked_images([("a", rgb, "rgb"), (long, rgb, "rgb")])
    margin = layout.to_dict()["layout"]["margin"]["t"]
    assert margin >= figures.TOOLBAR + 2 * 22


# ---- one sentence per page -----------------------------------------------------------------------------


def test_the_pages_sentences():
    rows = [
        {"layer": -1, "name": "input", "ratio": 1.4},
        {"layer": 0, "name": "conv", "ratio": 1.3},
        {"layer": 3, "name": "fc", "ratio": 2.2},
    ]
    assert features.separability_sentence(rows).startswith("Classes lie furthest apart at layer 3 (fc)")
    traj = {
        "plane_distance_before": [20.0],
        "plane_distance_after": [5.0],
        "pixel_l2_adversarial": [3.0],
        "pixel_l2_target": [15.0],
    }
    assert "20% of the 15.00" in features.trajectory_sentence(traj, "Sneaker")
    score = {"accuracy": 0.75, "correct": 6, "answered": 8, "chance": 0.05, "ci low": 0.35}
    assert quiz_views.score_sentence(score).startswith("6 of 8 right (75%) where guessing gets 5%: even with")
    assert quiz_views.score_sentence({**score, "accuracy": None}) is None
    contour = [
        {"part": p, "perturbation": k, "accuracy": a}
        for p, k, a in [
            ("object", "δ'", 0.0),
            ("object", "random ±ε", 1.0),
            ("background", "δ'", 1.0),
            ("background", "random ±ε", 1.0),
        ]
    ]
    assert masking.contour_sentence(contour).startswith("δ' works through the object")


def test_the_patch_sentence_weighs_the_drop_against_its_noise_then_the_flips():
    from types import SimpleNamespace

    def result(near, se, flips, far_flips=0.0, random=0.02):
        curve = [
            {"distance": 0.0, "n": 8, "over_random_mean": near, "over_random_se": se, "success": flips, "photos": 4},
            {
                "distance": 112.0,
                "n": 8,
                "over_random_mean": 0.01,
                "over_random_se": se,
                "success": far_flips,
                "photos": 4,
            },
        ]
        return SimpleNamespace(curve=curve, control={"success": random})

    assert pd.summary(result(0.3, 0.05, 0.5)).startswith("Near the evidence hurts most")
    said = pd.summary(result(0.09, 0.06, 0.25))
    assert said.startswith("Near the evidence flips the decision most: 25% of placements at 0 px, 0% at 112 px")
    assert pd.summary(result(0.0, 0.06, 0.0)).startswith("No clear distance effect")


def test_the_quiz_asks_only_about_images_its_model_gets_right(lenet):
    """An attack leaves an image its model already gets wrong untouched: a blank picture nobody can name."""
    questions = quiz.plan_for(lenet, questions=40, seed=0)
    x, y, keys = quiz.bank(lenet)
    rows = [keys.index(q.image) for q in questions]
    with torch.no_grad():
        said = lenet(x[rows]).argmax(1)
    assert torch.equal(said, y[rows]) and [q.true_class for q in questions] == y[rows].tolist()


def test_the_jsma_curve_aims_each_photo_at_its_runner_up_or_all_at_the_chosen_class(lenet):
    x, y = domains.of(lenet).evaluation_split(lenet, 30)[0]
    rows, goals = jsma_extras.curve_targets(lenet, x, y, 7)
    assert rows.tolist() == (y != 7).nonzero().squeeze(1).tolist() and set(goals.tolist()) == {7}
    rows, goals = jsma_extras.curve_targets(lenet, x, y, 7, "runner-up")
    with torch.no_grad():
        top2 = lenet(x).topk(2, 1).indices
    assert rows.tolist() == list(range(30)) and torch.equal(goals, top2[:, 1])
    assert domains.get(domains.IMAGENET_NAME).defaults["jsma"]["curve_target"] == "runner-up"


def test_the_sweep_sentence_follows_the_curve_that_moves_most():
    records = [
        {"attack": "fgsm", "white": "w", "black": "b", "eps": e, "error": v} for e, v in ((0.003, 0.125), (0.1, 0.75))
    ]
    records += [{"attack": "pgd", "white": "w", "black": "b", "eps": e, "error": 0.5} for e in (0.003, 0.1)]
    said = transfer.sweep_sentence(records, "error", "eps", "black-box error")
    assert said.startswith("Black-box error of FGSM from w on b rises from 12% at ε 0.003 to 75% at ε 0.1")
    assert transfer.sweep_sentence(records, "tSuc", "eps", "tSuc") is None
