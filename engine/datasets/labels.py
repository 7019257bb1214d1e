"""Reading a dataset's labels from its files: the path rules (hidden, image, labels file) and the readers of
each layout's labels (class folders, a file,label CSV, LOC_val_solution.csv, val.txt); `engine.datasets.folders`
describes the layouts.

Labels that are all ASCII digits become ints; everything else stays a stripped string.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
MAX_LABEL_FILE_BYTES = 64 * 2**20

Source = bytes | Path
_WNID = re.compile(r"n\d{8}")
_DIGITS = re.compile(r"\d+", re.ASCII)


def hidden(path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.split("/"))


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def wanted(path: str) -> bool:
    return is_image(path) or path.lower().endswith((".csv", ".txt"))


def is_label_file(name: str) -> bool:
    return name.lower().endswith(".csv") or name in ("val.txt", "ILSVRC2012_validation_ground_truth.txt")


def _label(text: str) -> str | int:
    text = text.strip()
    return int(text) if _DIGITS.fullmatch(text) else text


def _text(source: Source, where: str) -> str:
    data = source if isinstance(source, bytes) else _read_label_file(source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{where} is not UTF-8 text ({err})") from err


def _read_label_file(path: Path) -> bytes:
    if path.stat().st_size > MAX_LABEL_FILE_BYTES:
        raise ValueError(f"{path} is too large for a labels file (limit {MAX_LABEL_FILE_BYTES // 2**20} MB)")
    return path.read_bytes()


def label_reader(files: dict[str, Source], where: str) -> tuple[Callable, str | None]:
    top = {k for k in files if "/" not in k}
    if "LOC_val_solution.csv" in top:
        return _read_loc, "LOC_val_solution.csv"
    if "val.txt" in top:
        return _read_val_txt, "val.txt"
    if "ILSVRC2012_validation_ground_truth.txt" in top:
        raise ValueError(
            f"{where}: ILSVRC2012_validation_ground_truth.txt numbers classes 1–1000 in the devkit's own order, "
            "not the models' 0–999; use LOC_val_solution.csv, or val.txt with 0–999 indices"
        )
    tables = sorted(k for k in top if k.lower().endswith(".csv"))
    if "labels.csv" in tables:
        return _read_csv, "labels.csv"
    if len(tables) > 1:
        raise ValueError(f"{where}: several CSV files ({', '.join(tables)}); name the labels file labels.csv")
    if tables:
        return _read_csv, tables[0]
    loose = [k for k in files if "/" not in k and is_image(k)]
    if loose:
        raise ValueError(
            f"{where}: unknown layout: {len(loose)} image(s) at the top level and no labels file; add labels.csv "
            "(columns file,label), LOC_val_solution.csv or val.txt, or put each class's images in a folder named "
            "after it"
        )
    return _read_folders, None


def _read_folders(files, pictures, _label_file, where):
    pairs = [(k, _label(k.split("/", 1)[0])) for k in pictures]
    return pairs, "imagefolder", "class folders"


def _rows(files, label_file, where) -> tuple[list[str], list[tuple[int, list[str]]]]:
    text = _text(files[label_file], f"{where}: {label_file}")
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        raise ValueError(f"{where}: {label_file} is not a readable CSV ({err})") from err
    if not rows:
        raise ValueError(f"{where}: {label_file} is empty")
    header = [h.strip().lower() for h in rows[0]]
    return header, [(n, r) for n, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]


def _lookup(files, name: str, label_file: str, row: int, where: str) -> str:
    key = name.strip().replace("\\", "/").removeprefix("./")
    if key not in files:
        raise ValueError(f"{where}: {label_file} row {row}: file {name!r} not found")
    if not is_image(key):
        raise ValueError(f"{where}: {label_file} row {row}: {name!r} is not an image file")
    return key


def _read_csv(files, pictures, label_file, where):
    header, rows = _rows(files, label_file, where)
    if header[:2] == ["imageid", "predictionstring"]:
        return _read_loc(files, pictures, label_file, where)
    if "file" not in header or "label" not in header:
        raise ValueError(
            f"{where}: {label_file}: the header must name the columns file and label (found: {', '.join(header)})"
        )
    fi, li = header.index("file"), header.index("label")
    pairs, seen = [], set()
    for n, row in rows:
        cells = row + [""] * (max(fi, li) + 1 - len(row))
        key = _lookup(files, cells[fi], label_file, n, where)
        if not cells[li].strip():
            raise ValueError(f"{where}: {label_file} row {n}: empty label for {cells[fi]!r}")
        if key in seen:
            raise ValueError(f"{where}: {label_file} row {n}: {cells[fi]!r} is labelled twice")
        seen.add(key)
        pairs.append((key, _label(cells[li])))
    return pairs, "csv", f"{label_file} (file,label)"


def _read_loc(files, pictures, label_file, where):
    header, rows = _rows(files, label_file, where)
    if header[:2] != ["imageid", "predictionstring"]:
        raise ValueError(
            f"{where}: {label_file}: the header must be ImageId,PredictionString (found: {', '.join(header)})"
        )
    stems: dict[str, str] = {}
    for k in pictures:
        stems.setdefault(k, k)
        stems.setdefault(k.rsplit(".", 1)[0], k)
    pairs, seen = [], set()
    for n, row in rows:
        image_id = row[0].strip()
        if image_id not in stems:
            raise ValueError(f"{where}: {label_file} row {n}: no image for ImageId {image_id!r}")
        tokens = row[1].split() if len(row) > 1 else []
        if not tokens:
            raise ValueError(f"{where}: {label_file} row {n}: empty label for {image_id!r}")
        if not _WNID.fullmatch(tokens[0]):
            raise ValueError(f"{where}: {label_file} row {n}: {tokens[0]!r} is not a wnid (like n01440764)")
        key = stems[image_id]
        if key in seen:
            raise ValueError(f"{where}: {label_file} row {n}: {image_id!r} is labelled twice")
        seen.add(key)
        pairs.append((key, tokens[0]))
    return pairs, "imagenet-val", f"{label_file} (ImageNet wnids)"


def _read_val_txt(files, pictures, label_file, where):
    lines = [
        (n, line.split()) for n, line in enumerate(_text(files[label_file], f"{where}: {label_file}").splitlines(), 1)
    ]
    lines = [(n, tokens) for n, tokens in lines if tokens]
    for n, tokens in lines:
        if len(tokens) > 2 or not _DIGITS.fullmatch(tokens[-1]):
            raise ValueError(f"{where}: {label_file} line {n}: expected '<file> <index>' or '<index>'")
    if all(len(t) == 2 for _, t in lines):
        pairs = [(_lookup(files, t[0], label_file, n, where), int(t[1])) for n, t in lines]
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError(f"{where}: {label_file} labels a file twice")
        return pairs, "imagenet-val", f"{label_file} (file and ImageNet index)"
    if any(len(t) == 2 for _, t in lines):
        raise ValueError(f"{where}: {label_file} mixes '<file> <index>' lines with bare indices")
    top = [k for k in pictures if "/" not in k]
    if len(lines) != len(top):
        raise ValueError(
            f"{where}: {label_file} has {len(lines)} labels for {len(top)} top-level images (one per line, in "
            f"sorted file order)"
        )
    return (
        [(k, int(t[0])) for k, (_, t) in zip(top, lines)],
        "imagenet-val",
        f"{label_file} (ImageNet index per sorted file)",
    )
