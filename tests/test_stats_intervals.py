"""Known-answer tests of the median interval (seeded)."""

import math

import numpy as np
import pytest

from benchpipe.stats.intervals import Interval, median_interval


def test_interval_covers_true_median_in_at_least_90_of_100_runs():
    rng = np.random.default_rng(20)
    # Lognormal(0, 0.5): skewed like latencies; true median exp(0) = 1.
    covered = sum(
        iv.low <= 1.0 <= iv.high for iv in (median_interval(rng.lognormal(0.0, 0.5, 30), seed=i) for i in range(100))
    )
    assert covered >= 90


def test_interval_is_narrower_with_more_values():
    rng = np.random.default_rng(1)
    small = median_interval(rng.normal(10, 2, 10))
    large = median_interval(rng.normal(10, 2, 400))
    assert large.high - large.low < small.high - small.low
    assert small.low <= small.estimate <= small.high


def test_fewer_than_two_values_have_no_interval():
    one = median_interval([4.0])
    assert one == Interval(4.0, one.low, one.high, 1, "none")
    assert math.isnan(one.low) and math.isnan(one.high)
    assert median_interval([]).n == 0
    assert median_interval([float("nan"), 3.0]).kind == "none"


def test_kind_and_equal_values():
    iv = median_interval([2.0, 2.0, 2.0], kind="within-run")
    assert (iv.estimate, iv.low, iv.high, iv.n, iv.kind) == (2.0, 2.0, 2.0, 3, "within-run")
    with pytest.raises(ValueError, match="kind"):
        median_interval([1.0, 2.0], kind="bogus")


def test_seeded_interval_is_reproducible():
    values = [1.0, 3.0, 2.0, 8.0, 5.0]
    assert median_interval(values, seed=3) == median_interval(values, seed=3)
