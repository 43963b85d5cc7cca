"""Stability checks on synthetic series with known answers (seeded)."""

import numpy as np

from benchpipe.stats.stability import (
    Series,
    Thresholds,
    check_drift,
    check_errors,
    check_outlier_reps,
    check_stall,
    check_views,
    check_warmup,
    join,
    row_flags,
)

TH = Thresholds()


def events(rng, seconds=10.0, rate=200, base_ms=5.0, growth=0.0, stall=None):
    """Completion times over `seconds` at `rate`/s, latency base_ms x (1 + growth x t/seconds) with
    noise; no completion inside the `stall` (start, end) interval."""
    t = np.sort(rng.uniform(0, seconds, int(rate * seconds)))
    lat = base_ms * (1 + growth * t / seconds) * rng.lognormal(0, 0.2, t.size)
    if stall:
        t = t[(t < stall[0]) | (t >= stall[1])]
        lat = lat[: t.size]
    return t, lat


def test_stationary_series_is_not_flagged():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        t, lat = events(rng)
        s = Series.from_events(t, lat, 0.0, 10.0)
        assert check_drift(s.t, s.p50, TH) is None, seed
        assert check_stall(s, TH) is None, seed
        assert check_warmup(s, TH) is None, seed


def test_latency_rising_2x_across_the_window_is_drift():
    rng = np.random.default_rng(1)
    t, lat = events(rng, growth=1.0)
    s = Series.from_events(t, lat, 0.0, 10.0)
    flag = check_drift(s.t, s.p50, TH)
    assert flag is not None and flag.name == "drift" and "rose" in flag.detail


def test_one_second_stall_in_ten_is_flagged():
    rng = np.random.default_rng(2)
    t, lat = events(rng, stall=(4.0, 5.0))
    flag = check_stall(Series.from_events(t, lat, 0.0, 10.0), TH)
    assert flag is not None and flag.name == "stall" and "1 of 10" in flag.detail and "4 s" in flag.detail


def test_window_with_a_far_higher_p99_is_a_stall():
    rng = np.random.default_rng(3)
    t, lat = events(rng)
    lat = np.where((t >= 6) & (t < 7), lat + 1500.0, lat)  # answers held 1.5 s in one window
    flag = check_stall(Series.from_events(t, lat, 0.0, 10.0), TH)
    assert flag is not None and "p99 of the window at 6 s" in flag.detail
    # Sub-millisecond windows: 11x the median but 8 ms above it is noise, not a stall.
    t, lat = events(np.random.default_rng(3), base_ms=0.5)
    lat = np.where((t >= 6) & (t < 7), lat + 8.0, lat)
    assert check_stall(Series.from_events(t, lat, 0.0, 10.0), TH) is None


def test_warmup_still_falling_is_flagged_with_its_slope():
    rng = np.random.default_rng(4)
    t, lat = events(rng, seconds=8.0, base_ms=40.0, growth=-0.8)  # cold start: 40 ms -> 8 ms
    flag = check_warmup(Series.from_events(t, lat, 0.0, 8.0), TH)
    assert flag is not None and flag.name == "warmup_short" and "falling" in flag.detail and "ms/s" in flag.detail


def test_outlier_repetition_and_errors_and_views():
    assert check_outlier_reps("p50_ms", [10.0, 10.4, 9.8, 10.1, 30.0], TH).detail.startswith("p50_ms: rep 5 = 30")
    assert check_outlier_reps("p50_ms", [10.0, 10.4, 9.8], TH) is None
    assert check_errors(5, 1000, TH) is None and check_errors(50, 1000, TH).name == "errors"
    assert check_views(3.0, 2100.0, 0.0, TH).name == "views_disagree"
    assert check_views(3.0, 4.0, 0.001, TH) is None


def test_flags_round_trip_through_the_summary_columns():
    rng = np.random.default_rng(2)
    t, lat = events(rng, stall=(4.0, 5.0))
    flags = [check_stall(Series.from_events(t, lat, 0.0, 10.0), TH), check_errors(50, 1000, TH)]
    names, detail = join(flags)
    assert names == "stall;errors"
    assert [n for n, _ in row_flags({"flags": names, "flag_detail": detail})] == ["stall", "errors"]
    assert row_flags({"flags": "", "flag_detail": ""}) == []
