"""The benchmark functions, of the kinds the paper runs under PyPy (graph search with networkx,
templating with Jinja2, compression of generated files). Each takes the runtime's RNG and the
request's mutability and returns a small JSON-able result.

Input sizes follow the artifact's rule: Gaussian around a midpoint with a spread of
sqrt(mutability) x scale, clipped; the RNG is seeded once at import, so a snapshot (a fork)
carries its RNG state along as a CRIU image would.

Runs under PyPy 3.9: no syntax newer than Python 3.9 here.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

# midpoint, scale, lower clip, upper clip of each benchmark's input size
SIZES = {
    "bfs": (1000, 50, 100, 2000),
    "dfs": (1000, 50, 100, 2000),
    "mst": (400, 20, 50, 800),
    "pagerank": (200, 10, 50, 400),
    "dynamic-html": (2000, 100, 100, 4000),
    "compress": (32, 2, 4, 64),  # KiB of generated text
}


def input_size(name: str, rng: random.Random, mutability: float) -> int:
    mid, scale, lo, hi = SIZES[name]
    return int(min(hi, max(lo, rng.gauss(mid, math.sqrt(max(mutability, 0.0)) * scale))))


def _graph(rng: random.Random, size: int) -> Any:
    import networkx as nx

    return nx.barabasi_albert_graph(size, 10, seed=rng.randrange(1 << 30))


def bfs(rng: random.Random, mutability: float) -> dict[str, Any]:
    import networkx as nx

    size = input_size("bfs", rng, mutability)
    tree = nx.bfs_tree(_graph(rng, size), 0)
    return {"size": size, "visited": tree.number_of_nodes()}


def dfs(rng: random.Random, mutability: float) -> dict[str, Any]:
    import networkx as nx

    size = input_size("dfs", rng, mutability)
    order = list(nx.dfs_preorder_nodes(_graph(rng, size), 0))
    return {"size": size, "visited": len(order)}


def mst(rng: random.Random, mutability: float) -> dict[str, Any]:
    import networkx as nx

    size = input_size("mst", rng, mutability)
    g = _graph(rng, size)
    for u, v in g.edges():
        g[u][v]["weight"] = rng.random()
    tree = nx.minimum_spanning_tree(g)
    return {"size": size, "edges": tree.number_of_edges()}


def pagerank(rng: random.Random, mutability: float) -> dict[str, Any]:
    # networkx 2.8's public pagerank needs SciPy; its pure-Python power iteration is the one
    # that runs (and is JIT-compiled) under PyPy.
    from networkx.algorithms.link_analysis.pagerank_alg import _pagerank_python

    size = input_size("pagerank", rng, mutability)
    ranks = _pagerank_python(_graph(rng, size))
    top = max(ranks, key=ranks.__getitem__)
    return {"size": size, "top": top}


_TEMPLATE = """<!DOCTYPE html>
<html><head><title>Randomly generated data.</title></head>
<body>
<p>Welcome {{ username }}! The time is {{ cur_time }}.</p>
<table>
{% for n in numbers %}<tr><td>{{ loop.index }}</td><td>{{ n }}</td><td>{{ "even" if n % 2 == 0 else "odd" }}</td></tr>
{% endfor %}</table>
</body></html>
"""
_jinja_env = None


def dynamic_html(rng: random.Random, mutability: float) -> dict[str, Any]:
    import datetime

    from jinja2 import DictLoader, Environment

    global _jinja_env
    if _jinja_env is None:
        _jinja_env = Environment(loader=DictLoader({"page.html": _TEMPLATE}), autoescape=True)
    size = input_size("dynamic-html", rng, mutability)
    numbers = [rng.randrange(1_000_000) for _ in range(size)]
    html = _jinja_env.get_template("page.html").render(
        username=f"user-{rng.randrange(1000)}", cur_time=datetime.datetime.now().isoformat(), numbers=numbers
    )
    return {"size": size, "bytes": len(html)}


_WORDS = ["serverless", "snapshot", "restore", "function", "request", "latency", "warm", "cold", "jit", "pool"]


def compress(rng: random.Random, mutability: float) -> dict[str, Any]:
    """Write generated text files, archive them as .tar.gz into the bucket directory (the local
    stand-in for the object store the artifact uploads to), then remove both."""
    size_kib = input_size("compress", rng, mutability)
    bucket = os.environ.get("PRONGHORN_BUCKET") or tempfile.gettempdir()
    work = tempfile.mkdtemp(prefix="compress-", dir=bucket)
    try:
        src = os.path.join(work, "input")
        os.mkdir(src)
        left = size_kib * 1024
        i = 0
        while left > 0:
            words = []
            n = 0
            while n < min(left, 8192):
                w = _WORDS[rng.randrange(len(_WORDS))] + str(rng.randrange(100))
                words.append(w)
                n += len(w) + 1
            text = " ".join(words)
            with open(os.path.join(src, f"part-{i:03d}.txt"), "w") as f:
                f.write(text)
            left -= len(text)
            i += 1
        archive = shutil.make_archive(os.path.join(work, "archive"), "gztar", src)
        return {"size_kib": size_kib, "files": i, "archive_bytes": os.path.getsize(archive)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


HANDLERS: dict[str, Callable[[random.Random, float], dict[str, Any]]] = {
    "bfs": bfs,
    "dfs": dfs,
    "mst": mst,
    "pagerank": pagerank,
    "dynamic-html": dynamic_html,
    "compress": compress,
}


def preload(name: str) -> None:
    """What a container's process imports before it serves: the handler's libraries."""
    if name in ("bfs", "dfs", "mst", "pagerank"):
        import networkx  # noqa: F401
        from networkx.algorithms.link_analysis import pagerank_alg  # noqa: F401
    elif name == "dynamic-html":
        import jinja2  # noqa: F401
    elif name == "compress":
        import tarfile  # noqa: F401
        import zlib  # noqa: F401
