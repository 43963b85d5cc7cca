"""The benchmark functions, of the kinds the paper runs under PyPy (graph search with networkx,
templating with Jinja2, compression of generated files, and the media functions: an upload of a
downloaded file, a thumbnail of a JPEG with Pillow, a watermark on a video with ffmpeg). Each
takes the runtime's RNG and the request's mutability and returns a small JSON-able result.

Input sizes follow the artifact's rule: Gaussian around a midpoint with a spread of
sqrt(mutability) x scale, clipped; the RNG is seeded once at import, so a snapshot (a fork)
carries its RNG state along as a CRIU image would.

Runs under PyPy 3.9: no syntax newer than Python 3.9 here.
"""

from __future__ import annotations

import io
import math
import os
import random
import shutil
import subprocess
import tempfile
import urllib.request
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


# -- the media functions -----------------------------------------------------------------------
# The artifact's inputs (pronghorn-artifact benchmarks/python/{upload,thumbnail,video}/handler.py):
# upload fetches one of three URLs, chosen by floor(Gaussian(2, sqrt(m) / 10)) clipped to 1..3: a
# 230 kB JPEG 800 px wide, a 2.4 MB JPEG, a 98 MB model file; thumbnail resizes one JPEG to fit
# 200 x 200, int(Gaussian(3, sqrt(m) / 5)) times (1..5); video overlays a watermark PNG on the
# first second of one MP4, int(Gaussian(2, sqrt(m) / 10)) times (1..3), with ffmpeg. Here the
# files are generated once per machine with those formats and sizes (inputs_dir()): the
# internet of upload is the host's /origin/ route, MinIO is the bucket folder.
UPLOAD_FILES = {  # name: (width, height, target bytes); None: not an image
    "800px-Jammlich_crop.jpg": (800, 533, 230_000),
    "The_ExTrA_telescopes_at_La_Silla.jpg": (3000, 2000, 2_400_000),
    "resnet50-19c8e357.pth": None,
}
# The thumbnail's photo (9_cobblestone-granite-pebbles-1029604.jpg; its size is not in the
# repository: a 1920 x 1280 photo of ~600 kB assumed) and the video (its MP4 and watermark.png are
# not in the repository either: a 426 x 240 H.264 clip at 25 fps, 5 s, assumed; each watermark
# pass decodes and encodes 25 frames, ~0.14 s of CPU here against 0.28 s at 640 x 360).
THUMBNAIL_FILE = ("cobblestone-granite-pebbles.jpg", 1920, 1280, 600_000)
VIDEO_FILE, VIDEO_SIZE, VIDEO_SECONDS = "video.mp4", "426x240", 5
WATERMARK_FILE = "watermark.png"
OVERLAY = "overlay=main_w/2-overlay_w/2:main_h/2-overlay_h/2"  # the watermark in the middle


def _gauss_clipped(rng: random.Random, lo: float, hi: float, scale: float, mutability: float) -> float:
    return min(hi, max(lo, rng.gauss((lo + hi) / 2, math.sqrt(max(mutability, 0.0)) / scale)))


def inputs_dir() -> str:
    return os.environ.get("PRONGHORN_INPUTS") or os.path.join(tempfile.gettempdir(), "pronghorn-inputs")


def _bucket(name: str) -> str:
    path = os.path.join(os.environ.get("PRONGHORN_BUCKET") or tempfile.gettempdir(), name)
    os.makedirs(path, exist_ok=True)
    return path


def _photo(width: int, height: int, target: int, seed: int) -> bytes:
    """A JPEG of `width` x `height` near `target` bytes: a smooth scene plus grain, the grain's
    strength searched until the size fits (a photo's bytes per pixel come from its detail)."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    small = Image.frombytes("RGB", (width // 16, height // 16), rng.randbytes((width // 16) * (height // 16) * 3))
    scene = small.resize((width, height), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    grain = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    lo, hi, best = 0.0, 1.0, b""
    for _ in range(12):
        mid = (lo + hi) / 2
        out = io.BytesIO()
        Image.blend(scene, grain, mid).save(out, format="JPEG", quality=85)
        best = out.getvalue()
        if abs(len(best) - target) < target * 0.03:
            break
        lo, hi = (mid, hi) if len(best) < target else (lo, mid)
    return best


def _write_once(path: str, make: Callable[[], bytes]) -> None:
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(make())
        os.replace(tmp, path)


def ffmpeg() -> str:
    """The ffmpeg binary: $PRONGHORN_FFMPEG, the one imageio-ffmpeg ships (PyPI), or the PATH's."""
    if os.environ.get("PRONGHORN_FFMPEG"):
        return os.environ["PRONGHORN_FFMPEG"]
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        return shutil.which("ffmpeg") or "ffmpeg"


def _ffmpeg(args: list[str]) -> None:
    res = subprocess.run([ffmpeg(), "-y", "-hide_banner", "-loglevel", "error", *args], capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed ({res.returncode}): {res.stderr.decode()[-500:]}")


def ensure_inputs(name: str) -> None:
    """The input files of a media benchmark, generated once (not inside a request)."""
    d = inputs_dir()
    os.makedirs(d, exist_ok=True)
    if name == "upload":
        for i, (fname, shape) in enumerate(UPLOAD_FILES.items()):
            if shape is not None:
                _write_once(os.path.join(d, fname), lambda shape=shape, i=i: _photo(*shape, seed=i))
        # The 98 MB file is drawn only at mutability >= 100 (10 standard deviations at 1):
        # the host's origin writes it when first asked for (host.write_large_input), not here.
    elif name == "thumbnail":
        fname, w, h, target = THUMBNAIL_FILE
        _write_once(os.path.join(d, fname), lambda: _photo(w, h, target, seed=7))
    elif name == "video":
        from PIL import Image

        def watermark() -> bytes:
            img = Image.new("RGBA", (120, 60), (255, 255, 255, 0))
            img.paste((255, 255, 255, 160), (8, 8, 112, 52))
            out = io.BytesIO()
            img.save(out, format="PNG")
            return out.getvalue()

        _write_once(os.path.join(d, WATERMARK_FILE), watermark)
        video = os.path.join(d, VIDEO_FILE)
        if not os.path.exists(video):
            tmp = f"{video}.{os.getpid()}.tmp.mp4"
            src = f"testsrc2=size={VIDEO_SIZE}:rate=25:duration={VIDEO_SECONDS}"
            _ffmpeg(["-f", "lavfi", "-i", src, "-c:v", "libx264", "-pix_fmt", "yuv420p", tmp])
            os.replace(tmp, video)


def upload(rng: random.Random, mutability: float) -> dict[str, Any]:
    """Download the drawn file over HTTP (the host's /origin/ route stands in for the internet),
    then put it into the bucket "120.uploader" and remove it there."""
    size = math.floor(_gauss_clipped(rng, 1, 3, 10, mutability))
    name = list(UPLOAD_FILES)[size - 1]
    origin = os.environ.get("PRONGHORN_ORIGIN", "http://127.0.0.1:8080/origin")
    work = tempfile.mkdtemp(prefix="upload-", dir=_bucket("tmp"))
    try:
        path = os.path.join(work, name)
        urllib.request.urlretrieve(f"{origin}/{name}", filename=path)
        nbytes = os.path.getsize(path)
        key = os.path.join(_bucket("120.uploader"), name)
        shutil.copyfile(path, key)
        os.remove(key)
        return {"file": name, "bytes": nbytes}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def thumbnail(rng: random.Random, mutability: float) -> dict[str, Any]:
    """Put the photo into the input bucket, read it back, make its 200 x 200 thumbnail `reps`
    times with Pillow (decode, resize, JPEG encode), store the last one, remove both."""
    from PIL import Image

    fname = THUMBNAIL_FILE[0]
    src, dst = _bucket("210.thumbnailer-in"), _bucket("210.thumbnailer-out")
    shutil.copyfile(os.path.join(inputs_dir(), fname), os.path.join(src, fname))
    reps = int(_gauss_clipped(rng, 1, 5, 5, mutability))
    with open(os.path.join(src, fname), "rb") as f:
        data = f.read()
    out, size = b"", (0, 0)
    for _ in range(reps):
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((200, 200))
            buf = io.BytesIO()
            img.save(buf, format="JPEG")
            out, size = buf.getvalue(), img.size
    with open(os.path.join(dst, fname), "wb") as f:
        f.write(out)
    os.remove(os.path.join(src, fname))
    os.remove(os.path.join(dst, fname))
    return {"reps": reps, "input_bytes": len(data), "thumbnail_bytes": len(out), "thumbnail_size": list(size)}


def video(rng: random.Random, mutability: float) -> dict[str, Any]:
    """Put the MP4 into the input bucket, copy it to a work folder, overlay the watermark on its
    first second `reps` times with ffmpeg (decode, filter, H.264 encode), store the result,
    remove both."""
    src, dst = _bucket("220.video-in"), _bucket("220.video-out")
    shutil.copyfile(os.path.join(inputs_dir(), VIDEO_FILE), os.path.join(src, VIDEO_FILE))
    reps = int(_gauss_clipped(rng, 1, 3, 10, mutability))
    work = tempfile.mkdtemp(prefix="video-", dir=_bucket("tmp"))
    try:
        local = os.path.join(work, VIDEO_FILE)
        shutil.copyfile(os.path.join(src, VIDEO_FILE), local)
        out = os.path.join(work, "processed-" + VIDEO_FILE)
        for _ in range(reps):
            mark = os.path.join(inputs_dir(), WATERMARK_FILE)
            _ffmpeg(["-i", local, "-i", mark, "-t", "1", "-filter_complex", OVERLAY, out])
        nbytes = os.path.getsize(out)
        shutil.copyfile(out, os.path.join(dst, os.path.basename(out)))
        os.remove(os.path.join(dst, os.path.basename(out)))
        os.remove(os.path.join(src, VIDEO_FILE))
        return {"reps": reps, "output_bytes": nbytes}
    finally:
        shutil.rmtree(work, ignore_errors=True)


HANDLERS: dict[str, Callable[[random.Random, float], dict[str, Any]]] = {
    "bfs": bfs,
    "dfs": dfs,
    "mst": mst,
    "pagerank": pagerank,
    "dynamic-html": dynamic_html,
    "compress": compress,
    "upload": upload,
    "thumbnail": thumbnail,
    "video": video,
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
    elif name in ("upload", "thumbnail", "video"):
        import urllib.request  # noqa: F401

        from PIL import Image  # noqa: F401

        ensure_inputs(name)
