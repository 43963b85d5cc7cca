"""The durable key-value store every service of a point shares (FoundationDB's place).

One SQLite file in WAL mode with synchronous=FULL: a write transaction's commit reaches the disk
(an fsync) before it returns. Every store operation of the runtime is its own transaction, as every
FDB call of the mu2sls runtime is. Each thread gets its own connection (SQLite's rule).

Writers queue on an flock of FILE.lock (one open file per thread, so threads of one process queue
too) before BEGIN IMMEDIATE: the kernel wakes the next writer when the lock is released, where
SQLite's own busy handler would poll with sleeps of up to 100 ms and starve writers under load.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path


class Tx:
    """One open store transaction: reads see its own writes; nothing is visible outside before commit."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM kv WHERE k = ?", (key,))

    def scan(self, prefix: str) -> list[tuple[str, str]]:
        # Keys are text; every prefix ends in '/', so '/' + 1 = '0' bounds the range.
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return self.db.execute("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k", (prefix, end)).fetchall()


class Store:
    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        with self.write() as tx:
            tx.db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID")

    def _lock_fd(self) -> int:
        fd = getattr(self._local, "lock_fd", None)
        if fd is None:
            fd = self._local.lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        return fd

    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_s)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction (BEGIN IMMEDIATE: writers queue on the database's one write lock);
        an exception rolls it back, so a failed lock attempt leaves nothing behind."""
        db = self._conn()
        fd = self._lock_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only snapshot: no write lock, no fsync."""
        db = self._conn()
        db.execute("BEGIN")
        try:
            yield Tx(db)
        finally:
            db.execute("COMMIT")

    def count(self, prefix: str) -> int:
        with self.read() as tx:
            return len(tx.scan(prefix))
