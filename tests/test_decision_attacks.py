"""HopSkipJump and Boundary (label-only) against Foolbox 3.3.4 on the same model, images and query budgets.

Foolbox counts no queries: its budget here is the images it sent to the model per example (a forward hook),
and ours gets exactly that as `n_queries`. Decision attacks are random, so the check is on the median L2 of 32
examples: ours at most 1.25× Foolbox's. Measured (seeds 0-2, 32 digits, ~333 and ~273 queries): HopSkipJump
0.49-0.53× (Foolbox normalises its gradient estimate by the norm of the whole batch, not per example, so its
steps shrink with the batch size), Boundary 0.98-1.03× (the same walk; our start is bisected rather than
searched on a grid).
"""

import sys
from pathlib import Path

import pytest
import torch

from engine import attacks

pytestmark = pytest.mark.oracle

N = 32


def foolbox():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import peers

    found, missing = peers.import_peers()
    if "foolbox" not in found:
        pytest.skip(f"missing test dependency foolbox ({missing.get('foolbox')}): bash bench/install_peers.sh")
    import foolbox as fb

    return fb


class Rows(torch.nn.Module):
    """The model, counting the images it is sent."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)


def l2(x, adv):
    return (adv - x).flatten(1).norm(dim=1)


def labels(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def check_run(model, x, y, result, budget):
    """Every image adversarial for the model (its label, not the run's word), and no example over budget."""
    assert bool((labels(model, result.x_adv) != y).all())
    assert int(result.queries.max()) <= budget
    assert float(result.x_adv.min()) >= 0 and float(result.x_adv.max()) <= 1


@pytest.mark.parametrize(
    "name, make",
    [
        ("hopskipjump", lambda fb: fb.attacks.HopSkipJumpAttack(steps=2)),
        ("boundary", lambda fb: fb.attacks.BoundaryAttack(steps=200)),
    ],
)
def test_median_l2_against_foolbox_at_the_same_budget(digits, name, make):
    fb = foolbox()
    model, x, y = digits
    x, y = x[:N], y[:N]
    counted = Rows(model).eval()
    torch.manual_seed(0)
    theirs = make(fb).run(fb.PyTorchModel(counted, bounds=(0, 1)), x, fb.criteria.Misclassification(y))
    budget = counted.rows // N
    assert bool((labels(model, theirs) != y).all())
    ours = attacks.run(name, model, x, y=y, n_queries=budget, seed=0)
    check_run(model, x, y, ours, budget)
    ratio = float(l2(x, ours.x_adv).median() / l2(x, theirs).median())
    assert ratio <= 1.25, f"{name}: median L2 {ratio:.2f}× Foolbox's at {budget} queries"
    # A smaller budget gives larger perturbations: the budget is what buys the distance.
    less = attacks.run(name, model, x, y=y, n_queries=budget // 3, seed=0)
    check_run(model, x, y, less, budget // 3)
    assert float(l2(x, less.x_adv).median()) > float(l2(x, ours.x_adv).median())


@pytest.mark.parametrize("name", ["hopskipjump", "boundary"])
def test_label_only_counted_and_targeted(digits, name):
    """The run on a model that answers only one-hot labels is the same run (no logit is read); every image sent
    is counted; a targeted run starts from batch images of the target class and ends there."""
    model, x, y = digits
    x, y = x[:16], y[:16]
    hard = Rows(lambda z: torch.nn.functional.one_hot(model(z).argmax(1), 10).float())
    budget = 100
    a = attacks.run(name, model, x, y=y, n_queries=budget, seed=1, score=False)
    b = attacks.run(name, hard, x, y=y, n_queries=budget, seed=1, score=False)
    assert torch.equal(a.x_adv, b.x_adv)
    # `hard` has no num_classes: run() asks it once for the class count (the clean batch), outside the attack.
    assert int(b.queries.sum()) == hard.rows - x.shape[0] and int(b.queries.max()) <= budget
    target = (y + 1) % 10
    t = attacks.run(name, model, x, y=y, target=target, n_queries=budget, seed=1)
    assert bool((labels(model, t.x_adv) == target).all()) and int(t.queries.max()) <= budget


def test_an_example_with_no_start_stays_clean(digits):
    """No image of the target class in the batch and noise never lands there: that example is left unfooled."""
    model, x, y = digits
    pick = (y == 3).nonzero()[:2].squeeze(1)
    x, y = x[pick], y[pick]
    result = attacks.run("hopskipjump", model, x, y=y, target=torch.full_like(y, 7), n_queries=50, seed=0)
    assert torch.equal(result.x_adv[~result.success], x[~result.success])
    assert int(result.queries.max()) <= 50


class Cancel:
    def __init__(self, at):
        self.at, self.seen = at, []

    def __call__(self, step, total, state):
        self.seen.append((step, total))
        return step < self.at


@pytest.mark.parametrize("name, budget", [("hopskipjump", 400), ("boundary", 100)])
def test_cancel_and_resume_gives_the_uninterrupted_run(digits, name, budget):
    model, x, y = digits
    x, y = x[:8], y[:8]
    full = Cancel(10**9)
    a = attacks.run(name, model, x, y=y, n_queries=budget, seed=3, callback=full)
    last, total = full.seen[-1]
    assert all(t == total for _, t in full.seen) and last <= total
    for at in (max(1, last // 3), last):
        part = attacks.run(name, model, x, y=y, n_queries=budget, seed=3, callback=Cancel(at))
        assert part.stopped_early and attacks.progress_of(part) == (at, total)
        after = Cancel(10**9)
        b = attacks.resume(part, model, callback=after)
        assert after.seen[:1] in ([], [(at + 1, total)])
        assert torch.equal(b.x_adv, a.x_adv) and torch.equal(b.queries, a.queries)
        assert torch.equal(b.iterations, a.iterations)


def test_any_classifier(digits):
    """A zoo classifier with another input size works as is: `attacks.run(name, model, x)`."""
    from engine import models
    from engine.datasets import fashion_mnist

    model = models.load("fmnist-lenet-0", device="cpu")
    x, _ = fashion_mnist.evaluation_slice(2)
    for name in ("hopskipjump", "boundary"):
        result = attacks.run(name, model, x, n_queries=60)
        assert bool(result.success.all()) and int(result.queries.max()) <= 60
