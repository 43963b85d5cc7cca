"""The stability checks' statistics on measured points, against their limits (docs/statistics.md).

For every measurement attempt of every point under the given results folders (a point's raw/ and
its raw/attempts/<k>/), the numbers the re-measuring checks (drift, stall) compare with their
limits: the per-second p50's fitted change (Theil-Sen) and whether its 95% interval excludes 0, the
worst window's p99 over the median window's, and the empty windows. Points where the generator fell
behind or the stack left calls unfinished are marked (overload, not instability). The limits in
config `stability:` should sit above what stationary points show, with room.

    python benchmarks/stability_calibration.py RESULTS [RESULTS ...] [--stability-json '{...}']
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchpipe.stats.point import _calls, _json, _phases  # noqa: E402
from benchpipe.stats.stability import Series, Thresholds, check_drift, check_stall, check_warmup  # noqa: E402


def point_numbers(raw: Path, th: Thresholds) -> dict | None:
    rep, timing = _json(raw / "measure.json"), _json(raw / "timing.json")
    calls = _calls(raw, 0.0)
    phases = _phases(raw, rep, timing, calls)
    if calls is None or phases is None:
        return None
    _d, finished, lat = calls
    sent = int(rep.get("sent", 0) or 0) + int(_json(raw / "warmup.json").get("sent", 0) or 0)
    (t0, t1), warm = phases
    s = Series.from_events(finished, lat, t0, t1)
    from scipy import stats

    ok = np.isfinite(s.p50)
    t, y = s.t[ok], s.p50[ok]
    slope, intercept, low, high = stats.theilslopes(y, t)
    start, end = intercept + slope * t[0], intercept + slope * t[-1]
    p99 = s.p99[np.isfinite(s.p99)]
    ref = float(np.median(p99)) if p99.size else float("nan")
    worst = float(p99.max()) if p99.size else float("nan")
    flags = [f.name for f in (check_drift(s.t, s.p50, th), check_stall(s, th)) if f]
    if warm is not None:
        w = Series.from_events(finished, lat, *warm, 1.0 if warm[1] - warm[0] >= 8 else (warm[1] - warm[0]) / 8)
        flags += [f.name for f in (check_warmup(w, th),) if f]
    return {
        "change": float((end - start) / abs(start)) if abs(start) > 1e-12 else float("nan"),
        "abs_ms": float(slope * np.ptp(s.t)),
        "ci_excl_0": bool(low > 0 or high < 0),
        "p99_ratio": worst / ref if ref > 0 else float("nan"),
        "p99_gap_ms": worst - ref,
        "empty": int((s.count == 0).sum()),
        # Overload, not instability: the generator fell behind, or the stack left calls unfinished
        # at the end of the run stage's wait for them.
        "overload": bool(rep.get("fell_behind")) or finished.size < sent,
        "flags": flags,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--stability-json", default="{}", help="limits to judge with (config `stability:`)")
    args = ap.parse_args()
    th = Thresholds.from_config(json.loads(args.stability_json))
    rows = []
    for res in args.results:
        for raw in sorted(res.glob("*/*/*/raw")):
            for folder in [*sorted(p for p in (raw / "attempts").glob("*") if p.is_dir()), raw]:
                got = point_numbers(folder, th)
                if got:
                    rows.append((str(folder.relative_to(res)), got))
    if not rows:
        print("no point with per-call records found")
        return 1
    print(f"{'point':48s} {'change':>7s} {'abs ms':>7s} {'CI!0':>4s} {'p99 x':>6s} {'gap ms':>7s} {'empty':>5s}  flags")
    for name, r in rows:
        print(
            f"{name:48s} {r['change']:+7.0%} {r['abs_ms']:+7.2f} {'yes' if r['ci_excl_0'] else '':>4s} "
            f"{r['p99_ratio']:6.1f} {r['p99_gap_ms']:7.1f} {r['empty']:5d}  "
            f"{','.join(r['flags'])}{' (overload)' if r['overload'] else ''}"
        )
    steady = [r for _, r in rows if not r["overload"]]
    print(f"\n{len(rows)} measurements, {len(steady)} where the generator and the stack kept up; of those:")
    for key, what in (
        ("change", "|fitted change|"),
        ("abs_ms", "|fitted change| ms"),
        ("p99_ratio", "worst/median window p99"),
    ):
        v = np.abs([r[key] for r in steady if np.isfinite(r[key])])
        print(f"  {what:26s} median {np.median(v):.3g}  p90 {np.percentile(v, 90):.3g}  max {v.max():.3g}")
    flagged = [r for r in steady if set(r["flags"]) & set(th.rerun_flags)]
    print(f"  flagged for re-measurement at these limits: {len(flagged)} of {len(steady)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
