"""A figure's target judges the paper's claims about it and prints the verdict; compare runs as a
target: the tiny Halfmoon sweep of test_pipeline_e2e, through the snakemake command line."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from tests.test_pipeline_e2e import job_counts, make_workdir, snakemake

pytestmark = [pytest.mark.slow]


def test_figure_target_judges_claims_prints_verdict_and_compares(tmp_path, no_stray_stack):
    wd = make_workdir(tmp_path, baselines=("unsafe", "boki"), rates=(20,))
    out = snakemake(wd, "figures/hotel.png")
    text = out.stdout + out.stderr
    assert job_counts(text)["claims"] == 1

    claims = {r["claim"]: r for r in pl.read_csv(wd / "results" / "hotel" / "claims-hotel.csv").to_dicts()}
    # Unsafe logs nothing, Boki fsyncs every read and write: sub-ms against ~15 ms, one point each.
    assert claims["unsafe-below-boki-p50"]["verdict"] == "reproduced"
    assert claims["unsafe-below-boki-p50"]["basis"].startswith("estimates only (n = 1")
    assert "qps=20: Unsafe" in claims["unsafe-below-boki-p50"]["detail"]
    # The narrowed sweep has no Halfmoon-read: said, not an error; the ratio is not for the stand-in.
    assert claims["hm-read-below-boki-p50"]["verdict"] == "no data"
    assert claims["hm-read-boki-ratio"]["verdict"] == "not applicable locally"
    assert claims["hm-read-boki-ratio"]["source"].startswith("Halfmoon (SOSP'23) abstract")

    # The end-of-run verdict on the terminal.
    assert "hotel: claims: 1 reproduced, 1 no data, 1 not applicable locally; unstable points: none" in out.stdout
    assert "  reproduced (n=1)        unsafe-below-boki-p50: " in out.stdout

    again = snakemake(wd, "figures/hotel.png")
    assert "Nothing to be done" in again.stdout + again.stderr

    # compare against another run's folder (a copy standing in for results-ssh): one repetition,
    # so each point is tested on its per-second windows; the same numbers on both sides: ~.
    shutil.copytree(wd / "results" / "hotel", wd / "results-ssh" / "hotel")
    cmp = snakemake(wd, "compare", "--config", "compare_with=results-ssh")
    line = next(x for x in cmp.stdout.splitlines() if x.startswith("  boki qps=20"))
    assert "hotel: p50_ms" in cmp.stdout and " ~ (p=1 " in line and line.endswith("per-second windows")
    assert (wd / "results" / "compare" / "hotel.png").exists()
    assert "Nothing to be done" in snakemake(wd, "figures/hotel.png").stderr
