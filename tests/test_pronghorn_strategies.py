"""Pronghorn's strategies as the host drives them (workloads/pronghorn/strategies.py), on latencies
the test chooses, and Table 4's convergence rule."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workloads"))

from pronghorn.strategies import COLD, Orchestrator, RequestCentricStrategy, make_strategy

from benchpipe.summaries.convergence import convergence_index


def drive(orch: Orchestrator, latency: Callable[[int], float], requests: int) -> list[tuple[int, int, bool]]:
    """The host's loop without processes: (restored from, request number, snapshot taken) per request.
    A snapshot the strategy asks for is taken; an instance is replaced after `eviction` requests."""
    out = []
    orch.start_instance()
    for _ in range(requests):
        base = orch.base
        step = orch.after_request(latency(orch.base + orch.served + 1))
        if step.snapshot:
            orch.snapshot_taken(step.request_number)
        out.append((base, step.request_number, step.snapshot))
        if step.evict:
            orch.start_instance()
    return out


def jit(r: int) -> float:
    """A JIT's warm-up: slow first requests, faster until request 30, then flat (µs)."""
    return 70_000 / min(r, 30) + 5_000


@pytest.mark.parametrize("eviction", [1, 4, 20])
def test_cold_never_snapshots_and_always_starts_cold(eviction):
    orch = Orchestrator(make_strategy("cold", eviction))
    steps = drive(orch, jit, 100)
    assert not any(s for _, _, s in steps)
    assert {b for b, _, _ in steps} == {COLD}
    assert {r for _, r, _ in steps} == set(range(1, eviction + 1))  # every instance counts from 1 again


@pytest.mark.parametrize("eviction", [1, 4, 20])
def test_checkpoint_after_first_snapshots_at_request_one_then_restores_it(eviction):
    orch = Orchestrator(make_strategy("fixed1", eviction))
    steps = drive(orch, jit, 60)
    taken = [r for _, r, s in steps if s]
    assert taken == [1]  # once, after the first request of the first (cold) instance
    assert orch.strategy.pool == {1}
    # Every later instance is restored from that snapshot and serves requests 2 .. eviction+1.
    later = steps[eviction:]
    assert {b for b, _, _ in later} == {1}
    assert {r for _, r, _ in later} == set(range(2, eviction + 2))


def test_request_centric_learns_a_later_snapshot_and_moves_when_latencies_change():
    strat = RequestCentricStrategy(4, seed=3)
    orch = Orchestrator(strat)
    steps = drive(orch, jit, 600)
    # Within the paper's bounds: snapshot points 1..100, a pool of at most 14.
    assert all(1 <= r <= 100 for _, r, s in steps if s)
    assert len(strat.pool) <= 14
    warm = strat.best()
    assert warm >= 20, f"JIT warms up until request 30, but the best snapshot is after request {warm}"
    # Later requests only get faster: the instances it restores serve numbers far past the start.
    late_numbers = [r for _, r, _ in steps[-100:]]
    assert sum(late_numbers) / len(late_numbers) > 20

    # Now a later request is slow (say every process past request 12 meets a heap grown too large):
    # the same strategy, observing it, moves its snapshot point back below that.
    def leak(r: int) -> float:
        return jit(r) if r <= 12 else 200_000

    drive(orch, leak, 600)
    moved = strat.best()
    # The best point now: the latest whose 4 requests all stay at or below request 12.
    assert moved == 12 - 4, f"snapshot point {moved} is not the latest clear of the slow requests"
    late = [r for _, r, _ in drive(orch, leak, 100)]
    assert sum(r > 12 for r in late) < 20


def test_request_centric_score_and_pruning():
    strat = RequestCentricStrategy(2, capacity=5, seed=1)
    for r, lat in {1: 100.0, 2: 50.0, 3: 10.0}.items():
        strat.observe(r, lat)
    strat.observe(3, 30.0)  # EWMA with eps 0.5: (30 + 10) / 2
    assert strat.ewma[3] == pytest.approx(20.0)
    # A snapshot after 1 serves 2 and 3; after 3 serves 4, 5: not observed, as fast as the best below.
    assert strat.score(1) == pytest.approx((1e6 / 51 + 1e6 / 21) / 2)
    assert strat.score(3) == pytest.approx(1e6 / 21)
    for k in range(1, 7):
        dropped = strat.add(k)
    assert len(strat.pool) <= 5 and dropped  # the sixth overflowed the pool: pruned to its best share
    assert max(strat.pool, key=strat.score) in strat.pool


def test_strategy_names_are_checked():
    with pytest.raises(ValueError, match="expected one of cold, fixed1, request-centric"):
        make_strategy("warm", 4)
    with pytest.raises(ValueError, match="eviction"):
        make_strategy("cold", 0)


def test_convergence_index_is_the_first_window_near_the_final_median():
    # 500 requests: 150 slow ones, then the steady value (the artifact's proportions): the first
    # 20-request window whose median is the steady one starts at 141 (9 slow, 11 fast).
    lat = [1000.0] * 150 + [100.0] * 350
    assert convergence_index(lat) == 141
    # Already converged at the first window considered (request 100 of 500).
    assert convergence_index([100.0] * 500) == 100
    # Scaled to 120 requests: windows of 5 from request 24, target from request 96.
    assert convergence_index([1000.0] * 40 + [100.0] * 80) == 38
    # 2 % is the tolerance: windows 3 % off the target are not converged; the first half-and-half
    # window (median 101.5) is.
    assert convergence_index([103.0] * 300 + [100.0] * 200) == 290


def test_cycle_snapshots_every_request_and_restores_the_newest():
    """Table 4's cycles (cost-analysis/table_4.py): serve, dump, kill, restore that image, serve..."""
    orch = Orchestrator(make_strategy("cycle", 1))
    steps = drive(orch, jit, 5)
    assert steps == [(0, 1, True), (1, 2, True), (2, 3, True), (3, 4, True), (4, 5, True)]
    assert orch.strategy.pool == {5}  # older images pruned: one image at a time
