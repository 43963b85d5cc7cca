"""Which snapshot to take and which to restore: the paper's three strategies, written from its
description (section 4 of the EuroSys'24 paper and the artifact's documented defaults).

A request number counts the requests a process's lineage has served: a cold process serves 1, 2,
...; a process restored from a snapshot taken after request k serves k+1, k+2, ... The container
(here: the instance) is evicted after `eviction` requests, and the next one starts from the
snapshot the strategy picks, or cold.

- cold: never snapshots, always starts cold.
- fixed (checkpoint after the first request): snapshots once at request `at` (1), and restores
  the pool's snapshot closest below `at`.
- request-centric: learns, per request number, an EWMA of the latency it observes (weight `eps`
  for the new value), and scores a snapshot taken after request k by the mean of 1e6/(latency+1)
  over the `eviction` requests an instance restored from it will serve (k+1 .. k+eviction);
  a request number not yet observed counts as fast as the best one below it (optimism).
  Restore: a softmax over the pool's scores and cold's. Snapshot: a request number sampled, by
  score, among the ones the running instance will still serve, at most `max_requests`. A pool
  over `capacity` keeps its best `p` share plus a random `gamma` share of the rest.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

COLD = 0  # the "snapshot" a cold start restores: no request served


class Strategy:
    name = "base"

    def __init__(self, eviction: int) -> None:
        if eviction < 1:
            raise ValueError(f"eviction: expected a number of requests >= 1, got {eviction}")
        self.eviction = eviction
        self.pool: set[int] = set()

    def choose_restore(self) -> int:
        """The snapshot (its request number) the next instance starts from; COLD for a cold start."""
        return COLD

    def snapshot_point(self, base: int) -> int | None:
        """For an instance that starts from `base`: the request number after which it is
        snapshotted (one it will serve, base+1 .. base+eviction), or None."""
        return None

    def observe(self, request_number: int, latency_us: float) -> None:
        """A request's server-side latency, as the artifact's agent reads it from the runtime."""

    def add(self, request_number: int) -> list[int]:
        """A snapshot after `request_number` is in the pool; returns the snapshots pruned."""
        self.pool.add(request_number)
        return []

    def best(self) -> int:
        """The snapshot the strategy currently thinks is best (COLD if none)."""
        return max(self.pool, default=COLD)


class ColdStrategy(Strategy):
    name = "cold"


class FixedStrategy(Strategy):
    name = "fixed"

    def __init__(self, eviction: int, at: int = 1) -> None:
        super().__init__(eviction)
        self.at = at

    def choose_restore(self) -> int:
        below = [k for k in self.pool if k <= self.at]
        return max(below, default=COLD)

    def snapshot_point(self, base: int) -> int | None:
        if self.at in self.pool or not base < self.at <= base + self.eviction:
            return None
        return self.at


@dataclass
class RequestCentricStrategy(Strategy):
    eviction: int
    capacity: int = 14
    p: float = 0.40
    gamma: float = 0.10
    eps: float = 0.5
    max_requests: int = 100
    beta: float = 10.0  # softmax sharpness over scores normalised by the best one
    seed: int = 1
    pool: set[int] = field(default_factory=set)
    ewma: dict[int, float] = field(default_factory=dict)
    name = "request-centric"

    def __post_init__(self) -> None:
        Strategy.__init__(self, self.eviction)
        if self.capacity < 1 or self.max_requests < 1:
            raise ValueError("capacity and max_requests must be >= 1")
        self.rng = random.Random(self.seed)

    def observe(self, request_number: int, latency_us: float) -> None:
        old = self.ewma.get(request_number)
        self.ewma[request_number] = latency_us if old is None else self.eps * latency_us + (1 - self.eps) * old

    def latency(self, r: int) -> float | None:
        """EWMA at r; where r was never observed, the best EWMA of the request numbers below it
        (optimistic: a JIT rarely gets slower with more requests, and one slow request, such as
        a major GC that every restore of one snapshot replays, must not hide all later points
        from exploration), else the best observed at all; None before any observation."""
        if r in self.ewma:
            return self.ewma[r]
        below = [v for k, v in self.ewma.items() if k < r]
        if below:
            return min(below)
        return min(self.ewma.values()) if self.ewma else None

    def score(self, k: int) -> float:
        """How fast an instance restored from a snapshot after request k serves its requests."""
        lats = [self.latency(r) for r in range(k + 1, k + self.eviction + 1)]
        known = [x for x in lats if x is not None]
        if not known:
            return 1.0
        return sum(1e6 / (x + 1.0) for x in known) / len(known)

    def _softmax_pick(self, options: list[int]) -> int:
        scores = [self.score(k) for k in options]
        top = max(scores)
        weights = [math.exp(self.beta * (s / top - 1.0)) for s in scores]
        return self.rng.choices(options, weights=weights)[0]

    def choose_restore(self) -> int:
        return self._softmax_pick([COLD, *sorted(self.pool)])

    def snapshot_point(self, base: int) -> int | None:
        options = [j for j in range(base + 1, min(base + self.eviction, self.max_requests) + 1) if j not in self.pool]
        if not options:
            return None
        return self.rng.choices(options, weights=[self.score(j) for j in options])[0]

    def add(self, request_number: int) -> list[int]:
        self.pool.add(request_number)
        if len(self.pool) <= self.capacity:
            return []
        ranked = sorted(self.pool, key=self.score, reverse=True)
        n_top = max(1, round(self.p * len(ranked)))
        rest = ranked[n_top:]
        kept = set(ranked[:n_top]) | set(self.rng.sample(rest, round(self.gamma * len(rest))))
        dropped = sorted(self.pool - kept)
        self.pool = kept
        return dropped

    def best(self) -> int:
        return max([COLD, *self.pool], key=lambda k: (self.score(k), k))


class CycleStrategy(Strategy):
    """Table 4's measurement (cost-analysis/table_4.py): dump after every request, kill, restore
    that image, serve one request, and again; only the newest image is kept."""

    name = "cycle"

    def choose_restore(self) -> int:
        return max(self.pool, default=COLD)

    def snapshot_point(self, base: int) -> int | None:
        return base + 1

    def add(self, request_number: int) -> list[int]:
        dropped = sorted(k for k in self.pool if k != request_number)
        self.pool = {request_number}
        return dropped


STRATEGIES = ("cold", "fixed1", "request-centric", "cycle")


def make_strategy(name: str, eviction: int, **kw: float) -> Strategy:
    if name == "cold":
        return ColdStrategy(eviction)
    if name == "fixed1":
        return FixedStrategy(eviction, at=1)
    if name == "request-centric":
        return RequestCentricStrategy(eviction, **kw)  # type: ignore[arg-type]
    if name == "cycle":
        return CycleStrategy(eviction)
    raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")


@dataclass
class Step:
    """What follows a served request: its request number, and whether to snapshot and evict."""

    request_number: int
    snapshot: bool
    evict: bool


class Orchestrator:
    """The per-function bookkeeping the artifact's agent does: request numbers, the snapshot
    point of the running instance, eviction after `eviction` requests. The host does the forks
    and kills it decides."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.base = COLD
        self.served = 0  # by the running instance
        self.target: int | None = None

    def start_instance(self) -> int:
        """Pick the next instance's snapshot (COLD for a cold start)."""
        return self.started(self.strategy.choose_restore())

    def started(self, base: int) -> int:
        """The running instance restored from `base` (the host may fall back to cold)."""
        self.base, self.served = base, 0
        self.target = self.strategy.snapshot_point(base)
        return base

    def after_request(self, server_us: float) -> Step:
        self.served += 1
        r = self.base + self.served
        self.strategy.observe(r, server_us)
        return Step(r, snapshot=self.target == r, evict=self.served >= self.strategy.eviction)

    def snapshot_taken(self, request_number: int) -> list[int]:
        return self.strategy.add(request_number)
