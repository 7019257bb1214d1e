"""The committed zoo: weights files plus `zoo.json`, the record each training run leaves."""
from __future__ import annotations

import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "models"
MANIFEST = MODELS_DIR / "zoo.json"


def read() -> dict[str, dict]:
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def write_entry(entry: dict) -> None:
    rows = read()
    rows[entry["name"]] = entry
    ordered = dict(sorted(rows.items()))
    MANIFEST.write_text(json.dumps(ordered, indent=2) + "\n")
