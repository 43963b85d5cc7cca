"""The mu2sls runtime features, each switched by its environment variable as upstream:

ENABLE_LOGGING (default on): exactly-once. Every store operation is one store transaction that
  first looks for its log record log/<svc>/<req_id>/<step> (a repeat returns the logged value) and
  otherwise runs and appends that record; a call's result is logged the same way, the request's
  result under step "ret" (a repeated req_id returns it without running the method again).
ENABLE_TXN (default on): two-phase locking for the methods that open a transaction: every key
  touched is locked (lock/<svc>/<key> holds the transaction id), writes are staged under
  local/<svc>/<txn>/<key>, commit and abort are fanned out to every service the transaction called.
  A lock held by another transaction aborts the whole transaction, which starts again at once.
ENABLE_CUSTOM_DICT (default off), "OD": a persistent dict is 1024 buckets (djb2 of the key), each
  its own store value and lock; without it the dict is one value, read, locked and rewritten whole
  by every access.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mu2sls.store import Store, Tx

BUCKETS = 1024


def djb2(key: str) -> int:
    h = 5381
    for c in key.encode():
        h = (h * 33 + c) & 0xFFFFFFFF
    return h


@dataclass(frozen=True)
class Flags:
    logging: bool = True
    txn: bool = True
    od: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Flags:
        env = dict(os.environ if env is None else env)
        # Upstream compares each with the string "True"; unset: logging and txn on, custom dict off.
        return cls(
            logging=env.get("ENABLE_LOGGING", "True") == "True",
            txn=env.get("ENABLE_TXN", "True") == "True",
            od=env.get("ENABLE_CUSTOM_DICT", "False") == "True",
        )


class TxnConflict(Exception):
    """A lock held by another transaction: the transaction aborts and starts again."""


class TxnAbort(Exception):
    """The method gives up (a reservation failed): abort the transaction and answer `result`."""

    def __init__(self, result: Any) -> None:
        super().__init__(repr(result))
        self.result = result


@dataclass
class Request:
    """One call of a method: its req_id, the next step number, the transaction it runs in."""

    req_id: str
    txn: str | None = None
    step: int = 0
    participants: set[str] = field(default_factory=set)

    def next_step(self) -> int:
        self.step += 1
        return self.step


@dataclass
class Stats:
    executions: int = 0
    replays: int = 0
    store_ops: int = 0
    conflicts: int = 0
    retries: int = 0
    lock_wait_s: float = 0.0


# (service, method, args, request) -> the callee's answer {"result": ...} or {"conflict": true}
Invoker = Callable[[str, str, list[Any], dict[str, Any]], dict[str, Any]]


class Runtime:
    def __init__(self, service: str, store: Store, flags: Flags, invoker: Invoker | None = None) -> None:
        self.service = service
        self.store = store
        self.flags = flags
        self.invoker = invoker
        self.stats = Stats()
        self._stats_lock = threading.Lock()
        self._held: dict[str, set[str]] = {}  # txn -> lock keys this service holds for it
        self._held_lock = threading.Lock()
        self._fanout = ThreadPoolExecutor(max_workers=8, thread_name_prefix="invoke")

    def _count(self, name: str, n: float = 1) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + n)

    # -- keys ---------------------------------------------------------------------------------------
    def data_key(self, fld: str, k: str) -> str:
        if self.flags.od:
            return f"data/{self.service}/{fld}/{djb2(k) % BUCKETS}"
        return f"data/{self.service}/{fld}"

    def _log_key(self, rq: Request, step: int | str) -> str:
        return f"log/{self.service}/{rq.req_id}/{step}"

    # -- one store operation -----------------------------------------------------------------------
    def _op(self, rq: Request, fn: Callable[[Tx], Any], writes: bool) -> Any:
        """Run fn in one store transaction; with logging, check and append its log record in it."""
        step = rq.next_step()
        self._count("store_ops")
        if self.flags.logging:
            key = self._log_key(rq, step)
            with self.store.write() as tx:
                logged = tx.get(key)
                if logged is not None:
                    return json.loads(logged)["v"]
                value = fn(tx)
                tx.put(key, json.dumps({"v": value}))
                return value
        if writes or rq.txn is not None:  # a lock is a write
            with self.store.write() as tx:
                return fn(tx)
        with self.store.read() as tx:
            return fn(tx)

    def _lock(self, tx: Tx, rq: Request, key: str) -> None:
        assert rq.txn is not None
        lock = f"lock/{key}"
        owner = tx.get(lock)
        if owner is None:
            tx.put(lock, rq.txn)
            with self._held_lock:
                self._held.setdefault(rq.txn, set()).add(key)
        elif owner != rq.txn:
            self._count("conflicts")
            raise TxnConflict(f"{key} is locked by {owner}")

    def _current(self, tx: Tx, rq: Request, key: str) -> Any:
        if rq.txn is not None:
            staged = tx.get(f"local/{self.service}/{rq.txn}/{key}")
            if staged is not None:
                return json.loads(staged)
        raw = tx.get(key)
        return None if raw is None else json.loads(raw)

    # -- persistent dict fields ---------------------------------------------------------------------
    def get(self, rq: Request, fld: str, k: str) -> Any:
        key = self.data_key(fld, k)

        def fn(tx: Tx) -> Any:
            if rq.txn is not None:
                self._lock(tx, rq, key)
            value = self._current(tx, rq, key)  # the whole dict, or one bucket with OD
            return None if value is None else value.get(k)

        return self._op(rq, fn, writes=False)

    def put(self, rq: Request, fld: str, k: str, v: Any) -> None:
        key = self.data_key(fld, k)

        def fn(tx: Tx) -> None:
            if rq.txn is not None:
                self._lock(tx, rq, key)
            value = self._current(tx, rq, key) or {}
            value[k] = v
            target = f"local/{self.service}/{rq.txn}/{key}" if rq.txn is not None else key
            tx.put(target, json.dumps(value))

        self._op(rq, fn, writes=True)

    def pop(self, rq: Request, fld: str, k: str) -> None:
        key = self.data_key(fld, k)

        def fn(tx: Tx) -> None:
            if rq.txn is not None:
                self._lock(tx, rq, key)
            value = self._current(tx, rq, key) or {}
            value.pop(k, None)
            target = f"local/{self.service}/{rq.txn}/{key}" if rq.txn is not None else key
            tx.put(target, json.dumps(value))

        self._op(rq, fn, writes=True)

    def populate(self, fld: str, items: dict[str, Any]) -> None:
        """Initial state, written directly (before the service takes requests)."""
        grouped: dict[str, dict[str, Any]] = {}
        for k, v in items.items():
            grouped.setdefault(self.data_key(fld, k), {})[k] = v
        with self.store.write() as tx:
            for key, part in grouped.items():
                current = json.loads(tx.get(key) or "{}")
                current.update(part)
                tx.put(key, json.dumps(current))

    # -- calls to other services --------------------------------------------------------------------
    def invoke(self, rq: Request, service: str, method: str, args: list[Any]) -> Any:
        return self.invoke_all(rq, [(service, method, args)])[0]

    def invoke_all(self, rq: Request, calls: list[tuple[str, str, list[Any]]]) -> list[Any]:
        """Calls run concurrently (AsyncInvoke + WaitAll); each is one logged step of the caller."""
        steps = [rq.next_step() for _ in calls]

        def one(call: tuple[str, str, list[Any]], step: int) -> Any:
            service, method, args = call
            key = self._log_key(rq, step)
            if self.flags.logging:
                with self.store.read() as tx:
                    logged = tx.get(key)
                if logged is not None:
                    return json.loads(logged)["v"]
            if rq.txn is not None:
                rq.participants.add(service)
            body = {"req_id": f"{rq.req_id}.{step}", "txn": rq.txn}
            assert self.invoker is not None, "no invoker: this runtime cannot call other services"
            answer = self.invoker(service, method, args, body)
            if answer.get("conflict"):
                raise TxnConflict(f"{service}.{method}: {answer.get('reason', 'lock conflict')}")
            if self.flags.logging:
                with self.store.write() as tx:
                    tx.put(key, json.dumps({"v": answer.get("result")}))
            return answer.get("result")

        if len(calls) == 1:
            return [one(calls[0], steps[0])]
        futures = [self._fanout.submit(one, c, s) for c, s in zip(calls, steps, strict=True)]
        errors = [f.exception() for f in futures]
        for e in errors:
            if e is not None:
                raise e
        return [f.result() for f in futures]

    # -- transactions -------------------------------------------------------------------------------
    def transaction(self, rq: Request, body: Callable[[Request], Any]) -> Any:
        """Run body in a transaction (with ENABLE_TXN): on a conflict abort everywhere and retry at
        once (a busy loop, as upstream). Without ENABLE_TXN, body runs as is."""
        if not self.flags.txn:
            try:
                return body(rq)
            except TxnAbort as a:
                return a.result
        if rq.txn is not None:
            return body(rq)  # inside the caller's transaction
        attempt = 0
        while True:
            rq.txn, rq.participants = f"{rq.req_id}~{attempt}", set()
            try:
                out = body(rq)
            except TxnConflict:
                self.finish(rq, commit=False)
                attempt += 1
                self._count("retries")
                continue
            except TxnAbort as a:
                self.finish(rq, commit=False)
                rq.txn = None
                return a.result
            self.finish(rq, commit=True)
            rq.txn = None
            return out

    def finish(self, rq: Request, commit: bool) -> None:
        """Commit or abort rq's transaction here and in every service it called."""
        txn = rq.txn
        assert txn is not None
        method = "_commit" if commit else "_abort"
        others = sorted(rq.participants - {self.service})
        if others:
            assert self.invoker is not None
            list(self._fanout.map(lambda s: self.invoker(s, method, [], {"txn": txn}), others))
        self.finish_local(txn, commit)

    def finish_local(self, txn: str, commit: bool) -> None:
        with self._held_lock:
            held = self._held.pop(txn, set())
        prefix = f"local/{self.service}/{txn}/"
        with self.store.write() as tx:
            for key, value in tx.scan(prefix):
                if commit:
                    tx.put(key[len(prefix) :], value)
                tx.delete(key)
            for key in held:
                if tx.get(f"lock/{key}") == txn:
                    tx.delete(f"lock/{key}")

    # -- a request ---------------------------------------------------------------------------------
    def handle(self, method: Callable[..., Any], body: dict[str, Any]) -> dict[str, Any]:
        """A request {"args": [...], "req_id": ..., "txn": optional}: its answer, exactly once."""
        req_id = str(body.get("req_id") or "")
        if not req_id:
            raise ValueError("request without req_id (the key of the exactly-once log)")
        rq = Request(req_id=req_id, txn=body.get("txn"))
        ret_key = self._log_key(rq, "ret")
        if self.flags.logging:
            with self.store.read() as tx:
                logged = tx.get(ret_key)
            if logged is not None:
                self._count("replays")
                return {"result": json.loads(logged)["v"]}
        self._count("executions")
        try:
            result = method(rq, *body.get("args", []))
        except TxnConflict as e:
            return {"conflict": True, "reason": str(e)}
        if self.flags.logging:
            with self.store.write() as tx:
                tx.put(ret_key, json.dumps({"v": result}))
        return {"result": result}
