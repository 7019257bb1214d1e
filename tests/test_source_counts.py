"""The thesis' judging protocol (the true class among K choices) and the curve over the number of source models."""

import argparse
import json
from types import SimpleNamespace

import pytest
import torch

from engine import models
from engine.analysis import recognisable, source_counts
from engine.attacks.averaging import averaged
from engine.cli import main
from engine.datasets import fashion_mnist
from engine.metrics import predict_labels
from engine.zoo import ensemble

FM = "fashion-mnist"


@pytest.fixture(scope="module")
def lenets():
    """Cheap Fashion-MNIST sources and a judge, and 8 test images all of them classify correctly."""
    sources = [models.load(n, device="cpu") for n in ("fmnist-lenet-0", "fmnist-mlp-0", "fmnist-lenet-robust-0")]
    judge = models.load("fmnist-lenet-1", device="cpu")
    x, y = fashion_mnist.evaluation_slice(64)
    right = torch.stack([predict_labels(m, x) == y for m in [*sources, judge]]).all(0)
    return sources, judge, x[right][:8], y[right][:8]


def test_choices_hold_the_true_class_once_and_repeat_by_seed():
    y = torch.arange(300) % 1000
    sets = recognisable.choice_sets(y, 1000, 20, seed=3)
    assert sets.shape == (300, 20) and torch.equal(sets[:, 0], y)
    assert all(len(set(row)) == 20 and row.count(t) == 1 for row, t in zip(sets.tolist(), y.tolist()))
    assert int(sets.min()) >= 0 and int(sets.max()) < 1000
    assert torch.equal(sets, recognisable.choice_sets(y, 1000, 20, seed=3))
    assert not torch.equal(sets, recognisable.choice_sets(y, 1000, 20, seed=4))
    assert recognisable.choice_sets(y, 1000, 1000) is None and recognisable.choice_sets(y, 1000, None) is None
    with pytest.raises(ValueError, match="choices"):
        recognisable.choice_sets(y, 1000, 1)


def test_the_other_choices_are_drawn_evenly_from_every_other_class():
    # 4,000 images of class 3 with 2 other choices each: every other class drawn 8,000 · 1/9 times, none of them 3.
    sets = recognisable.choice_sets(torch.full((4000,), 3), 10, 3, seed=0)
    counts = torch.bincount(sets[:, 1:].flatten(), minlength=10)
    assert counts[3] == 0
    expected = 8000 / 9
    # Binomial sd ≈ 28: ±4.5 sd.
    assert all(abs(int(c) - expected) < 125 for i, c in enumerate(counts) if i != 3)


def test_a_judge_right_on_clean_images_is_right_among_any_k_and_all_is_the_argmax(lenets):
    _, judge, x, y = lenets
    for k in range(2, 11):
        sets = recognisable.choice_sets(y, 10, k, seed=k)
        assert torch.equal(recognisable.judge(judge, x, sets), y)
    # Noise it mostly gets wrong: among all classes the argmax itself; among K, right wherever it is right among
    # all, and right more often.
    noise = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 10
    full = recognisable.judge(judge, noise)
    assert torch.equal(full, predict_labels(judge, noise))
    among = recognisable.judge(judge, noise, recognisable.choice_sets(labels, 10, 2, seed=0))
    assert bool(((full == labels) <= (among == labels)).all())
    assert int((among == labels).sum()) > int((full == labels).sum())


def test_recognisability_table_with_every_class_is_the_old_figure(lenets):
    sources, judge, x, y = lenets
    delta = averaged("bim", sources[:1], x, y=y, eps=0.2, steps=3).delta
    deltas = {("bim", "single-model"): delta}
    old = float((predict_labels(judge, recognisable.display_normalise(delta, FM)) == y).float().mean())
    for choices in (None, 10, 25):
        (row,) = recognisable.recognisability_table([judge], y, deltas, FM, choices=choices)
        assert row["source class share"] == old and row["choices"] == 10
    (row,) = recognisable.recognisability_table([judge], y, deltas, FM, choices=2, seed=1)
    assert row["choices"] == 2 and row["source class share"] >= old


@pytest.mark.slow
def test_the_curve_averages_nested_source_sets(lenets):
    sources, judge, x, y = lenets
    sources = [*sources, judge]  # four sources; any model will do for the arithmetic
    params, copies, sigma = {"eps": 0.2, "steps": 3}, 2, 0.2
    run = dict(copies=copies, sigma=sigma, seed=5)
    done = {}  # a first run over two sources, then the whole curve reusing their δ
    source_counts.nested_deltas(sources, x, y, "bim", params, [2], **run, done=done)
    assert sorted(done) == [0, 1]
    deltas = source_counts.nested_deltas(sources, x, y, "bim", params, [4, 1, 2], **run, done=done)
    assert list(deltas) == [1, 2, 4] and sorted(done) == [0, 1, 2, 3]
    # Each point is the plain average over the first k sources with the same seed: the 1-source point is the
    # single-source average, the 4-source point the all-sources one, and the 2-source point uses the 4-set's first
    # two models on the 4-set's noise (nested).
    one = averaged("bim", sources[:1], x, y=y, copies=copies, sigma=sigma, seed=5, **params).delta
    four = averaged("bim", sources, x, y=y, copies=copies, sigma=sigma, seed=5, **params).delta
    noise = torch.randn((4, copies, *x.shape), generator=torch.Generator().manual_seed(5)) * sigma
    two = averaged("bim", sources[:2], x, y=y, copies=copies, noise=noise[:2], **params).delta
    torch.testing.assert_close(deltas[1], one, atol=1e-5, rtol=0)
    torch.testing.assert_close(deltas[2], two, atol=1e-5, rtol=0)
    torch.testing.assert_close(deltas[4], four, atol=1e-5, rtol=0)
    assert not torch.allclose(deltas[1], deltas[4])
    # The first point of both curves is the single-source figure.
    single = {("bim", "noisy multi-model"): one}
    strength = source_counts.strength_curve([judge], x, y, "bim", deltas, 0.2)
    assert [r["sources"] for r in strength] == [None, None, 1, 2, 4]
    (want,) = [r for r in recognisable.strength_table([judge], x, y, single, 0.2) if r["attack"] == "bim"]
    assert strength[2]["accuracy"] == want["accuracy"]
    rec = source_counts.recognisability_curve([judge], y, "bim", deltas, FM)
    (want,) = recognisable.recognisability_table([judge], y, single, FM)
    assert rec[0]["sources"] == 1 and rec[0]["source class share"] == want["source class share"]
    assert source_counts.mean_by_count(rec, "source class share")[1] == want["source class share"]
    for bad in ([0], [5], [2.5], []):
        with pytest.raises(ValueError, match="source counts"):
            source_counts.nested_deltas(sources, x, y, "bim", params, bad, copies=1, sigma=0.0)


def test_the_ensemble_pool_keeps_the_first_sources_first_in_a_seeded_order(monkeypatch):
    planned = [ensemble.model_name(a, s) for a, s, *_ in ensemble.PLAN]
    monkeypatch.setattr(ensemble, "names", lambda: planned)
    pool = ensemble.pool(["a", planned[0]], seed=0)
    assert pool[:2] == ["a", planned[0]] and sorted(pool[2:]) == sorted(planned[1:])
    assert pool == ensemble.pool(["a", planned[0]], seed=0) and pool != ensemble.pool(["a", planned[0]], seed=1)
    # A model's place does not move as more are trained: with half of them, the order is the same subsequence.
    monkeypatch.setattr(ensemble, "names", lambda: planned[::2])
    half = ensemble.pool(["a", planned[0]], seed=0)
    assert half == [n for n in pool if n in {"a", *planned[::2]}]


@pytest.mark.slow
def test_every_ensemble_model_loads_and_scores_its_card():
    rows = ensemble.read()
    assert len(rows) >= 32 and {r["arch"] for r in rows.values()} >= {"lenet", "mlp", "vgg", "resnet", "densenet"}
    assert sum(r["bytes"] for r in rows.values()) < 15 * 2**20
    assert not set(rows) & set(models.names())  # not in the registry: no picker or every-model loop sees them
    assert (ensemble.DIR / "README.md").read_text() == ensemble.card()
    x, y = fashion_mnist.evaluation_slice(500)
    checked = set()
    for name, row in rows.items():
        assert row["seed"] >= 2  # the zoo's seed-1 models judge: the ensemble must not hold a twin of one
        model = ensemble.load(name, "cpu")
        # One model per family reproduces its card on all 500 images; the others load and classify 100.
        n = 100 if row["arch"] in checked else 500
        accuracy = float((predict_labels(model, x[:n]) == y[:n]).float().mean())
        assert accuracy == pytest.approx(row["slice500_accuracy"], abs=1e-3) if n == 500 else accuracy >= 0.7, name
        checked.add(row["arch"])


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.slow
def test_cli_source_counts_and_choices(capsys):
    small = ["--models", "fmnist-lenet-0", "fmnist-mlp-0", "--black", "fmnist-lenet-1", "--n", "4"]
    small += ["--attack", "bim", "--steps", "2", "--copies", "2", "--json"]
    rows = _run(capsys, "recognizability", *small, "--source-counts", "2", "1", "--choices", "3")
    assert sorted(r["sources"] for r in rows) == [1, 2] and {r["choices"] for r in rows} == {3}
    rows = _run(capsys, "strength", *small, "--source-counts", "1", "2")
    assert [r["sources"] for r in rows] == [None, None, 1, 2]
    assert main(["strength", *small, "--source-counts", "3"]) != 0  # more than the two sources given
    assert main(["recognizability", *small, "--choices", "one"]) != 0
    capsys.readouterr()


def test_cli_choices_default_to_the_domains():
    from engine.cli import options
    from engine.cli.recognisable import _choices

    photo, grey = SimpleNamespace(domain="imagenet", num_classes=1000), SimpleNamespace(domain=FM, num_classes=10)
    assert _choices(SimpleNamespace(choices=None), photo) == 20  # the thesis' judges chose among 20
    assert _choices(SimpleNamespace(choices=None), grey) == 10
    assert _choices(SimpleNamespace(choices="all"), photo) is None
    assert _choices(SimpleNamespace(choices=50), grey) == 10
    assert options.choices("7") == 7 and options.choices("all") == "all"
    for bad in ("1", "one", "-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="at least 2"):
            options.choices(bad)
