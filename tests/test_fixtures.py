"""The committed test fixtures: the digits CNNs load as recorded, and training them still works.

The other tests never train what they measure; this file keeps the training code honest
without comparing its bits with the committed ones (those depend on the CPU that made them).
"""

import pytest
from tiny_models import (
    accuracy,
    fixture_seed,
    held_out,
    load_digits_classifier,
    recorded_accuracy,
    train_digits_net,
    wrap,
)


@pytest.mark.parametrize("which", [0, 1])
def test_committed_fixture_has_its_recorded_accuracy(which):
    recorded = recorded_accuracy(fixture_seed() + which)
    assert recorded is not None, "tests/fixtures/digits-cnn.json has no entry: rerun make_tiny_models.py"
    x, y = held_out()
    # Same weights, other CPU: only a near-tie between two logits may flip (none seen); 1 image of 300 allowed.
    assert abs(accuracy(load_digits_classifier(which), x, y) - recorded) <= 1 / 300 + 1e-4


@pytest.mark.slow
def test_training_the_digits_cnn_reaches_its_accuracy():
    # Measured on the 300 held-out digits for seeds 0, 1, 10, 11, 20, 21, 30, 31: 0.933-0.953.
    # 0.88 is 4 standard errors (0.014 at n = 300) below the lowest.
    assert accuracy(wrap(train_digits_net(seed=5)), *held_out()) >= 0.88
