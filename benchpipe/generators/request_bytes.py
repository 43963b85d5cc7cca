"""The bytes of each request the built-in generator sends, produced per request.

A mix kind whose body is static is rendered once (request line, headers, JSON body) and the same
bytes are written for every request of that kind; `next()` only draws the kind. A kind whose body
is drawn per request (body templates) plugs in here as another source with the same `next()`, so
the sending loop does not change.
"""

from __future__ import annotations

import bisect
import json
import random
from itertools import accumulate
from typing import Protocol
from urllib.parse import SplitResult

from benchpipe.generators import templates
from benchpipe.model import Mix, RequestKind


class RequestSource(Protocol):
    names: list[str]  # the mix's kinds; next() returns an index into this list

    def next(self) -> tuple[int, bytes]: ...


def render(url: SplitResult, kind: RequestKind, body: bytes) -> bytes:
    """One HTTP/1.1 keep-alive POST of `body` to the kind's path under the target's path."""
    path = url.path.rstrip("/") + kind.path
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {kind.content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _static_body(kind: RequestKind) -> bytes:
    if kind.encoding == "form":
        # None for a templated kind: TemplatedRequests renders those per request.
        return templates.compile_kind(kind.name, kind.body, kind.vars, encoding="form").static or b""
    return json.dumps(kind.body).encode()


class StaticRequests:
    """Each kind's request rendered once; kinds drawn by weight (no draw with a single kind)."""

    def __init__(self, url: SplitResult, mix: Mix, rng: random.Random) -> None:
        kinds = mix.normalized()
        self.names = [k.name for k, _ in kinds]
        self.bytes = [render(url, k, _static_body(k)) for k, _ in kinds]
        self.cum = list(accumulate(w for _, w in kinds))
        self.cum[-1] = 1.0  # no index past the end from rounding
        self.random = rng.random

    def next(self) -> tuple[int, bytes]:
        if len(self.bytes) == 1:
            return 0, self.bytes[0]
        i = bisect.bisect_right(self.cum, self.random())
        return i, self.bytes[i]


class TemplatedRequests(StaticRequests):
    """As StaticRequests, but a kind with a body template (`vars`) renders a fresh body per request."""

    def __init__(self, url: SplitResult, mix: Mix, rng: random.Random) -> None:
        super().__init__(url, mix, rng)
        self.url, self.rng = url, rng
        self.templates = templates.MixTemplates(mix)
        self.kinds = [k for k, _ in mix.normalized()]
        self.fresh = [self.templates.templates[k.name].static is None for k in self.kinds]

    def next(self) -> tuple[int, bytes]:
        i, static = super().next()
        if not self.fresh[i]:
            return i, static
        return i, render(self.url, self.kinds[i], self.templates.body(self.kinds[i].name, self.rng))


def source_for(url: SplitResult, mix: Mix, rng: random.Random) -> RequestSource:
    """The request source of a mix: pre-rendered bytes, unless an entry draws fields per request."""
    if any(getattr(k, "vars", None) for k in mix.kinds):
        return TemplatedRequests(url, mix, rng)
    return StaticRequests(url, mix, rng)
