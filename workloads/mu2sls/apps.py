"""The applications of the paper's Figures 9-11, written against the runtime (not upstream's code).

Each service is a class; its public methods are the endpoints (POST /<method> with
{"args": [...], "req_id": ...}). Persistent fields are dicts in the store (runtime.get/put).
"""

from __future__ import annotations

import hashlib
from typing import Any

from mu2sls.runtime import Request, Runtime, TxnAbort

HOTEL_ITEMS = 100  # populate_hotel.py: 100 hotels and 100 flights
HOTEL_CAPACITY = 10_000_000
MEDIA_USERS = 100  # populate_media.py: 100 users, no movie titles


class Service:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def populate(self) -> None:
        """Initial state of a fresh point."""

    @classmethod
    def methods(cls) -> set[str]:
        return {m for m in vars(cls) if not m.startswith("_") and m not in ("populate", "methods")}


# -- Stateful Counter, Chain Counter -----------------------------------------------------------------
class Backend(Service):
    def req(self, rq: Request, v: Any) -> int:
        def body(rq: Request) -> int:
            n = (self.rt.get(rq, "val", str(v)) or 0) + 1
            self.rt.put(rq, "val", str(v), n)
            return n

        return self.rt.transaction(rq, body)


class Caller1(Service):
    def req(self, rq: Request, v: Any) -> Any:
        return self.rt.invoke(rq, "caller2", "req", [v])


class Caller2(Service):
    def req(self, rq: Request, v: Any) -> Any:
        return self.rt.invoke(rq, "backend", "req", [v])


# -- Cross Service Txn (tree) -----------------------------------------------------------------------
class CallerTxn(Service):
    def req(self, rq: Request, v: Any) -> Any:
        return self.rt.transaction(
            rq, lambda rq: self.rt.invoke_all(rq, [("backend1", "req", [v]), ("backend2", "req", [v])])
        )


class TxnBackend(Service):
    """Increments its own counter inside the caller's transaction."""

    def req(self, rq: Request, v: Any) -> int:
        n = (self.rt.get(rq, "val", str(v)) or 0) + 1
        self.rt.put(rq, "val", str(v), n)
        return n


# -- Media (compose review) --------------------------------------------------------------------------
class MediaFrontend(Service):
    def compose(self, rq: Request, username: str, password: str, title: str, rating: int, text: str) -> Any:
        token = self.rt.invoke(rq, "user", "login", [username, password])
        if token is None:
            return None
        review_req = rq.req_id  # a fresh id per request, as upstream's uuid4
        self.rt.invoke(rq, "composereview", "upload_req", [review_req])
        # Upstream calls these one after another (SyncInvoke).
        self.rt.invoke(rq, "uniqueid", "upload_unique_id", [review_req])
        self.rt.invoke(rq, "user", "upload_user", [review_req, username])
        self.rt.invoke(rq, "movieid", "upload_movie", [review_req, title, rating])
        self.rt.invoke(rq, "text", "upload_text", [review_req, text])
        return token


class User(Service):
    def populate(self) -> None:
        users = {
            f"username_{i}": {"user_id": i, "password": hashlib.sha256(f"password_{i}".encode()).hexdigest()}
            for i in range(MEDIA_USERS)
        }
        self.rt.populate("users", users)

    def login(self, rq: Request, username: str, password: str) -> str | None:
        user = self.rt.get(rq, "users", username)
        if user is None or user["password"] != hashlib.sha256(password.encode()).hexdigest():
            return None
        return f"token-{username}"

    def upload_user(self, rq: Request, req_id: str, username: str) -> None:
        user = self.rt.get(rq, "users", username)
        self.rt.invoke(rq, "composereview", "upload_user_id", [req_id, user["user_id"]])


class UniqueId(Service):
    def upload_unique_id(self, rq: Request, req_id: str) -> None:
        review_id = int(hashlib.sha256(req_id.encode()).hexdigest()[:15], 16)
        self.rt.invoke(rq, "composereview", "upload_unique_id", [req_id, review_id])


class MovieId(Service):
    def upload_movie(self, rq: Request, req_id: str, title: str, rating: int) -> None:
        movie_id = self.rt.get(rq, "movies", title)
        if movie_id is None:
            return  # no titles are registered (as upstream's populate): the compose stops at 3 of 5
        self.rt.invoke_all(
            rq,
            [
                ("composereview", "upload_movie_id", [req_id, movie_id]),
                ("composereview", "upload_rating", [req_id, rating]),
            ],
        )


class Text(Service):
    def upload_text(self, rq: Request, req_id: str, text: str) -> None:
        self.rt.invoke(rq, "composereview", "upload_text", [req_id, text])


class ComposeReview(Service):
    def _upload(self, rq: Request, req_id: str, fld: str, value: Any) -> None:
        review = self.rt.get(rq, "reqs", req_id) or {"counter": 0}
        review[fld] = value
        review["counter"] += 1
        self.rt.put(rq, "reqs", req_id, review)
        review = self.rt.get(rq, "reqs", req_id)
        if review["counter"] == 5:
            self.rt.invoke_all(
                rq,
                [
                    ("reviewstorage", "store_review", [review]),
                    ("userreview", "upload_user_review", [review["user_id"], review["review_id"]]),
                    ("moviereview", "upload_movie_review", [review["movie_id"], review["review_id"]]),
                ],
            )
            self.rt.pop(rq, "reqs", req_id)

    def upload_req(self, rq: Request, req_id: str) -> None:
        self.rt.put(rq, "reqs", req_id, {"counter": 0})

    def upload_unique_id(self, rq: Request, req_id: str, review_id: int) -> None:
        self._upload(rq, req_id, "review_id", review_id)

    def upload_text(self, rq: Request, req_id: str, text: str) -> None:
        self._upload(rq, req_id, "text", text)

    def upload_rating(self, rq: Request, req_id: str, rating: int) -> None:
        self._upload(rq, req_id, "rating", rating)

    def upload_user_id(self, rq: Request, req_id: str, user_id: int) -> None:
        self._upload(rq, req_id, "user_id", user_id)

    def upload_movie_id(self, rq: Request, req_id: str, movie_id: int) -> None:
        self._upload(rq, req_id, "movie_id", movie_id)


class ReviewStorage(Service):
    def store_review(self, rq: Request, review: dict[str, Any]) -> None:
        self.rt.put(rq, "reviews", str(review["review_id"]), review)


class UserReview(Service):
    def upload_user_review(self, rq: Request, user_id: int, review_id: int) -> None:
        reviews = self.rt.get(rq, "reviews", str(user_id)) or []
        self.rt.put(rq, "reviews", str(user_id), [*reviews, review_id])


class MovieReview(Service):
    def upload_movie_review(self, rq: Request, movie_id: int, review_id: int) -> None:
        reviews = self.rt.get(rq, "reviews", str(movie_id)) or []
        self.rt.put(rq, "reviews", str(movie_id), [*reviews, review_id])


# -- Travel Reservation (hotel) -------------------------------------------------------------------
class HotelFrontend(Service):
    def req(self, rq: Request, user_id: str, flight_id: str, hotel_id: str) -> Any:
        def body(rq: Request) -> Any:
            hotel_ok, flight_ok = self.rt.invoke_all(
                rq,
                [("hotel", "reserve_hotel", [hotel_id, user_id]), ("flight", "reserve_flight", [flight_id, user_id])],
            )
            if not hotel_ok:
                raise TxnAbort([False, "Hotel Reservation Failed"])
            if not flight_ok:
                raise TxnAbort([False, "Flight Reservation Failed"])
            return None

        failed = self.rt.transaction(rq, body)
        if failed is not None:
            return failed
        self.rt.invoke(rq, "order", "place_order", [user_id, flight_id, hotel_id])
        return [True, "Order Successful"]


class _Reservable(Service):
    fld = ""

    def populate(self) -> None:
        self.rt.populate(self.fld, {str(i): {"capacity": HOTEL_CAPACITY, "customers": []} for i in range(HOTEL_ITEMS)})

    def _reserve(self, rq: Request, item: str, user_id: str) -> bool:
        rec = self.rt.get(rq, self.fld, item)
        if rec is None or len(rec["customers"]) >= rec["capacity"]:
            return False
        rec["customers"].append(user_id)  # the record grows during a run, as upstream's
        self.rt.put(rq, self.fld, item, rec)
        return True


class Hotel(_Reservable):
    fld = "hotels"

    def reserve_hotel(self, rq: Request, hotel_id: str, user_id: str) -> bool:
        return self._reserve(rq, hotel_id, user_id)


class Flight(_Reservable):
    fld = "flights"

    def reserve_flight(self, rq: Request, flight_id: str, user_id: str) -> bool:
        return self._reserve(rq, flight_id, user_id)


class Order(Service):
    def place_order(self, rq: Request, user_id: str, flight_id: str, hotel_id: str) -> None:
        orders = self.rt.get(rq, "orders", user_id) or []
        self.rt.put(rq, "orders", user_id, [*orders, [flight_id, hotel_id]])


# app -> (entry service, {service name (its Host prefix): class})
APPS: dict[str, tuple[str, dict[str, type[Service]]]] = {
    "counter": ("backend", {"backend": Backend}),
    "chain": ("caller1", {"caller1": Caller1, "caller2": Caller2, "backend": Backend}),
    "tree": ("callertxn", {"callertxn": CallerTxn, "backend1": TxnBackend, "backend2": TxnBackend}),
    "media": (
        "frontend",
        {
            "frontend": MediaFrontend,
            "user": User,
            "uniqueid": UniqueId,
            "movieid": MovieId,
            "text": Text,
            "composereview": ComposeReview,
            "reviewstorage": ReviewStorage,
            "userreview": UserReview,
            "moviereview": MovieReview,
        },
    ),
    "hotel": ("frontend", {"frontend": HotelFrontend, "hotel": Hotel, "flight": Flight, "order": Order}),
}
