"""Domains (engine.domains) and the target policy (engine.targets)."""

import pytest
import torch

from engine import attacks, domains, models, targets
from engine.analysis.target_images import evaluation_split


def test_every_registered_model_belongs_to_a_domain_that_describes_it():
    for row in models.available():
        domain = domains.get(row["domain"])
        if not row["available"] or row["name"].startswith(("resnet", "vgg", "densenet", "mobilenet")):
            continue
        model = models.load(row["name"], device="cpu")
        assert model.class_names == domain.class_names, row["name"]
        assert model.input_size[0] == domain.input_size[0]


@pytest.mark.parametrize("name", domains.names())
def test_sources_and_judges_are_disjoint_models_of_the_domain(name):
    domain = domains.get(name)
    registered = {r["name"]: r["domain"] for r in models.available()}
    assert domain.sources and domain.judges and not set(domain.sources) & set(domain.judges)
    assert all(registered[m] == name for m in (*domain.sources, *domain.judges))


def test_image_keys_round_trip_and_name_their_domain():
    fmnist, photos = domains.get("fashion-mnist"), domains.get("imagenet")
    assert domains.owner("fmnist:017") is fmnist and domains.canonical("fmnist:017") == "fmnist:17"
    assert domains.owner("chelsea") is photos and domains.owner("fmnist:10000") is None
    assert domains.owner("../etc/passwd") is None
    assert fmnist.label("fmnist:0") == 9 and photos.label("chelsea") == 285
    with pytest.raises(ValueError, match="numbered 0–9999"):
        fmnist.load("fmnist:10000", None)
    with pytest.raises(ValueError, match="numbered domain"):
        photos.load("17", None)


def test_the_bank_only_offers_images_the_model_gets_right(digits):
    model, x, y = digits
    wrong = y.clone()
    wrong[:5] = (wrong[:5] + 1) % 10  # five images that now carry a label the model does not give them
    bank_x, bank_y = targets.bank(model, x, wrong)
    assert bank_x.shape[0] == x.shape[0] - 5 and torch.equal(bank_y, wrong[5:])


def test_a_photo_bank_holds_only_photos_the_model_names_as_labelled():
    lite1 = models.load("efficientnet-lite1", device="cpu")
    (x, y), (bank_x, bank_y) = evaluation_split(lite1, 7)
    assert x.shape[0] == 7 and bank_x.shape[0] == domains.get("imagenet").capacity() - 1  # rocket: "space shuttle"
    with torch.no_grad():
        assert torch.equal(lite1(bank_x).argmax(1), bank_y)


def test_the_target_policy(digits):
    model, x, y = digits
    runner = targets.choose(model, x, targets.RUNNER_UP, y=y)
    logits = model(x)
    assert torch.equal(runner, logits.scatter(1, y[:, None], float("-inf")).argmax(1))
    drawn = targets.choose(model, x, targets.RANDOM, y=y, seed=3, allowed=torch.tensor([1, 2, 3]))
    assert set(drawn.tolist()) <= {1, 2, 3} and not bool((drawn == y).any())
    assert torch.equal(drawn, targets.choose(model, x, targets.RANDOM, y=y, seed=3, allowed=torch.tensor([1, 2, 3])))
    assert targets.choose(model, x, 4, y=y).tolist() == [4] * x.shape[0]
    with pytest.raises(ValueError, match="unknown target policy"):
        targets.choose(model, x, "nearest", y=y)
    assert targets.default_policy(attacks.get("pgd")) is None
    assert targets.default_policy(attacks.get("jsma")) == targets.RUNNER_UP
    assert targets.default_policy(attacks.get("aa")) == targets.RANDOM
