"""A wake-up at an absolute time.perf_counter() instant, for the open-loop generator's schedule.

uvloop's timers count whole milliseconds from a clock it caches per loop iteration, so a timer can
fire up to ~1.5 ms early or late; every request sent late by that much carries it in its latency.
On Linux a timerfd armed at the absolute instant (CLOCK_MONOTONIC, which perf_counter reads) and
watched by the event loop wakes it within the kernel's timer slack (~0.05 ms). Elsewhere the loop's
own timers stand in.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import sys
import time
from collections.abc import Callable

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd_usable() -> bool:
    info = time.get_clock_info("perf_counter")
    return sys.platform.startswith("linux") and "CLOCK_MONOTONIC" in info.implementation


class Alarm:
    """Calls `callback` once at the earliest instant given to `set` since it last fired."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.callback = callback
        self.fd = -1
        self.handle: asyncio.TimerHandle | None = None
        self.armed = math.inf  # the instant it will fire at
        if _timerfd_usable():
            self.libc = ctypes.CDLL(None, use_errno=True)
            fd = self.libc.timerfd_create(CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0:
                self.fd = fd
                self.spec = _Itimerspec()
                loop.add_reader(fd, self._fired)

    def set(self, when: float, coarse: bool = False) -> None:
        """`coarse`: the loop's millisecond timer will do (cheaper: no fd to wake on and read)."""
        if when >= self.armed:
            return  # it fires earlier anyway (a syscall saved; the callback finds what is due)
        self.armed = when
        if self.fd >= 0 and not coarse:
            sec = int(when)
            self.spec.it_value.tv_sec = sec
            self.spec.it_value.tv_nsec = max(1, int((when - sec) * 1e9))  # zero would disarm it
            if self.libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self.spec), None) == 0:
                return
            self.close()  # the kernel refused: fall back to the loop's timers from now on
        if self.handle is not None:
            self.handle.cancel()
        # The loop's timers round to milliseconds: never less than one, or the loop would spin.
        self.handle = self.loop.call_later(max(when - time.perf_counter(), 0.001), self._timer_fired)

    def _fired(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return  # re-armed after it expired: nothing due yet
        self.armed = math.inf
        self.callback()

    def _timer_fired(self) -> None:
        self.handle = None
        self.armed = math.inf
        self.callback()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
