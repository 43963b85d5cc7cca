"""The CRIU path's rendered commands (golden) and Tables 4 and 5 as the artifact computes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workloads"))

from pronghorn import criu


def test_rendered_commands_are_the_artifacts():
    assert criu.dump_cmd(4242, "./checkpoint") == "criu dump -t 4242 --tcp-established --leave-running -D ./checkpoint"
    assert criu.restore_cmd("./restore") == "criu restore --restore-detached --tcp-close -d -D ./restore"
    assert criu.size_cmd("/tmp/a b") == "du -sb '/tmp/a b' | cut -f1"


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


def test_table4_and_table5_from_cycle_records(tmp_path):
    cycles = [
        {"cycle": i, "dump_ms": d, "restore_ms": r, "size_bytes": 54_000_000 + 1_000_000 * i}
        for i, (d, r) in enumerate([(70, 30), (80, 34), (90, 32)])
    ]
    out = tmp_path / "bfs.jsonl"
    out.write_text("".join(json.dumps(c) + "\n" for c in cycles))
    row = criu.table4_row("bfs", criu.parse_cycles(out.read_text()))
    assert row == {
        "benchmark": "bfs",
        "size_mb": 55.0,
        "size_mb_std": 1.0,
        "dump_ms": 80.0,
        "dump_ms_std": 10.0,
        "restore_ms": 32.0,
        "restore_ms_std": 2.0,
        "cycles": 3,
    }
    # table_5.py: storage = size x 12; network = (500 / 4) x 2 x size.
    assert criu.table5_row("bfs", 55.0) == {"benchmark": "bfs", "max_storage_mb": 660.0, "max_network_mb": 13750.0}
    with pytest.raises(ValueError, match="line 1"):
        criu.parse_cycles("not json\n")
