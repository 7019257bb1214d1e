"""FAB / FAB-T and AutoAttack against torchattacks (and adv-lib's FAB) on the Fashion-MNIST LeNet and its robust twin.

Same model, images, ε and reduced settings on both sides (10 steps, 3 target classes, 100 Square queries);
robust accuracy within 2 points over 256 images, FAB's median L∞ norm of the successful perturbations within 5 %.
"""

import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import require

from engine import attacks, models
from engine.attacks import autoattack
from engine.attacks.base import AttackSpec, execute
from engine.datasets import fashion_mnist

torchattacks = require("torchattacks", "bash scripts/test.sh installs the oracle libraries")

pytestmark = pytest.mark.oracle

N = 256
STEPS, N_TARGET, N_QUERIES = 10, 3, 100
# ε where about half of the plain model's images and most of the robust twin's survive FAB: both outcomes count.
EPS = {"fmnist-lenet-0": 0.03, "fmnist-lenet-robust-0": 0.1}


_LOADED, _FAB = {}, {}


def load(name):
    """(model, x, y, ε): 256 test images the model gets right (torchattacks' targeted FAB misaligns its targets
    with the images when some are already misclassified)."""
    if name not in _LOADED:
        model = models.load(name, device="cpu")
        x, y = fashion_mnist.evaluation_slice(400)
        with torch.no_grad():
            right = model(x).argmax(1) == y
        _LOADED[name] = model, x[right][:N], y[right][:N], EPS[name]
    return _LOADED[name]


@pytest.fixture(params=list(EPS))
def setup(request):
    return load(request.param)


@pytest.fixture
def plain():
    return load("fmnist-lenet-0")


def our_fab(model, x, y, eps):
    """(result, seconds) of our untargeted FAB, run once per model: two oracles check it."""
    if model.name not in _FAB:
        _FAB[model.name] = timed(lambda: attacks.run("fab", model, x, y=y, eps=eps, steps=STEPS))
    return _FAB[model.name]


def linf(adv, x):
    return (adv - x).detach().flatten(1).abs().amax(1)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def predictions(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def assert_close(ours_fooled, ours_norm, theirs_fooled, theirs_norm, what):
    ours_acc, theirs_acc = 1 - ours_fooled.float().mean().item(), 1 - theirs_fooled.float().mean().item()
    ours_median, theirs_median = ours_norm[ours_fooled].median().item(), theirs_norm[theirs_fooled].median().item()
    print(f"{what}: robust accuracy {ours_acc:.4f} vs {theirs_acc:.4f}", end=", ")
    print(f"median L∞ {ours_median:.5f} vs {theirs_median:.5f}")
    assert abs(ours_acc - theirs_acc) <= 0.02
    assert abs(ours_median - theirs_median) <= 0.05 * theirs_median


def test_fab_matches_torchattacks(setup):
    model, x, y, eps = setup
    ours, t_ours = our_fab(model, x, y, eps)
    fab = torchattacks.FAB(model, eps=eps, steps=STEPS, n_restarts=1, n_classes=10)
    adv, t_theirs = timed(lambda: fab(x, y))
    print(f"FAB {eps}: {t_ours:.2f} s ours, {t_theirs:.2f} s torchattacks")
    assert float(linf(ours.x_adv, x).max()) <= eps + 1e-6 and float(linf(adv, x).max()) <= eps + 1e-6
    assert torch.equal(ours.iterations, torch.full_like(ours.iterations, STEPS))
    theirs = predictions(model, adv) != y
    assert_close(ours.success, linf(ours.x_adv, x), theirs, linf(adv, x), f"FAB ε {eps}")
    # An unfooled image is left as it was: FAB's ε only decides which of its minimal images count.
    assert torch.equal(ours.x_adv[~ours.success], x[~ours.success])


def test_fab_t_matches_torchattacks(setup):
    """FAB-T towards the runner-up class: success is reaching it (torchattacks keeps any misclassification, but
    crossing the one linearised boundary f_t = f_y lands on the runner-up on almost every image)."""
    model, x, y, eps = setup
    with torch.no_grad():
        target = model(x).sort(dim=1).indices[:, -2]
    ours, t_ours = timed(lambda: attacks.run("fab", model, x, y=y, target=target, eps=eps, steps=STEPS))
    fab = torchattacks.FAB(model, eps=eps, steps=STEPS, n_restarts=1, n_classes=10)
    fab.set_mode_targeted_by_function(lambda images, labels: target)
    adv, t_theirs = timed(lambda: fab(x, y))
    print(f"FAB-T {eps}: {t_ours:.2f} s ours, {t_theirs:.2f} s torchattacks")
    theirs = predictions(model, adv) == target
    assert torch.equal(ours.success, predictions(model, ours.x_adv) == target)
    assert_close(ours.success, linf(ours.x_adv, x), theirs, linf(adv, x), f"FAB-T ε {eps}")


def test_multi_targeted_fab_t_matches_torchattacks(plain):
    """AutoAttack's FAB-T stage alone (3 target classes in turn, success = misclassified) vs torchattacks'
    FAB(multi_targeted=True), which aims at n_classes − 1 classes (the plain model only, to save time: the
    robust twin's FAB-T runs inside AutoAttack's test)."""
    model, x, y, eps = plain
    spec = AttackSpec(
        "fab-t-only",
        "FAB-T stage",
        lambda ctx, **kw: autoattack.autoattack(ctx, **kw, stages=("fab-t",)),
        autoattack.SPEC.params,
        norm="linf",
        targeted=False,
    )
    settings = {"eps": eps, "steps": STEPS, "n_target_classes": N_TARGET, "n_queries": N_QUERIES}
    ours, t_ours = timed(lambda: execute(spec, model, x, y=y, **settings))
    fab = torchattacks.FAB(model, eps=eps, steps=STEPS, n_restarts=1, multi_targeted=True, n_classes=N_TARGET + 1)
    adv, t_theirs = timed(lambda: fab(x, y))
    print(f"FAB-T × {N_TARGET} {eps}: {t_ours:.2f} s ours, {t_theirs:.2f} s torchattacks")
    theirs = predictions(model, adv) != y
    assert_close(ours.success, linf(ours.x_adv, x), theirs, linf(adv, x), f"multi-targeted FAB-T ε {eps}")
    assert [s["stage"] for s in ours.stages] == ["clean", "fab-t"]
    assert ours.stages[-1]["robust_accuracy"] == pytest.approx(1 - ours.success.float().mean().item())


def torchattacks_autoattack(model, x, y, eps):
    """torchattacks' standard AutoAttack with the reduced settings, composed as its MultiAttack does, keeping the
    robust accuracy after each stage."""
    stages = [
        torchattacks.APGD(model, eps=eps, steps=STEPS, n_restarts=1, loss="ce", seed=0),
        torchattacks.APGDT(model, eps=eps, steps=STEPS, n_restarts=1, n_classes=N_TARGET + 1, seed=0),
        torchattacks.FAB(model, eps=eps, steps=STEPS, n_restarts=1, multi_targeted=True, n_classes=N_TARGET + 1),
        # Its n_queries counts the iterations after the first query (the stripes); ours every query.
        torchattacks.Square(model, eps=eps, n_queries=N_QUERIES - 1, n_restarts=1, p_init=0.8, seed=0),
    ]
    robust = predictions(model, x) == y
    out, accuracy = x.clone(), [robust.float().mean().item()]
    for attack in stages:
        idx = robust.nonzero().squeeze(1)
        if idx.numel():
            adv = attack(x[idx], y[idx])
            fooled = predictions(model, adv) != y[idx]
            out[idx[fooled]] = adv[fooled]
            robust[idx[fooled]] = False
        accuracy.append(robust.float().mean().item())
    return out, accuracy


def test_autoattack_matches_torchattacks(setup):
    model, x, y, eps = setup
    settings = {"eps": eps, "steps": STEPS, "n_target_classes": N_TARGET, "n_queries": N_QUERIES}
    seen = []
    ours, t_ours = timed(
        lambda: attacks.run("autoattack", model, x, y=y, callback=lambda *a: seen.append(a[:2]), **settings)
    )
    (adv, theirs), t_theirs = timed(lambda: torchattacks_autoattack(model, x, y, eps))
    names = [s["stage"] for s in ours.stages]
    accuracy = [s["robust_accuracy"] for s in ours.stages]
    print(f"AutoAttack ε {eps}: {t_ours:.2f} s ours, {t_theirs:.2f} s torchattacks")
    for name, a, b, s in zip(names, accuracy, theirs, ours.stages, strict=True):
        print(f"  {name}: robust accuracy {a:.4f} vs {b:.4f} ({s['seconds']:.2f} s ours)")
    assert names == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert max(abs(a - b) for a, b in zip(accuracy, theirs, strict=True)) <= 0.02
    assert accuracy == sorted(accuracy, reverse=True)  # each stage only adds fooled images
    assert accuracy[-1] == pytest.approx(1 - ours.success.float().mean().item())
    assert float(linf(ours.x_adv, x).max()) <= eps + 1e-6 and float(linf(adv, x).max()) <= eps + 1e-6
    # One bar over the stages: steps counted as they run, out of every stage's budget, the last one the count.
    total = STEPS * (1 + 2 * N_TARGET) + N_QUERIES - 1
    assert all(t == total for _, t in seen) and [s for s, _ in seen] == list(range(1, len(seen) + 1))
    assert int(ours.iterations.max()) == seen[-1][0]


def test_fab_matches_adv_lib(plain):
    """adv-lib's FAB minimises the norm without a budget: fooled within ε is its norm ≤ ε (the plain model only:
    torchattacks checks the robust twin)."""
    model, x, y, eps = plain
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import peers

    found, missing = peers.import_peers()
    if "adv_lib" not in found:
        pytest.skip(f"missing test dependency adv_lib: {missing.get('adv_lib', 'not installed')}")
    from adv_lib.attacks import fab

    ours, t_ours = our_fab(model, x, y, eps)
    adv, t_theirs = timed(lambda: fab(model, x, y, norm=float("inf"), n_iter=STEPS))
    print(f"FAB {eps}: {t_ours:.2f} s ours, {t_theirs:.2f} s adv-lib")
    theirs = (predictions(model, adv) != y) & (linf(adv, x) <= eps)
    assert_close(ours.success, linf(ours.x_adv, x), theirs, linf(adv, x), f"FAB vs adv-lib ε {eps}")
