"""The end-of-run message names why each point without a result failed."""

from __future__ import annotations

from benchpipe.failures import why_failed


def test_the_latest_stage_with_an_error_gives_its_last_error_line(tmp_path):
    (tmp_path / "deploy.log").write_text("2026-12-03 10:00:00 benchpipe INFO ready\n")
    (tmp_path / "warmup.log").write_text("2026-12-03 10:00:01 x ERROR an earlier complaint\n")
    (tmp_path / "run.log").write_text(
        "2026-12-03 10:00:02 benchpipe INFO measuring\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "benchpipe.deployers.base.DeployError: service gateway exited with code 1 (its log: ...)\n"
    )
    assert why_failed(tmp_path) == (
        "run: benchpipe.deployers.base.DeployError: service gateway exited with code 1 (its log: ...)"
    )


def test_no_error_in_any_log_gives_nothing(tmp_path):
    (tmp_path / "run.log").write_text("2026-12-03 10:00:02 benchpipe INFO measuring\n")
    assert why_failed(tmp_path) is None
    assert why_failed(tmp_path / "missing") is None
