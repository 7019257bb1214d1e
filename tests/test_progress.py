"""The progress/cancel protocol (engine.progress): one bar over nested work, and Cancel keeps what finished."""

import pytest

from engine import progress
from engine.analysis import checkerboard, jsma_extras, recognisable, transfer


class Bar:
    """A page's bar: records (step, total) and says stop after `stop_after` calls."""

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def __call__(self, step, total, state):
        self.calls.append((step, total, dict(state)))
        return self.stop_after is None or len(self.calls) < self.stop_after


def test_parts_move_one_bar_from_start_to_end():
    bar = Bar()
    for i in range(3):
        inner = progress.part(bar, i, 3, sigma=i / 10)
        for s in range(1, 5):
            inner(s, 4, {"upper_bound": True})
    steps = [c[0] for c in bar.calls]
    assert steps == sorted(steps) and steps[-1] == pytest.approx(3) and {c[1] for c in bar.calls} == {3}
    assert bar.calls[5][2] == {"sigma": 0.1, "part": 2, "parts": 3}  # a part's cap is not the whole's
    assert progress.part(None, 0, 3) is None


def test_a_transfer_plan_cancelled_keeps_the_finished_runs(digits_pair):
    (white, black), x, y = digits_pair
    bar = Bar()
    jobs = transfer.plan(["tpgd", "itcm"], [0.1, 0.2])
    full = transfer.run_plan(white, [black], jobs, x, y, steps=3, callback=bar)
    assert len(full) == 4 and bar.calls[-1][0] == pytest.approx(4)
    calls_per_job = len(bar.calls) // 4
    cut = transfer.run_plan(white, [black], jobs, x, y, steps=3, callback=Bar(stop_after=2 * calls_per_job + 1))
    assert cut == full[:2]  # the third run was cut short: it measures nothing


def test_checkerboard_and_averaging_stop_where_they_are_told(digits):
    model, x, y = digits
    bar = Bar(stop_after=4)
    rows = checkerboard.checkerboard(model, x[:1], sigmas=(0.05, 0.2, 0.5), copies=4, eps=0.2, steps=3, callback=bar)
    assert len(rows) == 1 and max(c[0] for c in bar.calls) < 2  # σ = 0.05 finished, σ = 0.2 was cut
    deltas = recognisable.perturbations(
        [model], x[:2], y[:2], {"bim": {"eps": 0.2, "steps": 3}}, copies=2, sigma=0.1, callback=Bar(stop_after=5)
    )
    assert list(deltas) == [("bim", "single-model"), ("bim", "multi-model")]


def test_hardness_over_pairs_reports_once_per_pair_and_keeps_finished_pairs(digits):
    model, x, y = digits
    bar = Bar()
    rows = jsma_extras.hardness_matrix(model, x, y, classes=[0, 1, 2], per_pair=2, max_distortion=0.1, callback=bar)
    assert len(rows) == 6 and bar.calls[-1][1] == 6 and {c[2]["part"] for c in bar.calls} == set(range(1, 7))
    two_pairs = sum(c[2]["part"] <= 2 for c in bar.calls)
    cut = jsma_extras.hardness_matrix(
        model, x, y, classes=[0, 1, 2], per_pair=2, max_distortion=0.1, callback=Bar(stop_after=two_pairs + 1)
    )
    assert cut == rows[:2]
