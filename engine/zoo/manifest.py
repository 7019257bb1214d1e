"""The committed zoo: weights files plus `zoo.json`, the record each training run leaves."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "models"
MANIFEST = MODELS_DIR / "zoo.json"


def read(path: Path = MANIFEST) -> dict[str, dict]:
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def write_entry(entry: dict, path: Path = MANIFEST) -> None:
    """Add or replace one model's record; safe when several training processes finish at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".zoo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = read(path)
        rows[entry["name"]] = entry
        path.write_text(json.dumps(dict(sorted(rows.items())), indent=2) + "\n")
