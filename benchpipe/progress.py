"""Progress of a timed stage (warm-up, measurement): elapsed and remaining time, achieved rate.

A tqdm bar on the user's terminal when there is one (a job's own stdout and stderr go to its log),
and a plain line in the job's log every few seconds, so that a long point can be followed either
way. The rate is what the stack has completed, counted by the deployer where it can.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

log = logging.getLogger("benchpipe.progress")


def _terminal() -> IO[str] | None:
    try:
        return open("/dev/tty", "w")  # closed by the caller
    except OSError:
        return None  # no controlling terminal (CI, tests, nohup)


@contextlib.contextmanager
def timed(
    label: str,
    seconds: float,
    count: Callable[[], int] | None = None,
    every_s: float = 1.0,
    log_every_s: float = 5.0,
) -> Iterator[None]:
    """Show the progress of `seconds` of load named `label` while the block runs."""
    if seconds <= 0:
        yield
        return
    stop = threading.Event()
    tty = _terminal()
    bar: Any = None
    if tty is not None:
        # Imported only for a terminal: every stage job imports this module, and tqdm (with the
        # importlib.metadata it reads its version from) costs ~0.1 s of CPU per job.
        from tqdm import tqdm

        bar = tqdm(
            total=round(seconds, 1),
            desc=label,
            unit="s",
            file=tty,
            leave=False,
            bar_format="{desc}: {bar} {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]{postfix}",
        )

    def tick() -> None:
        t0 = time.monotonic()
        last_log = t0
        base = _safe(count)
        prev, prev_t = base, t0
        rate = 0.0
        while not stop.wait(every_s):
            now = time.monotonic()
            n = _safe(count)
            if n is not None and prev is not None and now > prev_t:
                rate = (n - prev) / (now - prev_t)
                prev, prev_t = n, now
            if bar is not None:
                bar.n = min(now - t0, seconds)
                if n is not None:
                    bar.set_postfix_str(f"{rate:,.0f} req/s completed", refresh=False)
                bar.refresh()
            if now - last_log >= log_every_s:
                last_log = now
                done = n - base if n is not None and base is not None else None
                log.info(
                    "%s: %.0f of %.0f s, %.0f s left%s",
                    label,
                    now - t0,
                    seconds,
                    max(0.0, seconds - (now - t0)),
                    "" if done is None else f", {done} calls completed, {rate:,.0f}/s now",
                )

    thread = threading.Thread(target=tick, name=f"progress-{label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        if bar is not None:
            bar.close()
        if tty is not None:
            tty.close()


def _safe(count: Callable[[], int] | None) -> int | None:
    if count is None:
        return None
    try:
        return count()
    except Exception:  # a progress count must never fail the point
        return None
