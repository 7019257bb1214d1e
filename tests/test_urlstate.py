"""The link format: every value checked against known names and ranges, bad ones named and dropped."""

from app import urlstate
from app.state import RunSpec

MODELS = {"fmnist-lenet-0": "fashion-mnist", "efficientnet-lite0": "imagenet"}


def test_view_presentation_and_slide_round_trip():
    run = RunSpec("fmnist-lenet-0", "fmnist:3", "fgsm", (("eps", 0.1),), None, 2)
    query = urlstate.encode("fmnist-lenet-0", "fmnist:3", run, [], view="amplified", present=True, slide=4)
    values, problems = urlstate.parse(query, MODELS)
    assert not problems
    assert (values["view"], values["present"], values["slide"]) == ("amplified", "1", 4)
    assert values["attack"] == "fgsm" and values["params"] == {"eps": 0.1} and values["seed"] == 2


def test_bad_view_presentation_and_slide_are_named():
    values, problems = urlstate.parse({"view": "x-ray", "present": "yes", "slide": "9"}, MODELS)
    assert not {"view", "present", "slide"} & set(values)
    text = " ".join(problems)
    assert "view must be one of signed, amplified, display" in text
    assert "present must be one of 0, 1" in text and "slide must be a whole number in [1, 5]" in text


def test_presentation_is_left_out_of_a_plain_link():
    assert "present" not in urlstate.encode("efficientnet-lite0", "chelsea", None, [], slide=2)


def test_progress_text_says_steps_shares_and_time_left_in_words():
    from app.jobs import progress_text

    assert progress_text("PGD", 3, 12, 0.5) == "PGD: step 3 of 12"
    assert progress_text("PGD", 3, 12, 6.0) == "PGD: step 3 of 12 · 6 s, about 18 s left"
    assert progress_text("Hardness", 0.285714, 12, 2.0).startswith("Hardness: 2% · 2 s")  # never a raw float
    assert (
        progress_text("JSMA", 25, 7526, 4.0, upper_bound=True)
        == "JSMA: step 25, at most 7526 (stops once it succeeds) · 4 s"
    )
    assert progress_text("Sweep", 30, 60, 120.0) == "Sweep: step 30 of 60 · 2.0 min, about 2.0 min left"
    # A label-only attack runs until its query budget is spent, success or not: the bar counts its queries.
    assert (
        progress_text("HopSkipJump", 4, 31, 3.0, upper_bound=True, queries=1234)
        == "HopSkipJump: step 4, at most 31 · 1,234 queries · 3 s"
    )


def test_the_bar_of_a_label_only_attack_counts_the_queries_of_its_busiest_image():
    import torch

    from app.jobs import _spent

    assert _spent({"queries": torch.tensor([120, 480, 3])}) == 480
    assert _spent({"queries": 7}) == 7 and _spent({"upper_bound": True}) is None
