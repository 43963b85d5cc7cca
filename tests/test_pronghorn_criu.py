"""The CRIU path's rendered commands (golden) and Tables 4 and 5 as the artifact computes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workloads"))

from pronghorn import criu  # noqa: E402


def test_rendered_commands_are_the_artifacts():
    assert criu.dump_cmd(4242, "./checkpoint") == "criu dump -t 4242 --tcp-established --leave-running -D ./checkpoint"
    assert criu.restore_cmd("./restore") == "criu restore --restore-detached --tcp-close -d -D ./restore"
    assert criu.size_cmd("/tmp/a b") == "du -sb '/tmp/a b' | cut -f1"


def test_rendered_restore_and_pid_namespace_commands():
    """The host's restore writes the restored process's host pid (CRIU's --pidfile); an instance
    starts as the init of a pid namespace of its own, so its image restores into a new one."""
    assert (
        criu.restore_cmd("/s/images/after-3", "/s/images/restored.pid")
        == "criu restore --restore-detached --tcp-close -d -D /s/images/after-3 --pidfile /s/images/restored.pid"
    )
    argv = ["/v/bin/pypy3", "-m", "pronghorn.runtime", "--benchmark", "bfs"]
    assert criu.pidns_argv(argv, "unshare") == ["unshare", "--pid", "--fork", "--kill-child", "--", "setsid", *argv]
    # Through sudo the instance gets the host's uid and gid back (the host signals it).
    uid, gid = os.getuid(), os.getgid()
    assert criu.pidns_argv(argv, "sudo -n unshare") == [
        *("sudo", "-n", "unshare", "--pid", "--fork", "--kill-child", "--"),
        *("setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "setsid", *argv),
    ]


def test_table4_script_golden():
    script = criu.table4_script("pypy3 index.py", "curl -sf localhost:8080/", "/tmp/ck", cycles=10)
    assert script.splitlines() == [
        "set -euo pipefail",
        "ms() { date +%s%3N; }",
        "pypy3 index.py &",
        "pid=$!",
        "until curl -sf localhost:8080/; do sleep 0.1; done",
        "for cycle in $(seq 1 10); do",
        "  rm -rf /tmp/ck && mkdir -p /tmp/ck",
        "  t0=$(ms); criu dump -t $pid --tcp-established --leave-running -D /tmp/ck; t1=$(ms)",
        "  size=$(du -sb /tmp/ck | cut -f1)",
        "  kill -9 $pid; while kill -0 $pid 2>/dev/null; do sleep 0.01; done",
        "  t2=$(ms); criu restore --restore-detached --tcp-close -d -D /tmp/ck; t3=$(ms)",
        "  until curl -sf localhost:8080/; do sleep 0.01; done",
        '  printf \'{"cycle": %d, "dump_ms": %d, "restore_ms": %d, "size_bytes": %d}\\n\' '
        '"$cycle" "$((t1 - t0))" "$((t3 - t2))" "$size"',
        "done",
        "kill -9 $pid || true",
    ]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_tables_cli_from_table4_script_output(tmp_path):
    """The by-hand path: the Table 4 script's cycle records -> Tables 4 and 5 (the snapshot_costs
    metric's arithmetic, as cost-analysis/table_4.py and table_5.py compute them)."""
    cycles = [
        {"cycle": i, "dump_ms": d, "restore_ms": r, "size_bytes": 54_000_000 + 1_000_000 * i}
        for i, (d, r) in enumerate([(70, 30), (80, 34), (90, 32)])
    ]
    out = tmp_path / "bfs.jsonl"
    out.write_text("".join(json.dumps(c) + "\n" for c in cycles))
    res = subprocess.run(
        [sys.executable, "-m", "pronghorn.criu", "tables", f"bfs={out}"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workloads"), str(REPO)])},
    )
    t4, t5 = (json.loads(line) for line in res.stdout.splitlines())
    assert t4 == {
        "table": 4,
        "benchmark": "bfs",
        "size_mb": 55.0,
        "size_mb_std": 1.0,
        "dump_ms": 80.0,
        "dump_ms_std": 10.0,
        "dumps": 3,
        "restores": 3,
        "restore_ms": 32.0,
        "restore_ms_std": 2.0,
    }
    # table_5.py: storage = size x 12 (x 14: the pool the experiments ran with); network = (500 / 4) x 2 x size.
    assert t5 == {
        "table": 5,
        "benchmark": "bfs",
        "max_storage_mb": 660.0,
        "max_storage_mb_pool14": 770.0,
        "max_network_mb": 13750.0,
    }
    with pytest.raises(ValueError, match="line 1"):
        criu.parse_cycles("not json\n")


def test_snapshot_costs_metric_from_host_records(tmp_path):
    """Tables 4 and 5 from the CRIU-mode host's records: dump_ms and image_bytes on the request
    after which it dumped, instance_restore_ms on the first request of a restored instance."""
    from benchpipe.errors import RawDataError
    from benchpipe.summaries.snapshot_costs import point_snapshot_costs

    recs = [{"request": 1, "server_us": 900.0, "dump_ms": 100.0, "image_bytes": 60_000_000}]
    for i, (d, r) in enumerate([(110.0, 40.0), (120.0, 50.0)], 2):
        recs.append({"request": i, "instance_restore_ms": r, "dump_ms": d, "image_bytes": 62_000_000})
    (tmp_path / "async_results").write_text("".join(json.dumps(r) + "\n" for r in recs))
    row = point_snapshot_costs(tmp_path, {}, {"benchmark": "bfs"})
    assert row["size_mb"] == 61.33 and row["dump_ms"] == 110.0 and row["dump_ms_std"] == 10.0
    assert row["restore_ms"] == 45.0 and row["restores"] == 2 and row["dumps"] == 3
    assert row["max_storage_mb"] == 735.96 and row["max_network_mb"] == 15332.5
    # A fork-mode run has no images to cost: named, not a zero.
    (tmp_path / "async_results").write_text(json.dumps({"request": 1, "server_us": 1.0}) + "\n")
    with pytest.raises(RawDataError, match="PRONGHORN_SNAPSHOT=criu"):
        point_snapshot_costs(tmp_path, {}, {})
