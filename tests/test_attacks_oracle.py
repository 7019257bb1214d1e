"""Our sign-gradient attacks against torchattacks (test-only dependency) on the same model and input."""

import pytest
import torch
from conftest import require

from engine import attacks

torchattacks = require("torchattacks", "bash scripts/test.sh installs torchattacks==3.5.1 --no-deps")
pytestmark = pytest.mark.oracle

EPS, ALPHA, STEPS = 0.1, 0.02, 7


def reference(name):
    return {
        "fgsm": lambda m: torchattacks.FGSM(m, eps=EPS),
        "bim": lambda m: torchattacks.BIM(m, eps=EPS, alpha=ALPHA, steps=STEPS),
        "pgd": lambda m: torchattacks.PGD(m, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False),
        "mifgsm": lambda m: torchattacks.MIFGSM(m, eps=EPS, alpha=ALPHA, steps=STEPS, decay=1.0),
    }[name]


def ours(name, model, x, y, target=None):
    kw = {"eps": EPS} if name == "fgsm" else {"eps": EPS, "alpha": ALPHA, "steps": STEPS}
    if name == "pgd":
        kw["random_start"] = False
    if name == "mifgsm":
        kw["decay"] = 1.0
    return attacks.run(name, model, x, y=y, target=target, **kw).x_adv


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mifgsm"])
@pytest.mark.parametrize("targeted", [False, True])
def test_matches_torchattacks(digits, name, targeted):
    model, x, y = digits
    atk = reference(name)(model)
    if targeted:
        target = (y + 3) % 10
        atk.set_mode_targeted_by_label(quiet=True)
        theirs = atk(x, target)
    else:
        target = None
        theirs = atk(x, y)
    mine = ours(name, model, x, y, target)
    assert torch.allclose(mine, theirs, atol=1e-5), float((mine - theirs).abs().max())
    assert not model.training


def test_matches_torchattacks_on_efficientnet_lite0(lite0):
    from engine import images

    x = images.load(images.gallery()["chelsea"], lite0)
    with torch.no_grad():
        y = lite0(x).argmax(1)
    theirs = torchattacks.PGD(lite0, eps=0.02, alpha=0.005, steps=3, random_start=False)(x, y)
    mine = attacks.run("pgd", lite0, x, y=y, eps=0.02, alpha=0.005, steps=3, random_start=False).x_adv
    assert torch.allclose(mine, theirs, atol=1e-5)
