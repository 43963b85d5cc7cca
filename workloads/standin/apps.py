"""The Halfmoon workloads as functions over the Store, called with the real request shapes.

A request reaches an entry function by its path (`/asyncFunction/<name>`, `/function/<name>`); a
name the app has no entry for is not served (404, as the real gateway). Entries that dispatch on
`Input.Function` (hotel's gateway, movie's Frontend, retwis's login/profile/timeline/post) take the
request's parameters from `Input.Input` and accept exactly the real names (`search`, `Compose`,
`Login`, ...); any other name, or a missing parameter, makes the call fail, as the real handlers
panic: it is recorded in async_results with success false. The parameters are the ones the real
load sends (reference/halfmoon-real-services.md section 5.2); every function returns a JSON-able dict.
"""

from __future__ import annotations

import json
import random
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from standin.store import Store

Output = dict[str, Any]


@dataclass
class Settings:
    num_keys: int = 1000
    value_size: int = 256
    num_ops: int = 10
    read_ratio: float = 0.5
    num_users: int = 1000
    num_followers: int = 8
    max_return_posts: int = 5
    op_sleep_s: float = 0.005  # rw: the seed's function sleeps 5 ms after each operation
    invoke: Callable[[Callable[[], Any]], Any] | None = field(default=None, repr=False)


def _j(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class App:
    name = ""
    # URL function name -> the Input.Function values it dispatches on (empty: the name is the call).
    entries: ClassVar[dict[str, tuple[str, ...]]] = {}
    # request kind -> the method that runs it
    handlers: ClassVar[dict[str, str]] = {}

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.s = store, settings

    def populate(self) -> None: ...

    def route(self, fn: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """(request kind, parameters) of a request to `fn`, or None when the app has no such function."""
        if fn not in self.entries:
            return None
        inp = body.get("Input") if isinstance(body.get("Input"), dict) else {}
        if not self.entries[fn]:
            return fn, inp
        kind = inp.get("Function")
        inner = inp.get("Input")
        # A name the entry does not dispatch on is still a call (the handler panics on it).
        return (kind if kind in self.entries[fn] else f"{fn}?{kind}"), inner if isinstance(inner, dict) else {}

    def call(self, kind: str, params: dict[str, Any], rng: random.Random) -> Output:
        if kind not in self.handlers:
            known = ", ".join(k for names in self.entries.values() for k in names) or ", ".join(self.entries)
            raise KeyError(f"{self.name} has no function {kind!r}; expected one of {known}")
        self.store.count_request(kind)
        return getattr(self, self.handlers[kind])(params, rng)


def _suffix(value: Any, prefix: str, what: str) -> int:
    """The number in a name such as username_12; a malformed one fails the call."""
    m = re.fullmatch(re.escape(prefix) + r"(\d+)", str(value))
    if not m:
        raise ValueError(f"{what}: expected {prefix}<number>, got {value!r}")
    return int(m.group(1))


def _fields(p: dict[str, Any], numbers: tuple[str, ...] = (), strings: tuple[str, ...] = ()) -> None:
    """The real handlers' type assertions: a missing or mistyped field fails the call."""
    for key in numbers:
        _number(p, key)
    for key in strings:
        if not isinstance(p[key], str):
            raise TypeError(f"{key}: expected a JSON string, got {p[key]!r}")


def _number(p: dict[str, Any], key: str) -> float:
    v = p[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"{key}: expected a JSON number, got {v!r}")
    return float(v)


class Hotel(App):
    """DeathStarBench hotel reservation behind its gateway function: search, recommend, user, reserve."""

    name = "hotel"
    entries: ClassVar[dict[str, tuple[str, ...]]] = {"gateway": ("search", "recommend", "user", "reserve")}
    handlers: ClassVar[dict[str, str]] = {k: f"fn_{k}" for k in entries["gateway"]}
    HOTELS, NEARBY = 80, 5
    USERS = 501  # Cornell_0 ... Cornell_500
    ROOMS = 100  # hotel and flight ids 0 ... 99

    def populate(self) -> None:
        items = [("geo:index", _j(list(range(self.HOTELS))))]
        for h in range(self.HOTELS):
            items += [
                (f"rate:{h}", _j({"hotel": h, "price": 100 + h})),
                (f"profile:{h}", _j({"hotel": h, "name": f"hotel {h}", "rating": h % 5})),
            ]
        items += [(f"capacity:{h}", _j(200)) for h in range(self.ROOMS)]
        items += [(f"seats:{f}", _j(200)) for f in range(self.ROOMS)]
        items += [(f"user:Cornell_{u}", _j({"password": str(u) * 10})) for u in range(self.USERS)]
        items.append(("recommend:index", _j(list(range(self.HOTELS)))))
        self.store.populate(items)

    def _nearby(self, kind: str, rng: random.Random) -> list[int]:
        ids = json.loads(self.store.read(kind, "geo:index") or b"[]")
        return rng.sample(ids, self.NEARBY)

    def fn_search(self, p: dict[str, Any], rng: random.Random) -> Output:
        _fields(p, numbers=("Lat", "Lon"), strings=("InDate", "OutDate"))
        hotels = self._nearby("search", rng)  # 1 read
        rates = [json.loads(self.store.read("search", f"rate:{h}") or b"{}") for h in hotels]  # 5 reads
        profiles = [json.loads(self.store.read("search", f"profile:{h}") or b"{}") for h in hotels]  # 5 reads
        return {"hotels": [r.get("hotel") for r in rates], "names": [x.get("name") for x in profiles]}

    def fn_recommend(self, p: dict[str, Any], rng: random.Random) -> Output:
        if p["Require"] not in ("dis", "rate", "price"):
            raise ValueError(f"Require: expected dis, rate or price, got {p['Require']!r}")
        _fields(p, numbers=("Lat", "Lon"))
        ids = json.loads(self.store.read("recommend", "recommend:index") or b"[]")  # 1 read
        best = rng.sample(ids, self.NEARBY)
        profiles = [json.loads(self.store.read("recommend", f"profile:{h}") or b"{}") for h in best]  # 5 reads
        return {"recommended": [x.get("hotel") for x in profiles]}

    def fn_user(self, p: dict[str, Any], rng: random.Random) -> Output:
        rec = json.loads(self.store.read("user", f"user:{p['Username']}") or b"{}")  # 1 read
        return {"ok": rec.get("password") == p["Password"]}

    def fn_reserve(self, p: dict[str, Any], rng: random.Random) -> Output:
        user, h, f = str(p["userId"]), int(p["hotelId"]), int(p["flightId"])
        self.store.read("reserve", f"user:{user}")  # 1 read: the user
        rooms = json.loads(self.store.read("reserve", f"capacity:{h}") or b"0")  # 1 read
        seats = json.loads(self.store.read("reserve", f"seats:{f}") or b"0")  # 1 read
        ok = rooms > 0 and seats > 0
        if ok:
            self.store.write("reserve", f"capacity:{h}", _j(rooms - 1))  # 1 write
            self.store.write("reserve", f"seats:{f}", _j(seats - 1))  # 1 write
        return {"reserved": ok}


class Movie(App):
    """DeathStarBench media: Frontend -> ComposeReview chain (unique id, text, movie, user, rating, stores)."""

    name = "movie"
    entries: ClassVar[dict[str, tuple[str, ...]]] = {"Frontend": ("Compose",)}
    handlers: ClassVar[dict[str, str]] = {"Compose": "fn_compose"}
    MOVIES, USERS = 1000, 1000

    def populate(self) -> None:
        items = [(f"movie:{m}", _j({"id": m})) for m in range(self.MOVIES)]
        items += [(f"muser:{u}", _j({"password": f"password_{u}"})) for u in range(self.USERS)]
        items += [(f"movie-reviews:{m}", _j([])) for m in range(self.MOVIES)]
        items += [(f"user-reviews:{u}", _j([])) for u in range(self.USERS)]
        self.store.populate(items)

    def fn_compose(self, p: dict[str, Any], rng: random.Random) -> Output:
        st = self.store
        u = _suffix(p["Username"], "username_", "Username")
        _fields(p, numbers=("Rating",), strings=("Password", "Title", "Text"))
        rating, text = p["Rating"], p["Text"]
        m = zlib.crc32(str(p["Title"]).encode()) % self.MOVIES  # the title's movie (MovieId's lookup)
        review = f"r{time.time_ns()}-{rng.getrandbits(32)}"
        st.write("Compose", f"review-id:{review}", _j(review))  # UniqueId
        st.write("Compose", f"review-text:{review}", _j(text))  # Text
        st.read("Compose", f"movie:{m}")  # MovieId
        st.read("Compose", f"muser:{u}")  # User
        st.write("Compose", f"review-rating:{review}", _j(rating))  # Rating
        st.write("Compose", f"review:{review}", _j({"movie": m, "user": u}))  # ReviewStorage
        ur = json.loads(st.read("Compose", f"user-reviews:{u}") or b"[]")  # UserReview
        st.write("Compose", f"user-reviews:{u}", _j(([*ur, review])[-20:]))
        mr = json.loads(st.read("Compose", f"movie-reviews:{m}") or b"[]")  # MovieReview
        st.write("Compose", f"movie-reviews:{m}", _j(([*mr, review])[-20:]))
        return {"review": review}


class Retwis(App):
    """Retwis: login, profile, timeline, post (with fan-out to followers' timelines), each its own function."""

    name = "retwis"
    entries: ClassVar[dict[str, tuple[str, ...]]] = {
        "login": ("Login",),
        "profile": ("Profile",),
        "timeline": ("Timeline",),
        "post": ("Post",),
    }
    handlers: ClassVar[dict[str, str]] = {
        "Login": "fn_login",
        "Profile": "fn_profile",
        "Timeline": "fn_timeline",
        "Post": "fn_post",
    }

    def populate(self) -> None:
        n, f = self.s.num_users, self.s.num_followers
        rng = random.Random(7)
        items = []
        for u in range(n):
            items += [
                (f"ruser:{u}", _j({"user": u, "password": f"pwd{u}"})),
                (f"followers:{u}", _j(rng.sample(range(n), min(f, n)))),
                (f"timeline:{u}", _j([])),
            ]
        self.store.populate(items)

    def _user(self, p: dict[str, Any]) -> int:
        return _suffix(p["Username"], "user", "Username")

    def fn_login(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p)
        rec = json.loads(self.store.read("Login", f"ruser:{u}") or b"{}")  # 1 read
        return {"ok": rec.get("password") == p["Password"]}

    def fn_profile(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p)
        rec = json.loads(self.store.read("Profile", f"ruser:{u}") or b"{}")  # 1 read
        followers = json.loads(self.store.read("Profile", f"followers:{u}") or b"[]")  # 1 read
        return {"user": rec.get("user"), "followers": len(followers)}

    def fn_timeline(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p)
        posts = json.loads(self.store.read("Timeline", f"timeline:{u}") or b"[]")  # 1 read
        shown = posts[-self.s.max_return_posts :]
        bodies = [self.store.read("Timeline", f"post:{pid}") for pid in shown]  # up to 5 reads
        return {"posts": len([b for b in bodies if b])}

    def fn_post(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p)
        pid = f"{u}-{time.time_ns()}-{rng.getrandbits(24)}"
        self.store.write("Post", f"post:{pid}", _j({"user": u, "text": str(p["Content"])}))  # 1 write
        followers = json.loads(self.store.read("Post", f"followers:{u}") or b"[]")  # 1 read
        for f in followers:  # fan-out: a read and a write per follower
            tl = json.loads(self.store.read("Post", f"timeline:{f}") or b"[]")
            self.store.write("Post", f"timeline:{f}", _j(([*tl, pid])[-50:]))
        return {"post": pid, "fanout": len(followers)}


class KeyValue(App):
    """singleop and rw (overhead): operations over NUM_KEYS keys of VALUE_SIZE bytes; the body's Input
    is ignored (the real functions take their parameters from the environment)."""

    name = "rw"
    entries: ClassVar[dict[str, tuple[str, ...]]] = {"singleop": (), "nop": (), "rw": ()}
    handlers: ClassVar[dict[str, str]] = {"singleop": "fn_singleop", "nop": "fn_nop", "rw": "fn_rw"}

    def populate(self) -> None:
        v = b"v" * self.s.value_size
        self.store.populate([(f"k{i}", v) for i in range(self.s.num_keys)])

    def fn_nop(self, p: dict[str, Any], rng: random.Random) -> Output:
        return {}

    def fn_singleop(self, p: dict[str, Any], rng: random.Random) -> Output:
        """One read, one write, one synchronous invoke of nop, each timed; in µs under Output, as the real one."""
        t0 = time.perf_counter()
        self.store.read("singleop", f"k{rng.randrange(self.s.num_keys)}")
        t1 = time.perf_counter()
        self.store.write("singleop", f"k{rng.randrange(self.s.num_keys)}", rng.randbytes(self.s.value_size))
        t2 = time.perf_counter()
        if self.s.invoke is not None:
            self.s.invoke(lambda: self.call("nop", {}, rng))
        t3 = time.perf_counter()
        return {
            "Output": {
                "Read": round((t1 - t0) * 1e6),
                "Write": round((t2 - t1) * 1e6),
                "Invoke": round((t3 - t2) * 1e6),
            }
        }

    def _ops(self, kind: str, n: int, ratio: float, rng: random.Random, log: frozenset[str] | None, sleep: bool) -> int:
        reads = int(n * ratio)
        for i in range(n):
            key = f"k{rng.randrange(self.s.num_keys)}"
            if i < reads:
                self.store.read(kind, key, log)
            else:
                self.store.write(kind, key, rng.randbytes(self.s.value_size), log)
            if sleep:
                time.sleep(self.s.op_sleep_s)  # part of the workload (the seed's rw sleeps 5 ms per op)
        return reads

    def fn_rw(self, p: dict[str, Any], rng: random.Random) -> Output:
        n, reads = self.s.num_ops, self._ops("rw", self.s.num_ops, self.s.read_ratio, rng, None, True)
        return {"LogSize": self.store.log_size(), "Reads": reads, "Writes": n - reads}


# What each mode of the switching rw logs. TRANSITIONAL logs both, so a call is safe under either
# protocol while calls of the old mode are still running (an inference from the paper's design).
SWITCHING_LOGGED = {
    "READLOG": frozenset({"read"}),
    "WRITELOG": frozenset({"write"}),
    "TRANSITIONAL": frozenset({"read", "write"}),
}


class Switching(KeyValue):
    """Figure 15's rw: the logging mode, the op count and the read ratio travel in every request
    (Input.mode, Input.nOps, Input.readRatio; a missing one fails the call); no sleep."""

    name = "switching"
    entries: ClassVar[dict[str, tuple[str, ...]]] = {"rw": ()}
    handlers: ClassVar[dict[str, str]] = {"rw": "fn_rw"}

    def fn_rw(self, p: dict[str, Any], rng: random.Random) -> Output:
        mode = p["mode"]
        if mode not in SWITCHING_LOGGED:
            raise ValueError(f"mode: expected one of {', '.join(SWITCHING_LOGGED)}, got {mode!r}")
        n, ratio = int(_number(p, "nOps")), _number(p, "readRatio")
        reads = self._ops("rw", n, ratio, rng, SWITCHING_LOGGED[mode], False)
        return {"Mode": mode, "Reads": reads, "Writes": n - reads}


APPS: dict[str, type[App]] = {
    "hotel": Hotel,
    "movie": Movie,
    "retwis": Retwis,
    "singleop": KeyValue,
    "rw": KeyValue,
    "switching": Switching,
}
