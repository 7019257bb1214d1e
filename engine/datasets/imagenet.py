"""The 1000 ILSVRC-2012 classes in the models' order: their English names, one a line in
assets/data/imagenet_classes.txt (see assets/README.md for where the list comes from)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

CLASSES_FILE = Path(__file__).resolve().parent.parent.parent / "assets" / "data" / "imagenet_classes.txt"


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    # Names hold spaces ("tiger shark", "maillot tank suit"), so the file is split by line only.
    names = tuple(CLASSES_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000 or len(set(names)) != 1000:
        raise RuntimeError(f"{CLASSES_FILE} must list 1000 distinct class names; it lists {len(names)}")
    return names
