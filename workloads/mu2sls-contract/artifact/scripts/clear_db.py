"""Stand-in of the mu2sls artifact's scripts/clear_db.py (from its facts): range-deletes the data,
log, lock and local prefixes of the store, here the contract cluster's stand-in store (FoundationDB's
place), found through the contract's kn on PATH."""

import shutil
import sqlite3
import sys
from pathlib import Path

kn = shutil.which("kn")
assert kn is not None, "no kn on PATH"
sys.path.insert(0, str(Path(kn).resolve().parents[1]))
from mu2slscontract.state import store_path  # noqa: E402

if store_path().exists():
    db = sqlite3.connect(store_path(), timeout=30)
    with db:
        for prefix in ("data", "log", "lock", "local"):
            db.execute("DELETE FROM kv WHERE k >= ? AND k < ?", (prefix + "/", prefix + "0"))
    db.close()
