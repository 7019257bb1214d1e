"""Expected run times (engine.cost): each attack's declared work, and this machine's speed."""

import json

import pytest

from engine import attacks, cost
from engine.analysis import transfer
from engine.cli import main


def test_work_follows_each_attacks_loop(lite0):
    assert cost.attack_passes(lite0, "fgsm") == 1
    assert cost.attack_passes(lite0, "pgd", {"steps": 40}) == 4 * cost.attack_passes(lite0, "pgd", {"steps": 10})
    assert cost.attack_passes(lite0, "cw", {"steps": 50, "binary_search_steps": 3}) == 150
    # JSMA: Υ·d changed features, two per pair and `pairs` pairs per step; three passes' worth per step.
    one, many = cost.attack_passes(lite0, "jsma", {"pairs": 1}), cost.attack_passes(lite0, "jsma", {"pairs": 64})
    assert one == pytest.approx(7526 * 5 / 3) and many == pytest.approx(117 * 5 / 3)
    # DeepFool: a forward and k − 1 backwards per step; Square: forwards only.
    assert cost.attack_passes(lite0, "deepfool", {"steps": 3, "num_classes": 4}) == pytest.approx(3 * 7 / 3)
    assert cost.attack_passes(lite0, "square", {"n_queries": 300}) == pytest.approx(100)


def test_only_attacks_that_stop_at_success_are_caps():
    capped = {s["name"] for s in attacks.available() if cost.stops_early(s["name"])}
    # APGD and FAB restart only on the images still unfooled, AutoAttack's stages likewise, C&W L∞ ends an image's
    # rounds once τ stops shrinking, and a universal perturbation stops at its fooling rate.
    assert capped == {"deepfool", "jsma", "square", "maskfgsm", "apgd", "fab", "autoattack", "cw-linf", "universal"}


def test_domain_defaults_and_bad_parameters_are_those_of_the_attack(lite0):
    with pytest.raises(ValueError, match="outside its range"):
        cost.attack_passes(lite0, "pgd", {"steps": 0})
    with pytest.raises(ValueError, match="has no parameter"):
        cost.attack_passes(lite0, "fgsm", {"steps": 3})


def test_a_pass_costs_more_for_more_images_and_is_timed_once(digits):
    model = digits[0]
    first = cost.pass_seconds(model)
    assert cost.pass_seconds(model, 64) >= first > 0
    assert cost.pass_seconds(model) == first  # cached per model and device
    assert cost.attack_seconds(model, "pgd", 8, {"steps": 20}) == pytest.approx(20 * cost.pass_seconds(model, 8))


def test_a_transfer_plan_prices_every_job(lite0):
    jobs = transfer.plan(["aa", "tpgd"], [0.01, 0.03])
    assert jobs == [("aa", 0.01, None), ("aa", 0.03, None), ("tpgd", 0.01, None), ("tpgd", 0.03, None)]
    assert transfer.plan(["aa", "itcm"], [0.03], [2, 5]) == [("aa", 0.03, 2), ("aa", 0.03, 5), ("itcm", 0.03, None)]
    assert transfer.plan_seconds(lite0, jobs, 7, 5) == pytest.approx(4 * 5 * cost.pass_seconds(lite0, 7))
    with pytest.raises(ValueError, match="unknown transfer method"):
        transfer.plan(["fgsm"], [0.1])


@pytest.mark.parametrize(
    "seconds,words", [(0.2, "under a second"), (12.4, "about 12 s"), (200, "about 3 min"), (7300, "about 2.0 h")]
)
def test_phrase(seconds, words):
    assert cost.phrase(seconds) == words


def test_the_cli_prices_an_attack_without_running_it(capsys):
    assert (
        main(["attack", "--model", "fmnist-lenet-0", "--image", "0", "--attack", "jsma", "--estimate", "--json"]) == 0
    )
    row = json.loads(capsys.readouterr().out)[0]
    assert row["at_most"] and row["passes"] == pytest.approx(39 * 5 / 3)  # 0.1 · 784 = 78 features, 2 per step
    assert row["seconds"] == pytest.approx(row["passes"] * row["pass_seconds"])
