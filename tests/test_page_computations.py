"""The computations the Anatomy, JSMA, quiz, patch and transfer pages show, checked in the engine (no Streamlit)."""

import math

import numpy as np
import pytest
import torch

from engine import images, targets
from engine.analysis import checkerboard, jsma_extras, masking, quiz, quiz_views, recognisable, transfer
from engine.analysis import patch_distance as pd

# ---- engine.images.overlay ----------------------------------------------------------------------------


def _picture(seed: int = 0, side: int = 6) -> torch.Tensor:
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed))


def test_overlay_keeps_the_pixels_outside_the_mask_and_tints_those_inside():
    x = _picture()
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[1:3, 2:5] = True
    plain = images.to_uint8(x)
    out = images.overlay(x, mask, (255, 0, 0), 0.6)
    assert out.dtype == np.uint8 and out.shape == plain.shape
    assert np.array_equal(out[~mask.numpy()], plain[~mask.numpy()])
    inside = mask.numpy()
    # Each tinted pixel moved towards red: more red than before (or as much, where it was already full), less
    # green and blue, and by the blend's share of the way.
    assert (out[inside][:, 0] >= plain[inside][:, 0]).all()
    assert (out[inside][:, 1:] <= plain[inside][:, 1:]).all()
    expected = (0.4 * plain[inside].astype(np.float64) + 0.6 * np.array([255, 0, 0])).astype(np.uint8)
    assert np.array_equal(out[inside], expected)


def test_overlay_dims_the_outside_and_takes_arrays_and_channel_masks():
    x = _picture(1)
    plain = images.to_uint8(x)
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)  # a 1×H×W mask marks the same pixels
    mask[0, 0, 0] = True
    out = images.overlay(plain, mask, (0, 0, 255), 0.5, outside=0.25)
    outside = ~mask[0].numpy()
    assert np.array_equal(out[outside], (plain[outside] * 0.25).astype(np.uint8))
    assert np.array_equal(out[0, 0], (0.5 * plain[0, 0] + 0.5 * np.array([0, 0, 255])).astype(np.uint8))
    assert np.array_equal(images.overlay(plain, np.zeros((6, 6), bool)), plain)  # an empty mask changes nothing


# ---- JSMA lab -----------------------------------------------------------------------------------------


def test_marked_frame_marks_exactly_the_changed_pixels_of_a_small_image():
    first = torch.zeros(1, 1, 8, 8)
    later = first.clone()
    later[0, 0, 2, 3] = 1.0
    later[0, 0, 5, 5] = 0.5
    shown = jsma_extras.marked_frame([first, later], 1)
    assert shown["pixels"] == 2 and not shown["ringed"]
    assert np.array_equal(shown["picture"], images.to_uint8(later))
    differs = (shown["marked"] != shown["picture"]).any(axis=2)
    assert {tuple(p) for p in np.argwhere(differs)} == {(2, 3), (5, 5)}
    assert jsma_extras.marked_frame([first, later], 0)["pixels"] == 0


def test_marked_frame_rings_each_changed_pixel_of_a_photo():
    first = torch.zeros(1, 3, 100, 100)
    later = first.clone()
    later[0, 1, 50, 50] = 1.0
    shown = jsma_extras.marked_frame([first, later], 1)
    assert shown["pixels"] == 1 and shown["ringed"]
    differs = (shown["marked"] != shown["picture"]).any(axis=2)
    assert int(differs.sum()) == 9 and differs[49:52, 49:52].all()  # the pixel and its 3×3 neighbourhood


def test_replay_keeps_every_step_and_says_how_many_pixels_changed(digits):
    model, x, y = digits
    target = jsma_extras.default_target(model, x[:1])
    found = jsma_extras.replay(model, x[:1], target, theta=1, upsilon=0.3, pairs=1)
    frames = found["frames"]
    assert torch.equal(frames[0], x[:1].cpu()) and len(frames) >= 2
    changed = jsma_extras.changed_pixels(frames[-1], frames[0])
    assert math.isclose(found["changed"], float(changed.float().mean()), abs_tol=1e-6)  # one channel: pixel = feature
    words = jsma_extras.replay_sentence(found, model.name, "T", 0.3)
    assert (f"({int(changed.sum())} pixels" in words) == found["success"]
    seen = []
    jsma_extras.replay(
        model,
        x[:1],
        target,
        theta=1,
        upsilon=0.3,
        pairs=1,
        callback=lambda step, total, state: seen.append(step) or False,
    )
    assert len(seen) == 1  # the caller's callback sees the steps and can stop the run


def test_hardness_grid_places_each_pair_and_leaves_unmeasured_ones_empty():
    rows = [
        {"source": 7, "target": 1, "hardness": 0.25},
        {"source": 1, "target": 7, "hardness": None},
        {"source": 1, "target": 9, "hardness": 0.5},
    ]
    m, order = jsma_extras.hardness_grid(rows)
    assert order == [1, 7, 9]
    assert m[order.index(7), order.index(1)] == 0.25 and m[0, 2] == 0.5
    assert np.isnan(m[0, 1]) and np.isnan(m[2, 2])
    assert jsma_extras.hardness_classes(10) == [0, 1, 7, 9] and jsma_extras.hardness_classes(5) == [0, 1]


def test_shown_table_puts_the_published_figures_next_to_each_variant():
    rows = [
        {
            "variant": "increasing",
            "theta": 1,
            "pairs": 9,
            "success_rate": 0.5,
            "success_se": None,
            "mean_distortion": 0.03,
        },
        {
            "variant": "decreasing",
            "theta": -1,
            "pairs": 9,
            "success_rate": None,
            "success_se": None,
            "mean_distortion": None,
        },
    ]
    shown = jsma_extras.shown_table(rows)
    assert [r["variant"] for r in shown] == ["increasing (θ = +1)", "decreasing (θ = -1)"]
    assert shown[0]["success"] == "50.0% ± —" and shown[1]["mean distortion"] == "—"
    assert shown[0]["paper (MNIST)"] == "97.1%, distortion 4.0%"
    assert shown[1]["paper (MNIST)"] == "64.7%, distortion not given"


def test_target_choices_leave_out_the_class_the_model_gives(digits):
    model, x, _ = digits
    with torch.no_grad():
        own = int(model(x[:1]).argmax(1))
    choices = jsma_extras.target_choices(model, x[:1])
    assert own not in choices and len(choices) == len(model.class_names) - 1


# ---- Anatomy --------------------------------------------------------------------------------------


def test_attack_params_follow_the_settings():
    settings = {"eps": 0.1, "steps": 4, "queries": 50, "zero_init": True}
    assert recognisable.attack_params("bim", settings) == {"eps": 0.1, "steps": 4, "alpha": 0.05}
    assert recognisable.attack_params("square", settings) == {"eps": 0.1, "n_queries": 50, "zero_init": True}
    assert recognisable.attack_params("cw", settings) == {"steps": 4}


def test_extra_sources_prefer_the_domains_own():
    assert recognisable.extra_sources(["a", "b", "c", "d"], ["d", "b"]) == ["b", "d"]
    assert recognisable.extra_sources(["a", "b", "c"], ["z"]) == ["a", "b"]


def test_similarity_matrices_are_symmetric_with_ones_on_the_diagonal():
    rows = [
        {"setting": "single-model", "a": "bim", "b": "cw", "cosine": 0.3},
        {"setting": "single-model", "a": "cw", "b": "deepfool", "cosine": -0.2},
        {"setting": "noisy multi-model", "a": "bim", "b": "deepfool", "cosine": 0.9},
    ]
    found = recognisable.similarity_matrices(rows)
    single, noisy = found["single-model"], found["noisy multi-model"]
    assert np.array_equal(single, single.T) and np.array_equal(np.diag(noisy), np.ones(3))
    assert single[0, 1] == 0.3 and single[1, 2] == -0.2 and single[0, 2] == 0.0
    assert noisy[2, 0] == 0.9 and noisy[0, 1] == 0.0


def test_judged_titles_and_generation_rows_name_the_judges_classes():
    rows = [
        {
            "setting": "single-model",
            "model": "j1",
            "most common class": 2,
            "target class share": 1.0,
            "source class share": 0.0,
        },
        {
            "setting": "single-model",
            "model": "j2",
            "most common class": 2,
            "target class share": 1.0,
            "source class share": 0.0,
        },
        {
            "setting": "multi-model",
            "model": "j1",
            "most common class": 0,
            "target class share": 0.0,
            "source class share": 1.0,
        },
    ]
    names = ["cat", "dog", "hen"]
    assert recognisable.judged_titles(rows, names, ["single-model", "multi-model"]) == {
        "single-model": "single-model: judged hen",
        "multi-model": "multi-model: judged cat",
    }
    assert recognisable.judged_titles(None, names, ["single-model"]) == {}
    shown = recognisable.generation_rows(rows, names)
    assert shown[2] == {
        "setting": "multi-model",
        "judge": "j1",
        "judged as": "cat",
        "target class share": "0%",
        "source class share": "100%",
    }


def test_aim_refuses_the_class_the_model_already_gives(digits):
    model, x, _ = digits
    with torch.no_grad():
        own = int(model(x[:1]).argmax(1))
    assert recognisable.aim(model, x[:1], model.class_names[own]) is None
    other = (own + 1) % 10
    y, target = recognisable.aim(model, x[:1], model.class_names[other])
    assert int(y[0]) == own and int(target[0]) == other
    y, target = recognisable.aim(model, x[:1], targets.POLICIES[0])
    assert int(target[0]) != own


def test_mask_box_share_note_and_linf_values():
    assert masking.box(0.5, 0.25, 0.8, 0.5) == (0.5, 0.25, 0.5, 0.5)  # cut back to the image's edge
    assert masking.share_note(0.5) is None and masking.share_note(0.1) is None
    assert "background is only 5%" in masking.share_note(0.95)
    assert "object is only 2%" in masking.share_note(0.02)
    assert masking.linf_values(0.1) == [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4]
    assert masking.shown_rows([{"part": "object", "accuracy": 0.5, "area": 0.25}]) == [
        {"part": "object", "accuracy": "50%", "area": "25%"}
    ]


def test_checkerboard_panels_title_each_sigma_with_its_period():
    delta = torch.zeros(1, 4, 4)
    delta[0, ::2] = 1.0
    panels = checkerboard.panels([{"sigma": 0.05, "period": 2.0, "delta": delta}])
    assert panels[0][0] == "σ=0.05: period 2.0 px" and panels[0][2] == "signed"
    assert panels[0][1].shape == (4, 4) and panels[0][1].max() == 1.0


# ---- quiz ---------------------------------------------------------------------------------------------


def _quiz() -> quiz.Quiz:
    questions = [
        quiz.Question(
            number=i + 1,
            kind=kind,
            image=str(i),
            true_class=i,
            choices=(i, (i + 1) % 3),
            picture=np.zeros((2, 2, 3), np.uint8),
        )
        for i, kind in enumerate(quiz.KINDS)
    ]
    return quiz.Quiz(
        domain="d",
        class_names=["a", "b", "c"],
        questions=questions,
        seed=0,
        settings=quiz.Settings("deepfool", {}, 1, 0.0),
        sources=["src"],
    )


def test_revealed_says_what_the_taker_answered():
    made = _quiz()
    answers = [quiz.Answer(1, 0, 1.0), quiz.Answer(2, 2, 1.0)]
    captions = [c for _, c in quiz_views.revealed(made, answers)]
    assert captions == ["1. a · single-model · right", "2. b · noisy multi-model · you: c"]
    assert [c for _, c in quiz_views.revealed(made, [])][0].endswith("skipped")


def test_score_rows_hold_every_kind_and_the_thesis():
    made = _quiz()
    rows = quiz_views.score_rows(quiz.score(made.questions, [quiz.Answer(1, 0, 1.0), quiz.Answer(2, None, 1.0)]))
    assert [r["questions"] for r in rows][:3] == ["all questions", *quiz.KINDS]
    assert rows[-1]["questions"].startswith("thesis: ") and rows[0]["answered"] == "1"
    assert rows[0]["unanswered"] == "1" and rows[1]["accuracy"] == "100.0%"


def test_machine_judge_is_held_out_and_of_the_quiz_domain():
    made = _quiz()
    usable = {"src": "d", "other": "x", "judge": "d", "judge2": "d"}
    assert quiz_views.machine_judge(made, ["src", "other", "judge", "judge2"], usable) == "judge"
    assert quiz_views.machine_judge(made, ["src", "other"], usable) is None


# ---- patch distance ---------------------------------------------------------------------------------


def test_angles_are_those_of_the_rings_and_the_view_starts_where_the_patch_fits():
    shape = (28, 28)
    assert pd.angles(4) == [box["angle"] for box in pd.ring_at((14.0, 14.0), 5.0, 4, 3, shape)]
    # A centre in the corner: the patch fits only at some distances and directions.
    start = pd.start_view((0.0, 0.0), [0.0, 4.0, 8.0], 8, 3, shape)
    assert start == pd.first_spot((0.0, 0.0), [0.0, 4.0, 8.0], 8, 3, shape)
    distance, angle = start
    box = next(b for b in pd.ring_at((0.0, 0.0), distance, 8, 3, shape) if b["angle"] == angle)
    assert box["inside"]
    assert pd.start_view(None, [2.0, 4.0], 8, 3, shape) == (2.0, 0.0)  # no centre: the nearest, first direction


# ---- transfer -------------------------------------------------------------------------------------------


def test_transfer_choices():
    assert transfer.default_layers([3, 5, 8, 9, 12]) == [3, 8, 12] and transfer.default_layers([]) == []
    assert transfer.sweep_plan("ε", ["aa", "tpgd"], [0.05, 0.1], [1, 2]) == transfer.plan(["aa", "tpgd"], [0.05, 0.1])
    assert transfer.sweep_plan("layer", ["aa", "tpgd"], [0.05, 0.1], [1, 2]) == [("aa", 0.1, 1), ("aa", 0.1, 2)]
    rows = [{"method": "aa", "n": 40}, {"method": "fgsm", "n": 12}]
    assert transfer.shown(rows, "layer") == rows[:1] and transfer.shown(rows, "eps") == rows
    assert "Only 12 images count" in transfer.count_note(rows) and "8 points" in transfer.count_note(rows)
    assert transfer.count_note(rows[:1]) is None
    assert transfer.METRICS == ("error", "uTR", "tSuc", "tTR")


@pytest.mark.parametrize("rule", [targets.FARTHEST, targets.NEAREST_MEAN])
def test_target_pick_is_the_decision_an_aa_run_makes(rule):
    from engine import attacks, domains, models
    from engine.analysis.target_images import decide

    model = models.load("fmnist-lenet-0", device="cpu")
    x = domains.of(model).load("fmnist:0", model)
    target, goal = transfer.target_pick(model, x, 2, 0, rule)
    expected, extra = decide(attacks.get("aa"), model, x, None, layer=2, rule=rule)
    assert target == int(expected[0]) and torch.equal(goal, extra["target_images"].cpu())
    with torch.no_grad():
        assert int(model(goal.to(x.device)).argmax(1)[0]) == target  # the bank holds images of their own class


def test_every_heat_map_method_side_by_side_with_its_faithfulness(digits):
    """Each method's map of the clean and the adversarial image, and deletion/insertion areas per method beside
    random maps: a real attribution ranks pixels better than chance on the clean image."""
    from engine import attacks, heatmaps
    from engine.analysis import panels

    model, x, y = digits
    result = attacks.run("pgd", model, x[:1], y=y[:1], eps=0.3, steps=10)
    assert bool(result.success[0])
    found = panels.every_method(model, result, ["gradcam", "saliency", "integrated-gradients"], steps=8)
    assert [m[0] for m in found["maps"]] == ["Grad-CAM", "Saliency", "Integrated Gradients"]
    for _, clean, adversarial in found["maps"]:
        assert clean.shape == adversarial.shape == x.shape[-2:] and 0 <= clean.min() and clean.max() <= 1
    expected = heatmaps.compute(model, result.x_adv[:1], "saliency", target=int(result.pred_adv[0]))[0]
    np.testing.assert_allclose(found["maps"][1][2], expected.numpy(), atol=1e-6)  # the adversarial class's map
    areas = {r["method"]: r for r in found["auc"]}
    assert set(areas) == {"Grad-CAM", "Saliency", "Integrated Gradients", "random (control)"}
    ig, noise = areas["Integrated Gradients"], areas["random (control)"]
    assert ig["deletion AUC (lower is better)"] < noise["deletion AUC (lower is better)"]
    assert ig["insertion AUC (higher is better)"] > noise["insertion AUC (higher is better)"]
    fractions = sorted({c["fraction of pixels"] for c in found["curves"]})
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(fractions) == 9


def test_a_cancelled_comparison_keeps_the_methods_done_and_its_price_grows_with_its_work(digits, lite0):
    """Cancel after the second method: two maps, no faithfulness (it ranks all of them), said so. The price of a
    comparison counts Score-CAM's forward per channel: on Lite0's 1,280-channel layer it outweighs the rest."""
    from engine import attacks
    from engine.analysis import panels

    model, x, y = digits
    result = attacks.run("fgsm", model, x[:1], y=y[:1], eps=0.3)
    heard = []
    found = panels.every_method(
        model, result, ["gradcam", "saliency", "eigencam"], callback=lambda s, t, _: heard.append((s, t)) or s < 2
    )
    assert heard == [(1, 4), (2, 4)]
    assert found["cancelled"] and found["methods"] == 3 and found["curves"] == [] and found["auc"] == []
    assert [m[0] for m in found["maps"]] == ["Grad-CAM", "Saliency"]
    whole = panels.every_method(model, result, ["gradcam"], callback=lambda s, t, _: heard.append((s, t)))
    assert not whole["cancelled"] and heard[-2:] == [(1, 2), (2, 2)] and whole["auc"]
    cheap = panels.every_method_seconds(lite0, ["gradcam", "saliency"])
    assert panels.every_method_seconds(lite0, ["gradcam", "saliency", "scorecam"]) > 5 * cheap > 0


def test_score_cam_waits_to_be_asked_for_on_a_wide_layer(digits, lite0):
    from engine.analysis import panels

    assert panels.compared_methods(digits[0]) == (panels.usable_methods(digits[0]), None)
    methods, note = panels.compared_methods(lite0)
    assert "scorecam" not in methods and len(methods) == len(panels.usable_methods(lite0)) - 1
    assert "one forward per channel" in note and "1,280" in note
