"""Ports for local stacks: outside the ephemeral range, never handed out twice while reserved, never one in use."""

from __future__ import annotations

import socket

from benchpipe import ports


def test_ports_are_below_the_ephemeral_range_and_distinct_across_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPIPE_PORTS_FILE", str(tmp_path / "ports.json"))
    lo, _ = ports.ephemeral_range()
    first = ports.reserve("127.0.0.1", 20)
    second = ports.reserve("127.0.0.1", 20)
    assert all(ports.FLOOR <= p < lo for p in first + second)
    assert len(set(first + second)) == 40  # a second stack starting now never gets the first's


def test_a_port_in_use_or_reserved_is_never_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPIPE_PORTS_FILE", str(tmp_path / "ports.json"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        base = ports.reserve("127.0.0.1", 1)[0]
        # A pool of three: one port bound by someone, one reserved; only the third may come out.
        pool = [taken, base, next(p for p in range(ports.FLOOR, 65000) if p not in (taken, base))]
        monkeypatch.setattr(ports, "candidates", lambda: pool)
        assert ports.reserve("127.0.0.1", 1) == [pool[2]]


def test_an_expired_reservation_is_given_out_again_and_exhaustion_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHPIPE_PORTS_FILE", str(tmp_path / "ports.json"))
    port = ports.reserve("127.0.0.1", 1)[0]
    monkeypatch.setattr(ports, "candidates", lambda: [port])
    try:
        ports.reserve("127.0.0.1", 1)
    except OSError as e:
        assert "no 1 free ports" in str(e)
    else:
        raise AssertionError("a reserved port was handed out twice")
    monkeypatch.setattr(ports, "RESERVE_S", 0.0)
    monkeypatch.setattr(ports.time, "time", lambda: 1e12)
    assert ports.reserve("127.0.0.1", 1) == [port]
