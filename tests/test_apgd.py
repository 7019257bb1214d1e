"""APGD against torchattacks (APGD, APGDT) and adv-lib (apgd) on the Fashion-MNIST LeNet and its robust twin.

The libraries draw different random starts, so outcomes are compared, not images: success rates on
the same 256 correctly classified images, same ε and steps, within one binomial standard error of the
rate and at least 2 points (our own rate moves by up to 2 points between seeds here). Then budgets,
APGD against PGD and against noise, the paper's checkpoint schedule, the DLR loss, cancel and resume,
and `apgd_run` on some rows with their own targets (as AutoAttack calls it).
"""

import math
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import require

from engine import attacks, models, targets
from engine.attacks.apgd import apgd_loss, apgd_run, checkpoint_lengths
from engine.attacks.base import Context
from engine.datasets import fashion_mnist

pytestmark = pytest.mark.oracle

torchattacks = require("torchattacks", "bash scripts/test.sh installs it")
STEPS = 10
N = 256
# (model, ε): the plain LeNet at a small ε where about 60% fall, the robust twin at the domain's ε (~85%).
SETTINGS = {"plain": ("fmnist-lenet-0", 0.03), "robust": ("fmnist-lenet-robust-0", 0.2)}


def adv_lib_apgd():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import peers

    found, missing = peers.import_peers()
    if "adv_lib" not in found:
        pytest.skip(f"missing test dependency adv-lib ({missing.get('adv_lib')}): bash bench/install_peers.sh")
    from adv_lib.attacks import auto_pgd

    return auto_pgd


def tolerance(rate: float) -> float:
    return max(0.02, math.sqrt(rate * (1 - rate) / N))


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


@pytest.fixture(scope="module", params=list(SETTINGS))
def outcomes(request):
    """Every library's images on one model, and per run the share that reached its goal."""
    auto_pgd = adv_lib_apgd()
    name, eps = SETTINGS[request.param]
    model = models.load(name, device="cpu")
    x, y = fashion_mnist.evaluation_slice(400)
    with torch.no_grad():
        right = model(x).argmax(1) == y
    x, y = x[right][:N], y[right][:N]
    goal = targets.runner_up(model, x)

    def ours(**kw):
        return attacks.run("apgd", model, x, y=y, eps=eps, steps=STEPS, score=False, **kw).x_adv

    torch.manual_seed(0)  # adv-lib draws its start from the global generator
    images, seconds = {}, {}
    for loss in ("ce", "dlr"):
        images[f"ours {loss}"], seconds[f"ours {loss}"] = timed(ours, loss=loss)
        ta = torchattacks.APGD(model, eps=eps, steps=STEPS, loss=loss, n_restarts=1, seed=0)
        images[f"torchattacks {loss}"], seconds[f"torchattacks {loss}"] = timed(ta, x, y)
        images[f"adv-lib {loss}"], seconds[f"adv-lib {loss}"] = timed(
            auto_pgd.apgd, model, x, y, eps=eps, norm=float("inf"), n_iter=STEPS, loss_function=loss
        )
        images[f"ours targeted {loss}"] = ours(loss=loss, target=goal)
        images[f"adv-lib targeted {loss}"] = auto_pgd.apgd(
            model, x, goal, eps=eps, norm=float("inf"), targeted=True, n_iter=STEPS, loss_function=loss
        )
    # torchattacks' APGDT takes its targets from the clean logits: with n_classes=2 only the runner-up.
    images["torchattacks APGDT"] = torchattacks.APGDT(model, eps=eps, steps=STEPS, n_restarts=1, seed=0, n_classes=2)(
        x, y
    )
    images["pgd"] = attacks.run("pgd", model, x, y=y, eps=eps, steps=STEPS, score=False).x_adv
    corners = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5, -eps, eps)
    images["noise"] = (x + corners).clamp(0, 1)
    print(
        f"\n{name}, ε = {eps}, {N} images, {STEPS} steps, seconds: "
        + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
    )
    with torch.no_grad():
        pred = {k: model(v).argmax(1) for k, v in images.items()}
    fooled = {k: float((p != y).float().mean()) for k, p in pred.items()}
    hit = {k: float((p == goal).float().mean()) for k, p in pred.items()}
    print("fooled: " + ", ".join(f"{k} {v:.3f}" for k, v in fooled.items()))
    return {"x": x, "eps": eps, "images": images, "fooled": fooled, "hit": hit, "name": name}


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("peer", ["torchattacks", "adv-lib"])
def test_untargeted_success_matches_the_peers(outcomes, peer, loss):
    ours, theirs = outcomes["fooled"][f"ours {loss}"], outcomes["fooled"][f"{peer} {loss}"]
    assert abs(ours - theirs) <= tolerance(theirs), (outcomes["name"], ours, theirs)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_targeted_success_matches_adv_lib(outcomes, loss):
    # adv-lib's targeted DLR is (z_t − max_{j≠t} z_j)/…, not the paper's (z_t − z_y)/…, which may stop at a
    # third class: with DLR the share fooled is compared, with CE the share that reached the target.
    share = outcomes["hit"] if loss == "ce" else outcomes["fooled"]
    ours, theirs = share[f"ours targeted {loss}"], share[f"adv-lib targeted {loss}"]
    assert abs(ours - theirs) <= tolerance(theirs), (outcomes["name"], ours, theirs)


def test_targeted_dlr_fools_like_torchattacks_apgdt(outcomes):
    # APGDT counts any wrong class as success and keeps the last such iterate, so compare what both fool.
    ours, theirs = outcomes["fooled"]["ours targeted dlr"], outcomes["fooled"]["torchattacks APGDT"]
    assert abs(ours - theirs) <= tolerance(theirs), (outcomes["name"], ours, theirs)


def test_budgets_hold(outcomes):
    x, eps = outcomes["x"], outcomes["eps"]
    for key, adv in outcomes["images"].items():
        if key.startswith("ours"):
            assert float((adv - x).abs().max()) <= eps + 1e-6 and 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0


def test_apgd_beats_pgd_with_the_same_steps_and_noise_of_the_same_norm(outcomes):
    fooled = outcomes["fooled"]
    assert fooled["ours ce"] >= fooled["pgd"], fooled
    assert min(fooled["ours ce"], fooled["ours dlr"]) >= fooled["noise"] + 0.3, fooled


def test_checkpoints_follow_the_paper():
    """p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), as whole steps of a 100-step run."""
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    for steps in (100, 1000):
        first, shrink, shortest = checkpoint_lengths(steps)
        at, k = [0, first], first
        while at[-1] + max(k - shrink, shortest) <= steps:
            k = max(k - shrink, shortest)
            at.append(at[-1] + k)
        assert at == [round(v * steps) for v in p]


def test_dlr_ignores_the_logits_scale_and_targets_the_papers_ratio():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 10, generator=g)
    y, t = torch.arange(6), (torch.arange(6) + 3) % 10
    for target in (None, t):
        assert torch.allclose(apgd_loss(3 * z + 1, y, target, "dlr"), apgd_loss(z, y, target, "dlr"), atol=1e-5)
    s = z.sort(1, descending=True).values
    rows = torch.arange(6)
    expected = (z[rows, t] - z[rows, y]) / (s[:, 0] - (s[:, 2] + s[:, 3]) / 2)
    assert torch.allclose(apgd_loss(z, y, t, "dlr"), expected, atol=1e-5)
    other = z.scatter(1, y[:, None], -float("inf")).amax(1)
    assert torch.allclose(apgd_loss(z, y, None, "dlr"), (other - z[rows, y]) / (s[:, 0] - s[:, 2]), atol=1e-5)


class Cancel:
    def __init__(self, *at):
        self.at, self.seen = list(at), []

    def __call__(self, step, total, state):
        self.seen.append((step, total))
        if self.at and step >= self.at[0]:
            self.at.pop(0)
            return False
        return True


@pytest.mark.parametrize("at", [(3,), (10, 14), (20,)], ids=["first-restart", "at-restart-end-then-second", "last"])
def test_cancel_and_resume_gives_the_uninterrupted_run(digits, at):
    model, x, y = digits
    kw = {"y": y[:16], "eps": 0.1, "steps": 10, "restarts": 2, "loss": "dlr", "seed": 3}
    full = Cancel()
    a = attacks.run("apgd", model, x[:16], callback=full, **kw)
    assert full.seen[-1] == (20, 20) and 0 < a.success_rate < 1  # the second restart ran, on some images only
    # A row leaves the batch once it fooled the model: the unfooled ones took every step of both restarts, and
    # some fooled ones stopped inside the first.
    assert a.iterations[~a.success].tolist() == [20] * int((~a.success).sum())
    assert int(a.iterations[a.success].min()) < 10
    part = attacks.run("apgd", model, x[:16], callback=Cancel(at[0]), **kw)
    for more in [*at[1:], None]:
        assert part.stopped_early and attacks.progress_of(part)[1] == 20
        cancel = Cancel(*([more] if more else []))
        part = attacks.resume(part, model, callback=cancel)
    assert torch.equal(part.x_adv, a.x_adv) and torch.equal(part.iterations, a.iterations)
    assert not part.stopped_early


def test_apgd_run_on_some_rows_with_their_own_targets(digits):
    """What AutoAttack calls: the same as the attack on those rows alone, the other rows untouched."""
    model, x, y = digits
    x, y = x[:12], y[:12]
    rows = torch.tensor([1, 4, 5, 9])
    goal = targets.runner_up(model, x)
    ctx = Context(model, x, y, None, torch.Generator().manual_seed(5), None)
    out = apgd_run(ctx, 0.1, 8, "dlr", 1, rows=rows, target=goal)
    alone = attacks.run("apgd", model, x[rows], y=y[rows], target=goal[rows], eps=0.1, steps=8, loss="dlr", seed=5)
    assert torch.allclose(out.x_adv, alone.x_adv, atol=1e-6)
    assert torch.equal(out.fooled, alone.success)
    assert torch.equal(ctx.iterations[rows], alone.iterations) and int(ctx.iterations.sum()) == int(
        alone.iterations.sum()
    )


def test_a_row_that_fooled_the_model_costs_no_more_passes(digits):
    """Each row pays one pass at its random start and one per step it takes, and stops taking steps once it
    fooled the model; the unfooled rows take every step."""
    model, x, y = digits
    x, y = x[:64], y[:64]
    rows = []
    hook = model.register_forward_pre_hook(lambda module, inputs: rows.append(inputs[0].shape[0]))
    try:
        result = attacks.run("apgd", model, x, y=y, eps=0.1, steps=STEPS, loss="ce", seed=0, score=False)
    finally:
        hook.remove()
    steps = result.iterations
    assert sum(rows) == x.shape[0] + int(steps.sum())
    with torch.no_grad():
        fooled = model(result.x_adv).argmax(1) != y
    assert steps[~fooled].tolist() == [STEPS] * int((~fooled).sum())
    assert 0 < int(fooled.sum()) and int(steps[fooled].min()) < STEPS and int(steps.sum()) < x.shape[0] * STEPS
