"""AA's target image (Inkawhich et al. 2019): every rule picks from images the model classifies as the target class."""

import pytest
import torch
from conftest import cli_json

from engine import targets
from engine.analysis import transfer
from engine.analysis.target_images import choose_target_images, features, target_bank, target_images
from engine.cli import main
from engine.metrics import predict_labels

LAYER = 2


@pytest.fixture(scope="module")
def poisoned(digits):
    """(model, sources, their labels, bank x, bank y, poison mask): a bank of digits the model gets right plus
    images labelled with a class the model does not give them: inverted digits (far from every real digit at
    any layer) and real digits under a wrong label."""
    from tiny_models import held_out

    model, x, y = digits
    bx, by = held_out()
    inverted = 1.0 - bx[:40]
    wrong = bx[40:80]
    fake_y = torch.cat([(predict_labels(model, inverted) + 1) % 10, (predict_labels(model, wrong) + 1) % 10])
    bank_x, bank_y = torch.cat([bx, inverted, wrong]), torch.cat([by, fake_y])
    poison = predict_labels(model, bank_x) != bank_y
    assert int(poison[-80:].sum()) == 80  # every planted image is one the model does not give its label
    return model, x[:16], y[:16], bank_x, bank_y, poison


def test_a_misclassified_bank_image_would_be_chosen_without_the_check(poisoned):
    """The poison is where an unchecked rule looks: it holds the farthest image of most target classes."""
    model, x, y, bank_x, bank_y, poison = poisoned
    target = targets.random_classes(y, 10, seed=0)
    raw = targets.pick_images(
        features(model, bank_x, LAYER), bank_y, target, targets.FARTHEST, source_f=features(model, x, LAYER)
    )
    assert float(poison[raw].float().mean()) > 0.5


@pytest.mark.parametrize("rule", targets.IMAGE_RULES)
def test_every_rule_picks_an_image_the_model_classifies_as_the_target(poisoned, rule):
    model, x, y, bank_x, bank_y, poison = poisoned
    for seed in range(3):
        target, images, index = target_images(model, x, LAYER, (bank_x, bank_y), y=y, seed=seed, rule=rule)
        assert not bool((target == y).any())
        assert torch.equal(predict_labels(model, images), target)
        clean = bank_x[~poison]
        # Each chosen image is one of the bank's correctly classified images, of the target class.
        match = (images.flatten(1)[:, None, :] == clean.flatten(1)[None, :, :]).all(2)
        assert bool(match.any(1).all())
        assert torch.equal(bank_y[~poison][match.float().argmax(1)], target)


def test_farthest_and_nearest_mean_are_the_extremes_they_claim(poisoned):
    model, x, y, bank_x, bank_y, _ = poisoned
    bank = target_bank(model, bank_x, bank_y, LAYER)
    source_f = features(model, x, LAYER)
    target, _, far = target_images(model, x, LAYER, bank, y=y, rule=targets.FARTHEST)
    _, _, near = target_images(model, x, LAYER, bank, y=y, rule=targets.NEAREST_MEAN)
    for i, t in enumerate(target.tolist()):
        members = (bank.y == t).nonzero().squeeze(1)
        to_source = (bank.features[members] - source_f[i]).norm(dim=1)
        centre = bank.features[members].mean(0)
        to_mean = (bank.features[members] - centre).norm(dim=1)
        assert float((bank.features[far[i]] - source_f[i]).norm()) == pytest.approx(float(to_source.max()), rel=1e-5)
        assert float((bank.features[near[i]] - centre).norm()) == pytest.approx(float(to_mean.min()), rel=1e-5)
    # The class mean's nearest member does not depend on the source: one image per target class.
    assert all(len(set(near[target == t].tolist())) == 1 for t in target.unique())


def test_random_in_class_is_seeded_and_varies(poisoned):
    model, x, y, bank_x, bank_y, _ = poisoned
    bank = target_bank(model, bank_x, bank_y, LAYER)
    target = torch.full_like(y, 3)
    picks = [
        target_images(model, x, LAYER, bank, target=target, y=y, seed=s, rule=targets.IN_CLASS_RANDOM)[2]
        for s in (0, 0, 1)
    ]
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])
    assert len(set(picks[0].tolist())) > 4  # 16 sources, dozens of 3s in the bank: not one image for all


def test_rules_are_checked(poisoned):
    model, x, y, bank_x, bank_y, _ = poisoned
    with pytest.raises(ValueError, match="unknown target-image rule 'closest'"):
        target_images(model, x, LAYER, (bank_x, bank_y), y=y, rule="closest")
    with pytest.raises(ValueError, match="layer 2's activations, not layer 1's"):
        target_images(model, x, 1, target_bank(model, bank_x, bank_y, LAYER), y=y)


def test_transfer_hands_aa_only_correctly_classified_target_images(poisoned, monkeypatch):
    """The transfer loop (CLI `transfer`, the app's Transfer lab, bench) with a poisoned bank and without one."""
    model, x, y, bank_x, bank_y, _ = poisoned
    given = []
    real_run = transfer.attacks.run

    def spy(name, white, xs, **kw):
        if "target_images" in kw:
            given.append((kw["target_images"], kw["target"]))
        return real_run(name, white, xs, **{**kw, "steps": 1})

    monkeypatch.setattr(transfer.attacks, "run", spy)
    for rule in targets.IMAGE_RULES:
        transfer.adversarial(model, "aa", x, y, bank=(bank_x, bank_y), target_image=rule, layer=LAYER, batch=5, eps=0.1)
    # The default bank is the sources themselves: some labels wrong, as a user's data may be.
    wrong_y = y.clone()
    wrong_y[:4] = (wrong_y[:4] + 1) % 10
    transfer.adversarial(model, "aa", x, wrong_y, layer=LAYER, eps=0.1)
    assert len(given) == 3 * 4 + 1
    for images, target in given:
        assert torch.equal(predict_labels(model, images), target)


@pytest.mark.slow
@pytest.mark.parametrize("rule", [targets.NEAREST_MEAN, targets.IN_CLASS_RANDOM])
def test_uploads_join_the_bank_under_the_models_own_label(lite0, rule):
    from engine import images

    x = images.load(images.gallery()["chelsea"], lite0)
    upload = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    upload_class = predict_labels(lite0, upload)
    target, goal = choose_target_images(lite0, x, 4, target=int(upload_class[0]), extra_images=upload, rule=rule)
    assert int(predict_labels(lite0, goal)[0]) == int(target[0]) == int(upload_class[0])


def test_first_per_class_keeps_the_first_of_each_class():
    y = torch.tensor([0, 1, 0, 2, 0, 1, 1, 1])
    x = torch.arange(8.0)[:, None]
    kept_x, kept_y = targets.first_per_class(x, y, 2)
    assert kept_x.squeeze(1).tolist() == [0, 1, 2, 3, 5] and kept_y.tolist() == [0, 1, 0, 2, 1]
    with pytest.raises(ValueError, match="at least 1 image per class"):
        targets.first_per_class(x, y, 0)


@pytest.mark.slow
def test_cli_layer_sweep_covers_every_layer_at_every_eps_with_baselines(capsys):
    from engine import models

    out = cli_json(
        capsys,
        "transfer",
        "--model",
        "fmnist-lenet-0",
        "--black",
        "fmnist-lenet-1",
        "--attack",
        "aa",
        "tmifgsm",
        "--sweep",
        "layer",
        "--eps",
        "0.1",
        "0.2",
        "--n",
        "6",
        "--bank-per-class",
        "3",
        "--target-image",
        "nearest-mean",
        "--steps",
        "2",
        "--json",
    )
    layers = len(models.load("fmnist-lenet-0", device="cpu").layers())
    aa = [r for r in out["rows"] if r["method"] == "aa"]
    assert sorted((r["layer"], r["eps"]) for r in aa) == [(i, e) for i in range(layers) for e in (0.1, 0.2)]
    assert all(r["target_image"] == "nearest-mean" for r in aa)
    base = [r for r in out["rows"] if r["method"] == "tmifgsm"]
    assert sorted(r["eps"] for r in base) == [0.1, 0.2] and all(r["target_image"] is None for r in base)
    assert out["bank"] == 30 and out["target_image"] == "nearest-mean"
    record = cli_json(
        capsys,
        "attack",
        "--model",
        "fmnist-lenet-0",
        "--image",
        "0",
        "--attack",
        "aa",
        "--target-image",
        "random",
        "--steps",
        "2",
        "--json",
    )
    assert record["attack"] == "aa"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--target-image", "closest"], "invalid choice: 'closest'"),
        (["--bank-per-class", "0"], "at least 1 image per class"),
        (["--attack", "aa", "fgsm"], "invalid choice: 'fgsm'"),
    ],
)
def test_cli_transfer_rejects_bad_input(capsys, argv, message):
    code = main(["transfer", "--model", "fmnist-lenet-0", "--black", "fmnist-lenet-1", "--n", "2", *argv, "--json"])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
