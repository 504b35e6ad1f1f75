import math
from datetime import timedelta

import pytest

from memory.clock import FrozenClock
from memory.forgetting import ForgettingConfig, initial_strength, reinforce, retention
from memory.timeutil import days_between

from tests.helpers import T0


@pytest.mark.parametrize(
    ("elapsed", "strength", "expected"),
    [
        (0.0, 1.0, 1.0),
        (1.0, 1.0, math.exp(-1)),
        (2.0, 1.0, math.exp(-2)),
        (5.0, 10.0, math.exp(-0.5)),
        (30.0, 30.0, math.exp(-1)),
        (-3.0, 5.0, 1.0),  # a time before the last recall counts as no time at all
    ],
)
def test_retention_is_exp_of_minus_elapsed_over_strength(elapsed, strength, expected):
    assert retention(elapsed, strength) == pytest.approx(expected, rel=1e-12)


def test_stronger_memories_fade_slower_not_faster():
    # MemoryBank's exp(-t / 5*S) bug makes this fail: there a larger S fades faster.
    assert retention(10.0, 20.0) > retention(10.0, 2.0)


def test_retention_rejects_non_positive_strength():
    with pytest.raises(ValueError):
        retention(1.0, 0.0)


def test_frozen_clock_drives_the_curve():
    clock = FrozenClock(T0)
    last_recall = clock()
    clock.advance(days=7)
    assert retention(days_between(last_recall, clock()), 7.0) == pytest.approx(math.exp(-1))
    clock.advance(hours=12)
    assert days_between(last_recall, clock()) == pytest.approx(7.5)
    clock.set(T0 + timedelta(days=1))
    assert days_between(last_recall, clock()) == pytest.approx(1.0)


def test_initial_strength_grows_with_importance():
    cfg = ForgettingConfig(base_strength_days=10)
    assert initial_strength(0.0, cfg) == 5.0
    assert initial_strength(0.5, cfg) == 10.0
    assert initial_strength(1.0, cfg) == 15.0
    assert initial_strength(7.0, cfg) == 15.0  # clamped


def test_reinforce_always_grows_and_grows_more_when_faded():
    cfg = ForgettingConfig(recall_increment_days=1.0, recall_growth=1.0)
    fresh = reinforce(10.0, 1.0, cfg)
    faded = reinforce(10.0, 0.1, cfg)
    assert fresh == pytest.approx(11.0)
    assert faded == pytest.approx(10.0 + 1.0 + 10.0 * 0.9)
    assert faded > fresh > 10.0
