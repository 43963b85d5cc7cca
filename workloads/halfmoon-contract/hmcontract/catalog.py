"""What the real images hold and what their binaries require: facts from the fact sheet
(../shared/reference/halfmoon-real-services.md, cited as "sheet §N"), nothing else.

The bench image's app directories (sheet §1, §2.2-§2.6): per directory, the app, the variant (which
build: beldi-bin = the Unsafe baseline, bokiflow-bin = Boki, optimal-bin = Halfmoon) and the
function binaries. `init` is in every app directory (sheet §1, §4.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

VARIANTS = {"/beldi-bin": "unsafe", "/bokiflow-bin": "boki", "/optimal-bin": "halfmoon"}

HOTEL = (
    "geo",
    "profile",
    "rate",
    "recommendation",
    "user",
    "hotel",
    "search",
    "flight",
    "order",
    "frontend",
    "gateway",
)
MOVIE = (
    "Frontend",
    "CastInfo",
    "ReviewStorage",
    "UserReview",
    "MovieReview",
    "ComposeReview",
    "Text",
    "User",
    "UniqueId",
    "Rating",
    "MovieId",
    "Plot",
    "MovieInfo",
    "Page",
)
RETWIS = ("login", "profile", "timeline", "post", "publish")


@dataclass(frozen=True)
class AppDir:
    path: str  # e.g. /optimal-bin/hotel
    app: str  # hotel, movie, retwis, singleop, rw, switching
    variant: str  # unsafe, boki, halfmoon
    binaries: tuple[str, ...]
    # Env a binary reads at start and panics without (sheet §2.2-§2.6: "required", "panics if missing").
    required_env: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Binaries that never reach DynamoDB (sheet §2.2: boki's and optimal's nop, AWS "–"); every
    # other one does, with the AWS region and credentials (sheet §2.1 need_aws_env, §4.1).
    no_dynamodb: tuple[str, ...] = ()


def _dirs() -> dict[str, AppDir]:
    out: list[AppDir] = []
    for root, variant in VARIANTS.items():
        b = "b" if variant == "unsafe" else ""
        out += [
            # sheet §2.3: geo panics without K_NEAREST.
            AppDir(f"{root}/{b}hotel", "hotel", variant, HOTEL, {"geo": ("K_NEAREST",)}),
            AppDir(f"{root}/{'bmedia' if b else 'media'}", "movie", variant, MOVIE),
            # sheet §2.5: timeline panics without MAX_RETURN_POSTS.
            AppDir(f"{root}/{b}retwis", "retwis", variant, RETWIS, {"timeline": ("MAX_RETURN_POSTS",)}),
        ]
        # sheet §2.2: singleop panics without NUM_KEYS (the sheet says nothing of prewarm's start).
        single = ("nop", "singleop", "prewarm") if variant == "halfmoon" else ("nop", "singleop")
        need = {"singleop": ("NUM_KEYS",)}
        quiet = () if variant == "unsafe" else ("nop",)
        out.append(AppDir(f"{root}/{b}singleop", "singleop", variant, single, need, quiet))
        if variant != "unsafe":
            # sheet §2.6: overhead rw reads NUM_KEYS, VALUE_SIZE, NUM_OPS, READ_RATIO at start (all required).
            rw = ("rw", "prewarm") if variant == "halfmoon" else ("rw",)
            out.append(
                AppDir(
                    f"{root}/rw",
                    "rw",
                    variant,
                    rw,
                    {"rw": ("NUM_KEYS", "VALUE_SIZE", "NUM_OPS", "READ_RATIO")},
                )
            )
    # sheet §2.6, §5.4: switching (optimal only) with its closed-loop client `benchmark`.
    out.append(AppDir("/optimal-bin/switching", "switching", "halfmoon", ("rw", "prewarm")))
    return {d.path: d for d in out}


APP_DIRS = _dirs()

# sheet §1: optimal-bin binaries read LoggingMode at start: read, write, none; unset = WRITELOG (logged);
# any other value is fatal.
LOGGING_MODES = {"read": "READLOG", "write": "WRITELOG", "none": "NONE"}

# sheet §4.2: the tables per app and variant; one copy, in the self-contained init (copied to hosts).
from hmcontract.init_tool import table_names  # noqa: E402,F401


def func_name_matches(binary: str, func_name: str, variant: str) -> bool:
    """sheet §2.3/§2.4: the Unsafe build calls its peers by b-prefixed names, its entry points
    (gateway, Frontend) and all of retwis (§2.5) keep the plain name."""
    return func_name == binary or (variant == "unsafe" and func_name == "b" + binary)


def app_dir_of(binary_path: str) -> AppDir | None:
    head, _, name = binary_path.rstrip("/").rpartition("/")
    d = APP_DIRS.get(head)
    return d if d is not None and (name in d.binaries or name in ("init", "benchmark")) else None
