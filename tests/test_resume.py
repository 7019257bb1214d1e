"""A cancelled attack carries on from its checkpoint (`attacks.resume`) to the result of a run never cancelled."""

import itertools

import pytest
import torch

from engine import attacks, models
from engine.analysis.target_images import target_images
from engine.datasets import fashion_mnist

# Small enough to run every attack a few times. On these 16 images C&W's first search step leaves 6 of them
# unfooled (so the search moves both bounds) and the early abort ends its second at Adam step 21 of 50, so a
# cancel can land mid-search, just after an abort check, on the abort, or in the last search step.
SETTINGS = {
    "fgsm": {"eps": 0.1},
    "bim": {"eps": 0.1, "steps": 10},
    "pgd": {"eps": 0.1, "steps": 10, "random_start": True},
    "mifgsm": {"eps": 0.1, "steps": 10},
    "cw": {"c": 0.1, "kappa": 5.0, "lr": 0.1, "steps": 50, "binary_search_steps": 3},
    "cw-linf": {"c": 0.1, "lr": 0.1, "steps": 5, "tau_factor": 0.5},
    "ead": {"c": 0.1, "beta": 0.01, "steps": 10, "binary_search_steps": 3},
    "deepfool": {"steps": 20},
    "square": {"eps": 0.15, "n_queries": 100},
    "jsma": {"max_distortion": 0.3},
    "maskfgsm": {"eps": 0.2, "p_th": 0.2, "steps": 8, "tau": 60},
    "aa": {"eps": 0.3, "layer": 2},
    "fab": {"eps": 0.15, "steps": 6, "restarts": 2},
    "autoattack": {"eps": 0.15, "steps": 4, "n_target_classes": 2, "n_queries": 20},
    "apgd": {"eps": 0.1, "steps": 10, "restarts": 2, "loss": "dlr"},
    "universal": {"eps": 0.3, "batch": 4, "max_iter": 2, "steps": 10, "target_rate": 1.0},
    "hopskipjump": {"n_queries": 400},
    "boundary": {"n_queries": 100},
}
ITERATIVE = [name for name in SETTINGS if name != "fgsm"]


def test_every_attack_in_the_catalogue_is_resumed_here():
    """A new attack joins SETTINGS, or its cancel-and-continue path goes untested."""
    assert set(SETTINGS) == set(attacks.ATTACKS)


class Cancel:
    """A callback that records (step, total) and returns False once at the first step ≥ each of `at`, in turn."""

    def __init__(self, *at):
        self.at = list(at)
        self.seen = []

    def __call__(self, step, total, state):
        self.seen.append((step, total))
        if self.at and step >= self.at[0]:
            self.at.pop(0)
            return False
        return True


@pytest.fixture(scope="module")
def setups(digits):
    """name → (model, x, keyword arguments of the run): digits for all but Mask-FGSM, whose Grad-CAM needs the
    Fashion-MNIST LeNet's larger images to fool anything."""
    model, x, y = digits
    x, y = x[:16], y[:16]
    fmnist = models.load("fmnist-lenet-0", device="cpu")
    fx, fy = fashion_mnist.evaluation_slice(60)
    with torch.no_grad():
        right = fmnist(fx).argmax(1) == fy
    fx, fy = fx[right][:32], fy[right][:32]
    bank_x, bank_y = digits[1][16:], digits[2][16:]
    _, goal, _ = target_images(model, x, 2, (bank_x, bank_y), y=y, seed=0)
    out = {name: (model, x, {"y": y, "seed": 3, **kw}) for name, kw in SETTINGS.items()}
    out["jsma"][2]["target"] = (y + 1) % 10
    out["maskfgsm"] = (fmnist, fx, {"y": fy, "seed": 3, **SETTINGS["maskfgsm"]})
    out["aa"][2]["target_images"] = goal
    return out


_UNINTERRUPTED = {}


def uninterrupted(setups, name):
    """(result, callback) of the run never cancelled, once per attack."""
    if name not in _UNINTERRUPTED:
        model, x, kw = setups[name]
        callback = Cancel()
        _UNINTERRUPTED[name] = attacks.run(name, model, x, callback=callback, **kw), callback
    return _UNINTERRUPTED[name]


def assert_same_run(b, a):
    assert torch.equal(b.x_adv, a.x_adv)
    assert torch.equal(b.success, a.success)
    assert torch.equal(b.iterations, a.iterations)
    assert (b.queries is None and a.queries is None) or torch.equal(b.queries, a.queries)
    assert not b.stopped_early and b.checkpoint is None


@pytest.mark.parametrize("name", ITERATIVE)
# Twice: C&W's second cancel (step 66) comes right after an abort check, so the next check needs the loss kept.
@pytest.mark.parametrize("fractions", [(0.3,), (0.1, 0.44), (1.0,)], ids=["once", "twice", "last-step"])
def test_cancel_and_resume_gives_the_uninterrupted_run(setups, name, fractions):
    model, x, kw = setups[name]
    a, full = uninterrupted(setups, name)
    last, total = full.seen[-1]  # the last step the run reported (a stopping attack may end before `total`)
    at = [max(1, round(f * last)) for f in fractions]
    cancel = Cancel(at[0])
    part = attacks.run(name, model, x, callback=cancel, **kw)
    for more in [*at[1:], None]:
        reached = cancel.seen[-1][0]
        assert part.stopped_early and part.checkpoint is not None
        # The bar's step, the iterations and a "cancelled after N of M iterations" note are one counter.
        assert int(part.iterations.max()) == reached and attacks.progress_of(part) == (reached, total)
        cancel = Cancel(*([more] if more is not None else []))
        before = part.seconds
        part = attacks.resume(part, model, callback=cancel)
        if cancel.seen:  # the bar goes on from where it stopped, out of the same total
            assert cancel.seen[0] == (reached + 1, total) or (name == "cw" and cancel.seen[0][0] > reached)
        assert part.seconds > before
    assert_same_run(part, a)
    assert attacks.progress_of(part) == (int(a.iterations.max()),) * 2


@pytest.mark.parametrize("name", ITERATIVE)
def test_a_checkpoint_resumes_the_same_way_twice(setups, name):
    """Resuming does not consume or change the stopped result: the app may keep it and resume it again."""
    model, x, kw = setups[name]
    a, full = uninterrupted(setups, name)
    part = attacks.run(name, model, x, callback=Cancel(max(1, round(0.3 * full.seen[-1][0]))), **kw)
    assert_same_run(attacks.resume(part, model), a)
    assert_same_run(attacks.resume(part, model), a)


def test_cancel_at_the_last_step_already_holds_the_final_images(setups):
    model, x, kw = setups["bim"]
    a, _ = uninterrupted(setups, "bim")
    part = attacks.run("bim", model, x, callback=Cancel(SETTINGS["bim"]["steps"]), **kw)
    assert part.stopped_early and torch.equal(part.x_adv, a.x_adv)
    seen = Cancel()
    assert_same_run(attacks.resume(part, model, callback=seen), a)
    assert seen.seen == []  # nothing left to do


def test_fgsm_is_one_step_and_a_resume_runs_it_again(setups):
    model, x, kw = setups["fgsm"]
    a, _ = uninterrupted(setups, "fgsm")
    part = attacks.run("fgsm", model, x, callback=Cancel(1), **kw)
    assert part.stopped_early and part.checkpoint["state"] is None
    assert_same_run(attacks.resume(part, model), a)


def test_the_tests_tell_a_resume_from_a_restart(setups):
    """What the checks above would catch: PGD restarted from step 0 for the remaining steps (same α), and C&W
    resumed with its Adam moments lost, both end elsewhere."""
    model, x, kw = setups["pgd"]
    a, _ = uninterrupted(setups, "pgd")
    steps = kw["steps"]
    part = attacks.run("pgd", model, x, callback=Cancel(3), **kw)
    restarted = attacks.run("pgd", model, x, **{**kw, "steps": steps - 3, "alpha": 2.5 * kw["eps"] / steps})
    assert not torch.equal(restarted.x_adv, a.x_adv)
    assert torch.equal(attacks.resume(part, model).x_adv, a.x_adv)

    model, x, kw = setups["cw"]
    a, _ = uninterrupted(setups, "cw")
    part = attacks.run("cw", model, x, callback=Cancel(60), **kw)  # 10 Adam steps into the second search step
    state = part.checkpoint["state"]
    assert state["search"] == 1 and state["step"] == 10 and state["adam"]["state"]
    assert torch.equal(attacks.resume(part, model).x_adv, a.x_adv)
    state["adam"] = torch.optim.Adam([state["w"]], lr=kw["lr"]).state_dict()  # fresh moments, as a restart has
    assert not torch.equal(attacks.resume(part, model).x_adv, a.x_adv)
    restarted = attacks.run("cw", model, x, **{**kw, "binary_search_steps": 2})
    assert not torch.equal(restarted.x_adv, a.x_adv)


def test_cw_counts_the_schedule_its_early_abort_skips(setups):
    """C&W's bar, iterations and note agree: a search step ended by the early abort counts as passed."""
    model, x, kw = setups["cw"]
    a, full = uninterrupted(setups, "cw")
    steps, searches = kw["steps"], kw["binary_search_steps"]
    reported = [s for s, _ in full.seen]
    assert len(reported) < steps * searches  # the abort did skip Adam steps ...
    assert reported[-1] == steps * searches == int(a.iterations.max())  # ... and the count still ends at the total
    jumps = [b for a_, b in itertools.pairwise(reported) if b != a_ + 1]
    assert jumps == [2 * steps]  # the aborted (second) search step jumps to its end
    assert all(t == steps * searches for _, t in full.seen)
    part = attacks.run("cw", model, x, callback=Cancel(80), **kw)  # 80 lies in the skipped part of the schedule
    assert int(part.iterations.max()) == 2 * steps
    assert (part.checkpoint["state"]["search"], part.checkpoint["state"]["step"]) == (1, steps)
    assert_same_run(attacks.resume(part, model), a)


def test_checkpoint_contents(setups):
    model, x, kw = setups["cw"]
    part = attacks.run("cw", model, x, callback=Cancel(15), **kw)
    cp = part.checkpoint
    assert set(cp["state"]) == {
        "search",
        "step",
        "w",
        "adam",
        "found",
        "previous",
        "const",
        "lower",
        "upper",
        "best_l2",
        "best_adv",
        "last_adv",
    }
    assert cp["state"]["previous"] < float("inf")  # the early abort's last loss, so the abort happens as it would
    assert cp["generator"].dtype == torch.uint8 and torch.equal(cp["iterations"], part.iterations)
    assert cp["seconds"] == part.seconds and cp["num_classes"] == 10
    model, x, kw = setups["square"]
    part = attacks.run("square", model, x, callback=Cancel(10), **kw)
    assert set(part.checkpoint["state"]) == {"step", "x_best", "best"}
    assert torch.equal(part.checkpoint["queries"], part.queries) and int(part.queries.max()) == 11
    model, x, kw = setups["aa"]
    part = attacks.run("aa", model, x, callback=Cancel(3), **kw)
    assert torch.equal(part.checkpoint["target_images"], kw["target_images"])


def test_resume_refuses_a_finished_run_and_a_model_that_does_not_fit(setups, linear):
    model, x, kw = setups["pgd"]
    a, _ = uninterrupted(setups, "pgd")
    with pytest.raises(ValueError, match="this run finished; nothing to continue"):
        attacks.resume(a, model)
    part = attacks.run("pgd", model, x, callback=Cancel(2), **kw)
    other_classes = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 4))
    with pytest.raises(ValueError, match="4 classes"):
        attacks.resume(part, other_classes)
    with pytest.raises(ValueError, match="linear"):
        attacks.resume(part, linear)
    wrong_shape = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * x[0].numel(), 10))
    with pytest.raises(ValueError, match="does not take"):
        attacks.resume(part, wrong_shape)
    assert {"resume", "progress_of"} <= set(attacks.__all__)
