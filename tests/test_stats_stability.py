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
    # Three close values (measured): the MAD is the smaller gap, 0.001; 2.4% off is no outlier.
    assert check_outlier_reps("p50_ms", [0.319, 0.32, 0.3275], TH) is None
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


def _scipy_drift(t, y, th):
    """check_drift's rule computed straight from scipy.stats.theilslopes (no gate)."""
    from scipy import stats

    ok = np.isfinite(y)
    tt, yy = t[ok], y[ok]
    if tt.size < 4:
        return False
    slope, intercept, low, high = stats.theilslopes(yy, tt)
    start, end = intercept + slope * tt[0], intercept + slope * tt[-1]
    change = (end - start) / abs(start)
    return bool(
        (low > 0 or high < 0) and abs(change) > th.drift_min_change and abs(slope * np.ptp(t)) > th.drift_min_abs
    )


def test_drift_gate_gives_scipys_verdict():
    # The numpy point estimate only skips scipy where no flag is possible: same verdict on series
    # that trend a little, a lot, with ties and with empty windows.
    rng = np.random.default_rng(5)
    for i in range(400):
        n = int(rng.integers(4, 30))
        t = np.arange(n, dtype=float)
        y = rng.uniform(0.5, 20) * (1 + rng.uniform(-1.5, 1.5) * t / n) + rng.normal(0, rng.uniform(0.01, 3), n)
        if i % 3 == 1:
            y = np.round(y)
        if i % 3 == 2:
            y[rng.integers(0, n)] = np.nan
        assert (check_drift(t, y, TH) is not None) == _scipy_drift(t, y, TH), i


def test_checks_of_a_steady_point_do_not_import_scipy(tmp_path):
    # The run and collect jobs of every point check it; scipy.stats costs ~1 s of CPU to import,
    # so a point that does not trend must not pay for it (a trending one does: see above).
    code = (
        "import sys, numpy as np\n"
        "from benchpipe.stats.stability import Series, Thresholds, check_drift, check_stall, check_warmup\n"
        "rng = np.random.default_rng(0)\n"
        "t = np.sort(rng.uniform(0, 10, 2000)); lat = 5 * rng.lognormal(0, 0.2, t.size)\n"
        "s = Series.from_events(t, lat, 0.0, 10.0); th = Thresholds()\n"
        "assert check_drift(s.t, s.p50, th) is None and check_stall(s, th) is None and check_warmup(s, th) is None\n"
        "assert 'scipy.stats' not in sys.modules, 'scipy.stats imported'\n"
        "s = Series.from_events(t, lat * (1 + t / 10), 0.0, 10.0)\n"
        "assert check_drift(s.t, s.p50, th) is not None and 'scipy.stats' in sys.modules\n"
    )
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
