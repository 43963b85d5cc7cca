"""The Halfmoon workloads as functions over the Store. Each request names its function in the body:

    {"Async": true, "Input": {"Function": "<name>", ...optional parameters...}}

Parameters not given are drawn by the function itself (the seed's wrk scripts draw them in Lua).
Every function returns a JSON-able dict: its output, base64-encoded in async_results.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    kinds: tuple[str, ...] = ()

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.s = store, settings

    def populate(self) -> None: ...

    def call(self, kind: str, params: dict[str, Any], rng: random.Random) -> Output:
        fn = getattr(self, f"fn_{kind}", None)
        if kind not in self.kinds or fn is None:
            raise KeyError(f"{self.name} has no function {kind!r}; expected one of {', '.join(self.kinds)}")
        self.store.count_request(kind)
        return fn(params, rng)


class Hotel(App):
    """DeathStarBench hotel reservation: search, recommend, user, reserve."""

    name = "hotel"
    kinds = ("search", "recommend", "user", "reserve")
    HOTELS, USERS, NEARBY = 80, 500, 5

    def populate(self) -> None:
        items = [("geo:index", _j(list(range(self.HOTELS))))]
        for h in range(self.HOTELS):
            items += [
                (f"rate:{h}", _j({"hotel": h, "price": 100 + h})),
                (f"profile:{h}", _j({"hotel": h, "name": f"hotel {h}", "rating": h % 5})),
                (f"capacity:{h}", _j(200)),
            ]
        items += [(f"user:{u}", _j({"user": u, "password": f"pw{u}"})) for u in range(self.USERS)]
        items.append(("recommend:index", _j(list(range(self.HOTELS)))))
        self.store.populate(items)

    def _nearby(self, kind: str, rng: random.Random) -> list[int]:
        ids = json.loads(self.store.read(kind, "geo:index") or b"[]")
        return rng.sample(ids, self.NEARBY)

    def fn_search(self, p: dict[str, Any], rng: random.Random) -> Output:
        hotels = self._nearby("search", rng)  # 1 read
        rates = [json.loads(self.store.read("search", f"rate:{h}") or b"{}") for h in hotels]  # 5 reads
        profiles = [json.loads(self.store.read("search", f"profile:{h}") or b"{}") for h in hotels]  # 5 reads
        return {"hotels": [r.get("hotel") for r in rates], "names": [x.get("name") for x in profiles]}

    def fn_recommend(self, p: dict[str, Any], rng: random.Random) -> Output:
        ids = json.loads(self.store.read("recommend", "recommend:index") or b"[]")  # 1 read
        best = rng.sample(ids, self.NEARBY)
        profiles = [json.loads(self.store.read("recommend", f"profile:{h}") or b"{}") for h in best]  # 5 reads
        return {"recommended": [x.get("hotel") for x in profiles]}

    def fn_user(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = int(p.get("UserId", rng.randrange(self.USERS)))
        rec = json.loads(self.store.read("user", f"user:{u}") or b"{}")  # 1 read
        return {"ok": rec.get("password") == f"pw{u}"}

    def fn_reserve(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = int(p.get("UserId", rng.randrange(self.USERS)))
        h = int(p.get("HotelId", rng.randrange(self.HOTELS)))
        self.store.read("reserve", f"user:{u}")  # 1 read: the user exists
        left = json.loads(self.store.read("reserve", f"capacity:{h}") or b"0")  # 1 read
        ok = left > 0
        if ok:
            self.store.write("reserve", f"capacity:{h}", _j(left - 1))  # 1 write
        return {"reserved": ok}


class Movie(App):
    """DeathStarBench media: Frontend -> ComposeReview chain (unique id, text, movie, user, rating, stores)."""

    name = "movie"
    kinds = ("compose",)
    MOVIES, USERS = 1000, 1000

    def populate(self) -> None:
        items = [(f"movie:{m}", _j({"title": f"movie {m}", "id": m})) for m in range(self.MOVIES)]
        items += [(f"muser:{u}", _j({"user": u})) for u in range(self.USERS)]
        items += [(f"movie-reviews:{m}", _j([])) for m in range(self.MOVIES)]
        items += [(f"user-reviews:{u}", _j([])) for u in range(self.USERS)]
        self.store.populate(items)

    def fn_compose(self, p: dict[str, Any], rng: random.Random) -> Output:
        st = self.store
        m, u = rng.randrange(self.MOVIES), rng.randrange(self.USERS)
        review = f"r{time.time_ns()}-{rng.getrandbits(32)}"
        st.write("compose", f"review-id:{review}", _j(review))  # UniqueId
        st.write("compose", f"review-text:{review}", _j("x" * rng.randint(50, 200)))  # Text
        st.read("compose", f"movie:{m}")  # MovieId
        st.read("compose", f"muser:{u}")  # User
        st.write("compose", f"review-rating:{review}", _j(rng.randint(0, 10)))  # Rating
        st.write("compose", f"review:{review}", _j({"movie": m, "user": u}))  # ReviewStorage
        ur = json.loads(st.read("compose", f"user-reviews:{u}") or b"[]")  # UserReview
        st.write("compose", f"user-reviews:{u}", _j(([*ur, review])[-20:]))
        mr = json.loads(st.read("compose", f"movie-reviews:{m}") or b"[]")  # MovieReview
        st.write("compose", f"movie-reviews:{m}", _j(([*mr, review])[-20:]))
        return {"review": review}


class Retwis(App):
    """Retwis: login, profile, timeline, post (with fan-out to followers' timelines)."""

    name = "retwis"
    kinds = ("login", "profile", "timeline", "post")

    def populate(self) -> None:
        n, f = self.s.num_users, self.s.num_followers
        rng = random.Random(7)
        items = []
        for u in range(n):
            items += [
                (f"ruser:{u}", _j({"user": u, "password": f"pw{u}"})),
                (f"followers:{u}", _j(rng.sample(range(n), min(f, n)))),
                (f"timeline:{u}", _j([])),
            ]
        self.store.populate(items)

    def _user(self, p: dict[str, Any], rng: random.Random) -> int:
        return int(p.get("UserId", rng.randrange(self.s.num_users)))

    def fn_login(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p, rng)
        rec = json.loads(self.store.read("login", f"ruser:{u}") or b"{}")  # 1 read
        return {"ok": rec.get("password") == f"pw{u}"}

    def fn_profile(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p, rng)
        rec = json.loads(self.store.read("profile", f"ruser:{u}") or b"{}")  # 1 read
        followers = json.loads(self.store.read("profile", f"followers:{u}") or b"[]")  # 1 read
        return {"user": rec.get("user"), "followers": len(followers)}

    def fn_timeline(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p, rng)
        posts = json.loads(self.store.read("timeline", f"timeline:{u}") or b"[]")  # 1 read
        shown = posts[-self.s.max_return_posts :]
        bodies = [self.store.read("timeline", f"post:{pid}") for pid in shown]  # up to 5 reads
        return {"posts": len([b for b in bodies if b])}

    def fn_post(self, p: dict[str, Any], rng: random.Random) -> Output:
        u = self._user(p, rng)
        pid = f"{u}-{time.time_ns()}-{rng.getrandbits(24)}"
        self.store.write("post", f"post:{pid}", _j({"user": u, "text": "x" * 64}))  # 1 write
        followers = json.loads(self.store.read("post", f"followers:{u}") or b"[]")  # 1 read
        for f in followers:  # fan-out: a read and a write per follower
            tl = json.loads(self.store.read("post", f"timeline:{f}") or b"[]")
            self.store.write("post", f"timeline:{f}", _j(([*tl, pid])[-50:]))
        return {"post": pid, "fanout": len(followers)}


class KeyValue(App):
    """singleop, rw and switching: operations over NUM_KEYS keys of VALUE_SIZE bytes."""

    name = "rw"
    kinds = ("singleop", "rw", "nop")

    def populate(self) -> None:
        v = b"v" * self.s.value_size
        self.store.populate([(f"k{i}", v) for i in range(self.s.num_keys)])

    def fn_nop(self, p: dict[str, Any], rng: random.Random) -> Output:
        return {}

    def fn_singleop(self, p: dict[str, Any], rng: random.Random) -> Output:
        """One read, one write, one invoke of a nop function, each timed (ms), like the seed's output."""
        t0 = time.perf_counter()
        self.store.read("singleop", f"k{rng.randrange(self.s.num_keys)}")
        t1 = time.perf_counter()
        self.store.write("singleop", f"k{rng.randrange(self.s.num_keys)}", rng.randbytes(self.s.value_size))
        t2 = time.perf_counter()
        if self.s.invoke is not None:
            self.s.invoke(lambda: self.call("nop", {}, rng))
        t3 = time.perf_counter()
        return {"Read": (t1 - t0) * 1e3, "Write": (t2 - t1) * 1e3, "Invoke": (t3 - t2) * 1e3}

    def fn_rw(self, p: dict[str, Any], rng: random.Random) -> Output:
        n = int(p.get("NumOps", self.s.num_ops))
        ratio = float(p.get("ReadRatio", self.s.read_ratio))
        reads = int(n * ratio)
        for i in range(n):
            key = f"k{rng.randrange(self.s.num_keys)}"
            if i < reads:
                self.store.read("rw", key)
            else:
                self.store.write("rw", key, rng.randbytes(self.s.value_size))
            time.sleep(self.s.op_sleep_s)  # part of the workload (the seed's rw sleeps 5 ms per op)
        return {"LogSize": self.store.log_size(), "Reads": reads, "Writes": n - reads}


APPS: dict[str, type[App]] = {
    "hotel": Hotel,
    "movie": Movie,
    "retwis": Retwis,
    "singleop": KeyValue,
    "rw": KeyValue,
    "switching": KeyValue,
}
