"""State in SQLite and a durable log; the four protocols differ only in which operations they log.

- unsafe:                      no log appends
- boki:                        every read and every write is appended
- halfmoon, LoggingMode=write: writes are appended, reads are log-free   (the "Halfmoon-read" baseline)
- halfmoon, LoggingMode=read:  reads are appended, writes are log-free   (the "Halfmoon-write" baseline)

An append is one INSERT committed with synchronous=FULL in WAL mode: an fsync, what a durable
append costs on this machine. Reads and writes of the state itself are ordinary SQLite statements.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

SYSTEMS = ("unsafe", "boki", "halfmoon")
MODES = ("read", "write")


def logged_ops(system: str, mode: str | None) -> frozenset[str]:
    """Which operations a protocol appends to the durable log."""
    if system == "unsafe":
        return frozenset()
    if system == "boki":
        return frozenset({"read", "write"})
    if system == "halfmoon":
        if mode not in MODES:
            raise ValueError(f"halfmoon needs LoggingMode read or write, got {mode!r}")
        return frozenset({mode})
    raise ValueError(f"unknown system {system!r}; expected one of {', '.join(SYSTEMS)}")


class Store:
    """Thread-safe: each worker thread has its own SQLite connections."""

    def __init__(self, state_dir: Path, system: str, mode: str | None) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for f in self.state_dir.glob("*.db*"):
            f.unlink()  # fresh state for every start
        self.system = system
        self.mode = mode
        self.logged = logged_ops(system, mode)
        self._local = threading.local()
        self._stats_lock = threading.Lock()
        self.appends: Counter[str] = Counter()  # by request kind
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.log_bytes = 0
        state, log = self._conns()
        state.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
        log.execute(
            "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,"
            " op TEXT NOT NULL, k TEXT NOT NULL, v BLOB, size INTEGER NOT NULL)"
        )

    def _conns(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            state = sqlite3.connect(self.state_dir / "state.db", isolation_level=None, timeout=60)
            state.execute("PRAGMA journal_mode=WAL")
            state.execute("PRAGMA synchronous=NORMAL")
            log = sqlite3.connect(self.state_dir / "log.db", isolation_level=None, timeout=60)
            log.execute("PRAGMA journal_mode=WAL")
            log.execute("PRAGMA synchronous=FULL")  # every append reaches the disk before it returns
            conns = self._local.conns = (state, log)
        return conns

    def set_mode(self, mode: str) -> None:
        self.logged = logged_ops(self.system, mode)
        self.mode = mode

    # --- population (not logged: it is the initial state, as the images' populate step) ---
    def populate(self, items: list[tuple[str, bytes]]) -> None:
        state, _ = self._conns()
        state.execute("BEGIN")
        state.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", items)
        state.execute("COMMIT")

    # --- operations of functions ---
    def _append(self, kind: str, op: str, key: str, value: bytes | None) -> None:
        _, log = self._conns()
        size = len(key) + (len(value) if value else 0) + 16
        log.execute(
            "INSERT INTO log (ts, op, k, v, size) VALUES (?, ?, ?, ?, ?)",
            (time.time_ns() // 1000, op, key, value, size),
        )
        with self._stats_lock:
            self.appends[kind] += 1
            self.log_bytes += size

    def read(self, kind: str, key: str, log: frozenset[str] | None = None) -> bytes | None:
        """`log`: what this call logs, when the request names its mode (switching); else the stack's."""
        state, _ = self._conns()
        row = state.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        value = row[0] if row else None
        with self._stats_lock:
            self.reads[kind] += 1
        if "read" in (self.logged if log is None else log):
            # The read's result is logged so that a re-execution reads the same value.
            self._append(kind, "read", key, value)
        return value

    def write(self, kind: str, key: str, value: bytes, log: frozenset[str] | None = None) -> None:
        if "write" in (self.logged if log is None else log):
            self._append(kind, "write", key, value)
        state, _ = self._conns()
        state.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
        with self._stats_lock:
            self.writes[kind] += 1

    def count_request(self, kind: str) -> None:
        with self._stats_lock:
            self.requests[kind] += 1

    def gc(self, older_than_us: int) -> int:
        """Drop log entries whose state is checkpointed (appended before `older_than_us`)."""
        _, log = self._conns()
        freed = log.execute("SELECT COALESCE(SUM(size), 0) FROM log WHERE ts < ?", (older_than_us,)).fetchone()[0]
        log.execute("DELETE FROM log WHERE ts < ?", (older_than_us,))
        with self._stats_lock:
            self.log_bytes -= freed
        return int(freed)

    def log_size(self) -> int:
        with self._stats_lock:
            return self.log_bytes

    def stats(self) -> dict[str, object]:
        with self._stats_lock:
            return {
                "system": self.system,
                "mode": self.mode,
                "logged": sorted(self.logged),
                "appends": dict(self.appends),
                "reads": dict(self.reads),
                "writes": dict(self.writes),
                "requests": dict(self.requests),
                "log_bytes": self.log_bytes,
                "pid": os.getpid(),
            }
