"""The generation effect (targeted recognisability, Menn 2023, §4.8.5) and Square averaged from δ = 0 (§5.1)."""

import json

import pytest
import torch

from engine import attacks, domains, targets
from engine.analysis import masking, recognisable
from engine.attacks.averaging import averaged
from engine.cli import main


@pytest.fixture(scope="module")
def pair(digits_pair):
    return digits_pair


@pytest.mark.parametrize("domain", ["fashion-mnist", "imagenet"])
def test_target_recognisability_is_the_judges_argmax_of_the_displayed_delta(pair, domain):
    models, x, y = pair
    target = targets.choose(models[0], x, targets.RUNNER_UP, y=y)
    deltas = recognisable.perturbations(
        models[:1], x, y, {"bim": {"eps": 0.2, "steps": 5}}, copies=2, sigma=0.1, target=target
    )
    rows = recognisable.target_recognisability_table(models, y, target, deltas, domain)
    assert len(rows) == 3 * len(models)
    peak = domains.get(domain).averaging["peak"]
    for r in rows:
        delta = deltas[(r["attack"], r["setting"])]
        # Written out again: scale so the largest value is the peak, clip to an image, ask the judge.
        shown = (delta * peak / delta.amax(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)
        judge = next(m for m in models if m.name == r["model"])
        with torch.no_grad():
            pred = judge(shown).argmax(1)
        assert r["target class share"] == pytest.approx(float((pred == target).float().mean()))
        assert r["source class share"] == pytest.approx(float((pred == y).float().mean()))
        assert (pred == r["most common class"]).sum() == torch.bincount(pred, minlength=10).max()


def test_targeted_display_has_the_peak_as_its_maximum():
    delta = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.01  # both signs
    for domain, peak in (("fashion-mnist", 1.0), ("imagenet", 0.5)):
        shown = recognisable.display_normalise(delta, domain, targeted=True)
        assert torch.allclose(shown.flatten(1).amax(1), torch.full((3,), peak))
        # Where δ is largest the picture is brightest, and negative δ is black.
        assert bool((shown.flatten(1).argmax(1) == delta.flatten(1).argmax(1)).all())
        assert float(shown[delta < 0].max()) == 0.0
    assert torch.allclose(
        recognisable.display_normalise(delta, "imagenet", True, peak=0.25).flatten(1).amax(1), torch.full((3,), 0.25)
    )


def test_square_from_zero_starts_at_zero_and_stays_within_its_budget(digits):
    model, x, y = digits
    x, y = x[:8], y[:8]
    start = attacks.run("square", model, x, y=y, eps=0.1, n_queries=1, zero_init=True)
    assert torch.equal(start.x_adv, x)  # one query: the starting point itself, δ = 0
    stripes = attacks.run("square", model, x, y=y, eps=0.1, n_queries=1)
    assert float((stripes.x_adv - x).abs().amax()) > 0.09  # the paper's start is ±ε everywhere (bar clipping)
    # Unclipped (as averaging runs it), every pixel is 0 or ±ε; squares that were never kept leave zeros.
    res = averaged("square", [model], x, y=y, eps=0.1, n_queries=100, zero_init=True)
    levels = torch.unique(res.delta.abs())
    assert bool(((levels == 0) | torch.isclose(levels, torch.tensor(0.1))).all())
    assert float((res.delta == 0).float().mean()) > 0.1


def test_averaged_square_is_the_mean_of_its_per_copy_perturbations(digits):
    model, x, y = digits
    x, y = x[:6], y[:6]
    noise = torch.randn(1, 3, *x.shape, generator=torch.Generator().manual_seed(4)) * 0.2
    final = {}

    def keep(step, total, state):  # the attack's own iterate: every row's x_best, updated in place
        final["x"] = state["x_adv"]

    res = averaged(
        "square", [model], x, y=y, copies=3, noise=noise, eps=0.15, n_queries=60, zero_init=True, callback=keep
    )
    per_copy = (final["x"] - (x[None] + noise[0]).reshape(-1, *x.shape[1:])).view(3, *x.shape)
    assert float(per_copy.abs().amax()) <= 0.15 + 1e-6
    assert torch.allclose(res.delta, per_copy.mean(0), atol=1e-6)


def test_energy_in_the_mask_is_the_share_of_squared_delta_inside():
    delta = torch.zeros(3, 2, 2, 2)
    delta[0, 0] = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    delta[0, 1] = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    delta[1] = 0.5  # even: scores the mask's area
    mask = torch.tensor([[True, False], [False, False]]).expand(3, 1, 2, 2)
    share = masking.energy_in_mask(delta, mask)
    assert share[0] == pytest.approx(1.0 / (1 + 4 + 9))
    assert share[1] == pytest.approx(0.25)
    assert torch.isnan(share[2])  # δ = 0: no energy to share out


def test_the_control_moves_the_pixels_the_quantised_delta_moves(pair):
    models, x, y = pair
    delta = torch.zeros_like(x)
    delta[:, :, 2:5, 2:5] = 0.05
    control = masking._control(x, recognisable.sign_quantise(delta, 0.2), 0.2, seed=0)
    assert torch.equal(control != 0, delta != 0) and bool((control.abs()[delta != 0] == 0.2).all())


@pytest.mark.slow
def test_copies_sweep_rows_are_what_their_deltas_give(pair):
    models, x, y = pair
    mask = masking.threshold_mask(x, 0.3)
    params = {"eps": 0.2, "n_queries": 40, "zero_init": True}
    rows = masking.copies_sweep(models[:1], models[1:], x, y, mask, "square", params, copies=(1, 3), sigma=0.1)
    assert [r["copies"] for r in rows] == [1, 3]
    for r in rows:
        again = averaged("square", models[:1], x, y=y, copies=r["copies"], sigma=0.1, **params).delta
        assert torch.equal(r["delta"], again)  # seeded: the same search
        assert r["energy in object"] == pytest.approx(float(masking.energy_in_mask(again, mask).nanmean()), rel=1e-6)
        assert r["moved"] == pytest.approx(float((again.abs().amax(1) > 0).float().mean()))
        parts = masking.contour_vs_background(models[1:], x, y, again, mask, 0.2)
        alone = next(p["accuracy"] for p in parts if p["part"] == "object" and p["perturbation"] == "δ'")
        assert r["object δ'"] == alone
    with pytest.raises(ValueError, match="copies"):
        masking.copies_sweep(models[:1], models[1:], x, y, mask, "square", params, copies=(0,))


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


SMALL = ["--models", "fmnist-lenet-0", "--black", "fmnist-lenet-1", "--n", "4", "--copies", "2"]


@pytest.mark.slow
def test_targeted_recognizability_from_the_cli(capsys):
    rows = _run(capsys, "recognizability", *SMALL, "--steps", "3", "--targeted", "--json")
    assert {r["setting"] for r in rows} == set(recognisable.SETTINGS)
    assert all(0 <= r["target class share"] <= 1 and 0 <= r["source class share"] <= 1 for r in rows)
    named = _run(capsys, "recognizability", *SMALL, "--steps", "3", "--images", "0", "1", "--targeted", "Bag", "--json")
    assert len(named) == 3
    plain = _run(capsys, "recognizability", *SMALL, "--steps", "3", "--json")
    assert "target class share" not in plain[0]


@pytest.mark.slow
def test_square_from_zero_through_the_contour_command(capsys):
    out = _run(
        capsys,
        "contour",
        *SMALL,
        "--attack",
        "square",
        "--zero-init",
        "--n-queries",
        "30",
        "--sweep-steps",
        "0",
        "--linf-values",
        "0.1",
        "--copies-sweep",
        "1",
        "2",
        "--json",
    )
    assert [r["copies"] for r in out["copies_sweep"]] == [1, 2]
    assert set(out["energy in object"]) == set(recognisable.SETTINGS)
    assert all(0 <= r["energy in object"] <= 1 for r in out["copies_sweep"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["recognizability", "--steps", "1", "--targeted", "99"], "target class 99 is outside 0–9"),
        (["recognizability", "--steps", "1", "--targeted", "hat"], "neither a class index nor a class name"),
        # Test image 2 is a trouser: it cannot be aimed at its own class.
        (["recognizability", "--steps", "1", "--images", "2", "--targeted", "Trouser"], "target must differ"),
        (["contour", "--attack", "square", "--n-queries", "5", "--copies-sweep", "0"], "copies must be"),
        (["strength", "--attack", "square", "--zero-init", "--targeted"], "unrecognized arguments: --targeted"),
    ],
)
def test_bad_targets_and_sweeps_get_one_line(capsys, args, message):
    assert main([*args[:1], *SMALL, *args[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
