"""Per-request records from a Jaeger query service: what `collect` writes for a stack whose
measurements are span tags (Antipode's DeathStarBench, as its artifact's `gather` reads them).

Jaeger's HTTP query API (GET /api/traces?service=&start=&end=&limit=&lookback=, start/end in µs
since the epoch) answers {"data": [trace...], "errors": [...]}, a trace being {traceID, spans:
[{traceID, spanID, operationName, references, startTime (µs), duration (µs), tags: [{key, type,
value}], processID}], processes: {pN: {serviceName, tags}}}. The API has no offset: a window whose
answer fills `limit` may hold more traces, so it is split in two and each half asked again (traces
deduplicated by traceID). A failed request (no answer, a 5xx, a body that is not Jaeger's JSON, an
`errors` list) is retried with back-off; the last failure is raised with the URL.

Which span tag becomes which field of a record is the experiment's (stack.swarm.traces.fields):
`{span: <operationName>, tag: <key>, scale: <factor>}` or `{span: <operationName>, start: true}`
(the span's startTime), optionally `service: <serviceName>` (that service's span only). A trace
missing any field is skipped and counted, as the artifact does."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchpipe.errors import StackError

# get(url) -> (HTTP status, body); 0 when there was no answer.
Getter = Callable[[str], tuple[int, bytes]]


def urllib_get(url: str, timeout_s: float = 30.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read() or b""
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e).encode()


@dataclass
class QueryStats:
    requests: int = 0
    retries: int = 0
    splits: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class JaegerQuery:
    """One service's traces in [start_us, end_us] from the query service at base_url."""

    base_url: str
    service: str
    limit: int = 1000
    lookback: str = "1h"
    retries: int = 4
    backoff_s: float = 0.5
    min_window_us: int = 1000  # a window this short that still fills the limit is an error
    get: Getter = urllib_get
    stats: QueryStats = field(default_factory=QueryStats)

    def url(self, start_us: int, end_us: int) -> str:
        q = {
            "service": self.service,
            "start": str(start_us),
            "end": str(end_us),
            "limit": str(self.limit),
            "lookback": self.lookback,
        }
        return f"{self.base_url.rstrip('/')}/api/traces?{urllib.parse.urlencode(q)}"

    def _page(self, start_us: int, end_us: int) -> list[dict[str, Any]]:
        url = self.url(start_us, end_us)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            self.stats.requests += 1
            status, body = self.get(url)
            if status != 200:
                last = (
                    f"HTTP {status}: {body[:200].decode(errors='replace')}" if status else f"no answer: {body[:200]!r}"
                )
            else:
                try:
                    doc = json.loads(body)
                except ValueError:
                    last = f"not JSON: {body[:120]!r}"
                else:
                    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
                        last = "no 'data' list in the answer"
                    elif doc.get("errors"):
                        last = f"errors: {doc['errors']}"
                    else:
                        return doc["data"]
            self.stats.errors.append(last)
        raise StackError(f"Jaeger query {url} failed {self.retries + 1} times; last: {last}")

    def traces(self, start_us: int, end_us: int) -> list[dict[str, Any]]:
        """Every trace of the service that started in the window, each once."""
        found: dict[str, dict[str, Any]] = {}
        windows = [(start_us, end_us)]
        while windows:
            a, b = windows.pop()
            page = self._page(a, b)
            for t in page:
                found.setdefault(str(t.get("traceID")), t)
            if len(page) >= self.limit:
                if b - a <= self.min_window_us:
                    raise StackError(
                        f"Jaeger query {self.url(a, b)}: {len(page)} traces in {b - a} µs fill limit {self.limit}; "
                        "raise stack.swarm.traces.limit"
                    )
                self.stats.splits += 1
                mid = (a + b) // 2
                windows += [(a, mid), (mid + 1, b)]
        return list(found.values())


def _tag(span: dict[str, Any], key: str) -> Any:
    for t in span.get("tags") or []:
        if t.get("key") == key:
            return t.get("value")
    return None


def _value(raw: Any, spec: dict[str, Any]) -> Any:
    if isinstance(raw, bool) or raw in ("true", "false", "True", "False"):
        return raw if isinstance(raw, bool) else raw.lower() == "true"
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return raw
    v *= float(spec.get("scale", 1))
    return int(v) if v.is_integer() else v


def _service(trace: dict[str, Any], span: dict[str, Any]) -> str:
    """The span's service: its process in the trace's processes (Jaeger's JSON model)."""
    proc = (trace.get("processes") or {}).get(span.get("processID")) or span.get("process") or {}
    return str(proc.get("serviceName", ""))


def _span(trace: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    """The trace's first span of the operation (of `service`, where the field names one: both
    regions' write-home-timeline services fan out, only the reader region's read counts)."""
    for s in trace.get("spans") or []:
        if s.get("operationName") == spec["span"] and ("service" not in spec or _service(trace, s) == spec["service"]):
            return s
    return None


def records(traces: list[dict[str, Any]], fields: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(one record per trace holding every field, count of traces skipped for a missing one)."""
    out, skipped = [], 0
    for trace in traces:
        rec: dict[str, Any] = {"trace_id": trace.get("traceID")}
        for name, spec in fields.items():
            span = _span(trace, spec)
            if span is None:
                break
            raw = span.get("startTime") if spec.get("start") else _tag(span, spec["tag"])
            if raw is None:
                break
            rec[name] = _value(raw, spec)
        else:
            out.append(rec)
            continue
        skipped += 1
    out.sort(key=lambda r: str(r["trace_id"]))
    return out, skipped


def collect_records(
    query: JaegerQuery,
    start_us: int,
    end_us: int,
    fields: dict[str, dict[str, Any]],
    expected: int,
    settle_s: float = 3.0,
    timeout_s: float = 60.0,
) -> tuple[list[dict[str, Any]], int, int]:
    """Records of the window, asked again until `expected` are complete or the count stops growing
    for settle_s (spans reach Jaeger asynchronously, through its agent). Returns (records, skipped,
    traces queried)."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while True:
        traces = query.traces(start_us, end_us)
        recs, skipped = records(traces, fields)
        if len(recs) >= expected or time.monotonic() > deadline:
            return recs, skipped, len(traces)
        if len(recs) != last:
            last, since = len(recs), time.monotonic()
        elif time.monotonic() - since >= settle_s:
            return recs, skipped, len(traces)
        time.sleep(0.5)
