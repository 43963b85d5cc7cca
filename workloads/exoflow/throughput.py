"""Figure 8(c)'s driver: how many tasks per second the workflow layer schedules.

--system exoflow-1: single-task DAGs; exoflow-100: DAGs of 100 parallel tasks (both through the
local engine, no checkpoint, run by --controllers controller actors, each running its share of the
DAGs on 16 threads); ray: the same number of plain Ray tasks (the runtime has x CPUs). One warm-up
round, then --repetitions timed rounds of --tasks tasks each; the JSON's metrics.throughput lists
tasks/s per round (the artifact: 10 000 / duration).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ray

from exoflow import engine


def noop(i: int) -> int:
    return i


def collect(*xs: int) -> int:
    return len(xs)


@ray.remote
def noop_task(i: int) -> int:
    return i


@ray.remote(num_cpus=0, max_concurrency=16)
class Controller:
    """One workflow controller (ExoFlow's x axis): runs whole DAGs, 16 at a time."""

    def __init__(self, storage: str, index: int) -> None:
        self.storage, self.index = storage, index
        self.persister = engine.Persister.remote()
        self.pool = ThreadPoolExecutor(16)

    def _dag(self, wid: str, width: int) -> int:
        ex = engine.Executor(self.storage, wid, persister=self.persister, events_file=False)
        steps = [engine.step(noop, i, name=f"t{i}", checkpoint="none") for i in range(width)]
        out = ex.run(steps if width > 1 else steps[0], wait_committed=False)
        ex.close()
        return width if width > 1 else int(out == 0)

    def run(self, round_id: str, n_dags: int, width: int) -> int:
        ids = [f"{round_id}-c{self.index}-{k}" for k in range(n_dags)]
        return sum(self.pool.map(lambda w: self._dag(w, width), ids))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--system", choices=["exoflow-1", "exoflow-100", "ray"], required=True)
    p.add_argument("--x", type=int, required=True, help="controllers (ExoFlow) or CPUs (Ray, the runtime's)")
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--warmups", type=int, default=1)
    p.add_argument("--storage", required=True)
    p.add_argument("--result", required=True)
    args = p.parse_args(argv)
    ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    throughput: list[float] = []
    width = 100 if args.system == "exoflow-100" else 1
    controllers = [Controller.remote(args.storage, i) for i in range(args.x)] if args.system != "ray" else []
    t_start = time.time()
    for r in range(args.warmups + args.repetitions):
        t0 = time.perf_counter()
        if args.system == "ray":
            done = len(ray.get([noop_task.remote(i) for i in range(args.tasks)]))
        else:
            n_dags = args.tasks // width
            shares = [n_dags // args.x + (1 if i < n_dags % args.x else 0) for i in range(args.x)]
            done = sum(ray.get([c.run.remote(f"r{r}", n, width) for c, n in zip(controllers, shares, strict=True)]))
        elapsed = time.perf_counter() - t0
        if done != args.tasks:
            raise SystemExit(f"round {r}: {done} of {args.tasks} tasks finished")
        if r >= args.warmups:
            throughput.append(args.tasks / elapsed)
    out = {
        "duration_s": time.time() - t_start,
        "metrics": {"throughput": throughput},
        "config": {k: v for k, v in vars(args).items() if k not in ("storage", "result")},
        "cpus": ray.cluster_resources().get("CPU"),
    }
    ray.shutdown()
    engine.write_durable(Path(args.result), json.dumps(out, indent=1).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
