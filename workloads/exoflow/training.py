"""Figure 6's driver: the artifact's distributed-training pipeline shape over the local engine.

ETL (download -> extract -> train files -> stage (x multiplier) -> filter -> preprocess into
partitions), then per epoch i: transform_i (augmentation of every partition, split into
`multiplier` subtasks: ephemeral Ray tasks, or Workflow Tasks with --disable-ephemeral-tasks) and
train_i (data-parallel SGD of a small numpy MLP on trainer actors; the weights are the step's
output, checkpointed synchronously every 5 epochs as the artifact's train steps are). transform_i
waits for transform_{i-1} and train_{i-2}, as in the artifact. Checkpoint modes as the artifact's
--checkpoint: true (sync), false (none), async, hybrid (async for the ETL steps, none for
transforms). The data is generated here (a deterministic synthetic image set, 16x16 grey levels,
10 classes from a random teacher network); nothing is downloaded. The run's clock starts once the
driver is connected and the runtime's workers, trainers and persister are up (`warm_up`): a fresh
runtime's process start-up is seconds of noise on 2 cores and not what the figure compares.

Failure triggers (--failure), each fired once per workflow: preprocess.task_crash,
train_actor_<i>.task_crash, transform_<i>.task_crash, transform_subtask_<i>.task_crash (a SIGKILL of
the process doing that work) and train_<i>.cluster_crash (the job runner stops the whole Ray
runtime; run again with --resume and the same --workflow-id). The result JSON's duration_s counts
from the first run's start (the storage's start_time file), as the artifact does.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import ray

from exoflow import engine

SIDE = 32  # 32x32 images: 4 KB per normalized sample, so checkpoints of a transform's output weigh
IMAGE = SIDE * SIDE  # 8 MB per epoch at 1x (32 MB at 4x), several fsync'd writes' worth
CLASSES = 10
HIDDEN = 64


# --- ETL ----------------------------------------------------------------------------------------
def download(dataset_dir: str, n_samples: int, seed: int) -> list[str]:
    """The raw data set, generated (the artifact downloads tacodata.zip): a few .npz files."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(IMAGE, CLASSES)).astype(np.float32)
    out = []
    Path(dataset_dir).mkdir(parents=True, exist_ok=True)
    for f in range(4):
        x = rng.integers(0, 256, size=(n_samples // 4, IMAGE), dtype=np.uint8)
        y = np.argmax((x.astype(np.float32) / 255 - 0.5) @ teacher, axis=1).astype(np.uint8)
        path = os.path.join(dataset_dir, f"raw_{f}.npz")
        np.savez(path, x=x, y=y)
        out.append(path)
    return out


def extract(files: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(d["x"], d["y"]) for d in (np.load(f) for f in files)]


def get_train_files(parts: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = parts[-1]
    return [*parts[:-1], (x[: len(x) // 2], y[: len(y) // 2])]  # the rest of the last file is the test set


def stage_files(parts: list[tuple[np.ndarray, np.ndarray]], multiplier: int) -> tuple[np.ndarray, np.ndarray]:
    """--enhance-dataset-multiplier: the training set repeated (with a shift, so copies differ)."""
    x = np.concatenate([np.roll(np.concatenate([p[0] for p in parts]), k, axis=1) for k in range(multiplier)])
    y = np.concatenate([np.concatenate([p[1] for p in parts])] * multiplier)
    return x, y


def filter_dataset(data: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x, y = data
    keep = x.std(axis=1) > 10  # drop near-blank images
    return x[keep], y[keep]


def _normalize(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xf = x.astype(np.float32) / 255.0
    return (xf - xf.mean(axis=1, keepdims=True)) / (xf.std(axis=1, keepdims=True) + 1e-6), y


normalize_task = ray.remote(_normalize)


def preprocess(data: tuple[np.ndarray, np.ndarray], n_partitions: int, ephemeral: bool) -> list[tuple]:
    """Normalized partitions; the per-partition work runs as ephemeral Ray tasks (or inline, when
    the Workflow Tasks variant has no ephemeral tasks: the artifact's preprocess is one step)."""
    x, y = data
    chunks = list(zip(np.array_split(x, n_partitions), np.array_split(y, n_partitions), strict=True))
    if ephemeral:
        return ray.get([normalize_task.remote(cx, cy) for cx, cy in chunks])
    return [_normalize(cx, cy) for cx, cy in chunks]


# --- per epoch ----------------------------------------------------------------------------------
def _augment(part: tuple[np.ndarray, np.ndarray], epoch: int, sub: int, trigger: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = part
    rng = np.random.default_rng(epoch * 1000 + sub)
    img = x.reshape(-1, SIDE, SIDE)
    flip = rng.random(len(img)) < 0.5
    img = np.where(flip[:, None, None], img[:, :, ::-1], img)
    shift = int(rng.integers(-2, 3))
    img = np.roll(img, shift, axis=2) + rng.normal(0, 0.1, size=img.shape).astype(np.float32)
    engine.failure_point(trigger)
    return img.reshape(len(img), IMAGE).astype(np.float32), y


augment_task = ray.remote(_augment)


def transform(parts: list[tuple], epoch: int, n_tasks: int) -> list[tuple]:
    """Augment every partition, split into n_tasks ephemeral Ray tasks (Ray retries a killed one)."""
    pieces = _split(parts, n_tasks)
    refs = [augment_task.remote(p, epoch, j, f"transform_subtask_{epoch}") for j, p in enumerate(pieces)]
    return ray.get(refs)


def transform_piece(parts: list[tuple], epoch: int, n_tasks: int, j: int) -> tuple:
    """The Workflow Tasks variant: one subtask as a step of its own."""
    return _augment(_split(parts, n_tasks)[j], epoch, j, f"transform_subtask_{epoch}")


def gather(*pieces: tuple) -> list[tuple]:
    return list(pieces)


def _split(parts: list[tuple], n: int) -> list[tuple]:
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return list(zip(np.array_split(x, n), np.array_split(y, n), strict=True))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Trainer:
    """One data-parallel trainer (the artifact's train actors; 0 CPUs reserved: on 2 cores the
    transforms must run beside them)."""

    def fit_epoch(self, weights: list[np.ndarray], shard: tuple, batch: int, lr: float, epoch: int, rank: int):
        w1, b1, w2, b2 = (a.copy() for a in weights)
        x, y = shard
        rng = np.random.default_rng(epoch * 100 + rank)
        order = rng.permutation(len(x))
        loss = 0.0
        for s in range(0, len(x), batch):
            idx = order[s : s + batch]
            xb, yb = x[idx], y[idx]
            h = np.maximum(xb @ w1 + b1, 0)
            logits = h @ w2 + b2
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            loss += float(-np.log(p[np.arange(len(yb)), yb] + 1e-9).sum())
            g = p
            g[np.arange(len(yb)), yb] -= 1
            g /= len(yb)
            gw2, gb2 = h.T @ g, g.sum(axis=0)
            gh = (g @ w2.T) * (h > 0)
            gw1, gb1 = xb.T @ gh, gh.sum(axis=0)
            w1 -= lr * gw1
            b1 -= lr * gb1
            w2 -= lr * gw2
            b2 -= lr * gb2
        engine.failure_point(f"train_actor_{epoch}")
        return [w1, b1, w2, b2], loss / max(1, len(x))

    def ready(self) -> int:
        return os.getpid()


@ray.remote(num_cpus=1)
def _worker_pid() -> int:
    return os.getpid()


def warm_up(trainers: list, persister: object, n_cpus: int) -> None:
    """Before the clock: the trainer actors and the persister up, and a task worker per CPU started
    with this module (numpy) imported, so that the run measures the workflow, not process start-up."""
    ray.get([t.ready.remote() for t in trainers] + [persister.ping.remote()])
    ray.get([_worker_pid.remote() for _ in range(n_cpus)])


def init_weights(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(IMAGE, HIDDEN)) / np.sqrt(IMAGE)).astype(np.float32),
        np.zeros(HIDDEN, np.float32),
        (rng.normal(size=(HIDDEN, CLASSES)) / np.sqrt(HIDDEN)).astype(np.float32),
        np.zeros(CLASSES, np.float32),
    ]


def fit(state: dict, data: list[tuple], trainers: list, batch: int, lr: float, epoch: int) -> dict:
    """One epoch on every trainer (each its shard), weights averaged: the train_<epoch> step."""
    shards = _split(data, len(trainers))
    outs = ray.get(
        [t.fit_epoch.remote(state["weights"], shards[r], batch, lr, epoch, r) for r, t in enumerate(trainers)]
    )
    weights = [np.mean([o[0][k] for o in outs], axis=0) for k in range(4)]
    loss = float(np.mean([o[1] for o in outs]))
    return {"weights": weights, "epoch": epoch, "losses": [*state["losses"], loss]}


def test_set(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out half of the last raw file (get_train_files leaves it out), normalized."""
    x, y = parts[-1]
    return _normalize(x[len(x) // 2 :], y[len(y) // 2 :])


def finalize(state: dict, test: tuple[np.ndarray, np.ndarray]) -> dict:
    x, y = test
    w1, b1, w2, b2 = state["weights"]
    pred = np.argmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2, axis=1)
    return {"accuracy": float((pred == y).mean()), "losses": state["losses"], "epochs": state["epoch"] + 1}


# --- the DAG ------------------------------------------------------------------------------------
def pipeline(args: argparse.Namespace, trainers: list) -> engine.Step:
    mode = args.checkpoint
    etl = "async" if mode == "hybrid" else engine.checkpoint_mode(mode)
    tmode = "none" if mode == "hybrid" else engine.checkpoint_mode(mode)
    ephemeral = not args.disable_ephemeral_tasks
    n_tasks = min(args.enhance_dataset_multiplier, 16)
    dataset_dir = str(Path(args.storage) / args.workflow_id / "dataset")
    raw = engine.step(download, dataset_dir, args.samples, 7, name="download", checkpoint=etl)
    parts = engine.step(extract, raw, name="extract", checkpoint=etl)
    train_files = engine.step(get_train_files, parts, name="get_train_files", checkpoint=etl)
    staged = engine.step(stage_files, train_files, args.enhance_dataset_multiplier, name="stage_files", checkpoint=etl)
    filtered = engine.step(filter_dataset, staged, name="filter_dataset", checkpoint=etl)
    chunks = engine.step(preprocess, filtered, args.partitions, ephemeral, name="preprocess", checkpoint=etl)
    state: engine.Step | dict = {"weights": init_weights(3), "epoch": -1, "losses": []}
    transforms: list[engine.Step] = []
    trains: list[engine.Step] = []
    for i in range(args.epochs):
        after = [transforms[i - 1]] if i >= 1 else []
        if i >= 2:
            after.append(trains[i - 2])
        if ephemeral:
            data = engine.step(transform, chunks, i, n_tasks, name=f"transform_{i}", checkpoint=tmode, after=after)
        else:
            pieces = [
                engine.step(transform_piece, chunks, i, n_tasks, j, name=f"transform_{i}_{j}", checkpoint="none",
                            after=after)
                for j in range(n_tasks)
            ]  # fmt: skip
            data = engine.step(gather, *pieces, name=f"transform_{i}", checkpoint=tmode)
        state = engine.step(
            fit, state, data, trainers, args.batch * args.enhance_dataset_multiplier, args.lr, i,
            name=f"train_{i}", checkpoint="sync" if i % 5 == 0 else "none",
        )  # fmt: skip
        transforms.append(data)
        trains.append(state)
    test = engine.step(test_set, parts, name="test_set", checkpoint="none")
    return engine.step(finalize, state, test, name="finalize", checkpoint="none")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", choices=["true", "false", "async", "hybrid"])
    p.add_argument(
        "--system",
        choices=["true", "false", "async", "hybrid", "workflow-tasks"],
        help="a Figure 6 configuration: a --checkpoint value, or workflow-tasks (false + --disable-ephemeral-tasks)",
    )
    p.add_argument("--enhance-dataset-multiplier", type=int, default=1)
    p.add_argument("--disable-ephemeral-tasks", action="store_true")
    p.add_argument("--failure", default="none")
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--storage", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--trainers", type=int, default=2)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--samples", type=int, default=2000, help="raw samples at 1x")
    p.add_argument("--batch", type=int, default=8, help="per-device batch at 1x (x the multiplier)")
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args(argv)
    if args.system == "workflow-tasks":
        args.checkpoint, args.disable_ephemeral_tasks = "false", True
    elif args.system:
        args.checkpoint = args.system
    if not args.checkpoint:
        p.error("one of --checkpoint or --system is required")
    wf_dir = Path(args.storage) / args.workflow_id
    wf_dir.mkdir(parents=True, exist_ok=True)
    start_file = wf_dir / "start_time"
    if args.resume and not start_file.exists():
        raise SystemExit(f"--resume: workflow {args.workflow_id} has no start_time in {wf_dir}")
    failure = "" if args.failure == "none" else args.failure
    failures_dir = str(wf_dir / "failures")
    env = {engine.FAILURE_ENV: failure, engine.FAILURE_DIR_ENV: failures_dir}
    if os.environ.get(engine.CRASH_REQUEST_ENV):
        env[engine.CRASH_REQUEST_ENV] = os.environ[engine.CRASH_REQUEST_ENV]
    ray.init(address=os.environ.get("RAY_ADDRESS"), runtime_env={"env_vars": env}, log_to_driver=False)
    trainers = [Trainer.remote() for _ in range(args.trainers)]
    ex = engine.Executor(args.storage, args.workflow_id, failure=failure)
    warm_up(trainers, ex.persister, int(ray.cluster_resources().get("CPU", 1)))
    # The run starts once the driver is connected and its actors and workers are up; a resumed
    # run's duration counts from the crashed run's start, which start_time keeps.
    this_run = time.time()
    if not args.resume:
        engine.write_durable(start_file, str(this_run).encode())
    started = float(start_file.read_text())
    out = ex.run(pipeline(args, trainers))
    ended = time.time()
    ex.close()
    fired = sorted(f.name for f in Path(failures_dir).glob("*.fired")) if Path(failures_dir).is_dir() else []
    result = {
        "duration_s": ended - started,
        "run_duration_s": ended - this_run,
        "start_time": started,
        "end_time": ended,
        "config": {k: v for k, v in vars(args).items() if k not in ("storage", "result")},
        "accuracy": out["accuracy"],
        "final_loss": out["losses"][-1],
        "epochs": out["epochs"],
        "fired": [json.loads((Path(failures_dir) / f).read_text()) for f in fired],
        "executions": sum(1 for e in ex.events if e["event"] == "submit"),
        "loaded": sum(1 for e in ex.events if e["event"] == "load"),
        "recoveries": [e["step"] for e in ex.events if e["event"] == "recover"],
        "ray": ray.__version__,
    }
    ray.shutdown()
    engine.write_durable(Path(args.result), json.dumps(result, indent=2).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
