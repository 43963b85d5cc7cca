"""Write data/movie_data.json: a generated stand-in for the Halfmoon artifact's media data file.

The artifact ships compressed.json (1,000 movie records) beside its image; benchpipe does not copy
it. This file has the same form (a JSON array of records with the fields MovieId, Title, Casts,
PlotId, ThumbnailIds, PhotoIds, VideoIds, AvgRating, NumRating) and the same shape of titles (1,000
records, 995 distinct titles: five appear twice), but made-up content. The local runs draw their
titles from it; the real path needs the artifact's own file (config data_files.halfmoon_movie_data).

    python workloads/standin/make_movie_data.py    # deterministic: the same file every time
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "data" / "movie_data.json"
WORDS = ("Silent", "Crimson", "Hidden", "Broken", "Golden", "Last", "Frozen", "Distant", "Burning", "Quiet")
NOUNS = ("River", "Harbor", "Garden", "Mountain", "Letter", "Station", "Mirror", "Forest", "Bridge", "Signal")


def records() -> list[dict[str, object]]:
    rng = random.Random(1)
    titles = [f"The {WORDS[i % 10]} {NOUNS[(i // 10) % 10]} {i // 100 + 1}" for i in range(995)]
    titles += [titles[i] for i in (17, 230, 401, 666, 900)]  # five titles twice, as upstream's file
    out = []
    for i, title in enumerate(titles):
        casts = [
            {"CastId": f"{i}-{c}", "Character": f"character {c}", "CastInfoId": str(rng.randrange(5000))}
            for c in range(1)
        ]
        out.append(
            {
                "MovieId": str(100000 + i),
                "Title": title,
                "Casts": casts,
                "PlotId": str(i),
                "ThumbnailIds": [f"thumb{i}"],
                "PhotoIds": [f"photo{i}-{k}" for k in range(1)],
                "VideoIds": [f"video{i}"],
                "AvgRating": round(rng.uniform(0, 10), 1),
                "NumRating": rng.randrange(1, 1000),
            }
        )
    return out


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, separators=(",", ":")) for r in records()]
    OUT.write_text("[\n" + ",\n".join(lines) + "\n]\n")  # a JSON array, one record per line
    print(f"wrote {OUT} ({len(records())} records)")
