"""Labelled image sets a user brings, from a folder or a zip held in memory, and their labels
mapped onto a model's classes (pure computation; the app and CLI wrap it).

Layouts, detected from the files (at the top level, or under one top-level folder that holds
everything; hidden files, `.*` and `__MACOSX/` are ignored):

- **imagefolder** — `<class>/<image>` (deeper files count for their top folder). The folder
  name is the label: a class name, an ImageNet wnid (`n01440764`) or an integer index.
- **csv** — `labels.csv` (or the only `*.csv`) with a header naming the columns `file` and
  `label`; `file` is relative to the dataset folder (`/` or `\\` separators), `label` a class
  name, wnid or index. Images the CSV does not name are left out (the description says how many).
- **imagenet-val** — images plus one ground-truth file:
  `LOC_val_solution.csv` (or any single CSV headed `ImageId,PredictionString`, the Kaggle
  ImageNet release): the first token of PredictionString is the wnid; ImageId is the file name
  with or without its extension.
  `val.txt` (the Caffe `ilsvrc12` file): either `<file> <index>` per line, or one index per line
  for the top-level images in sorted file-name order; indices are 0–999 in the standard order
  (wnids sorted, as `imagenet_wnids()`).
  `ILSVRC2012_validation_ground_truth.txt` from the devkit is refused with an explanation: its
  1–1000 ILSVRC2012_IDs follow the devkit's own order, not the models' 0–999.

Object masks (optional): `masks/<file>` beside the images, an image whose white pixels are the
object, named like the image's path inside the dataset (`masks/cat/001.png`) or by its file name
(`masks/001.png`). The `masks/` folder is never read as a class.

Labels that are all ASCII digits become ints; everything else stays a stripped string.
Items are sorted by their path inside the dataset.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from engine import domains, images, targets

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
WNID_FILE = images.ASSETS / "data" / "imagenet_wnids.txt"

MAX_FILES = 60_000  # the ImageNet validation set (50,000 images) fits; a zip of empty files does not
MAX_ZIP_BYTES = 200 * 2**20
MAX_UNZIPPED_BYTES = 1 * 2**30
MAX_RATIO = 100  # photos barely compress; zeros compress ~1000×
RATIO_FLOOR = 2**20  # small members (a CSV of repeated labels) may compress well
MAX_TOTAL_PIXELS = 2_000_000_000  # ~10,000 photos of 450×450: a bound on decoding time
MAX_LABEL_FILE_BYTES = 64 * 2**20
MASKS_FOLDER = "masks/"
BANK_IMAGES = 500  # a user's domain's target-image bank: its first images, classes interleaved

Source = bytes | Path
_WNID = re.compile(r"n\d{8}")
_DIGITS = re.compile(r"\d+", re.ASCII)


@dataclass(frozen=True)
class LabelledImages:
    """Images (name inside the dataset, and a Path or the file's bytes) and one label each."""

    items: list[tuple[str, Source]]
    labels: list[str | int]
    description: str
    layout: str
    masks: dict[str, Source] = field(default_factory=dict)  # item name → its object mask image

    def mask(self, i: int) -> Source | None:
        name = self.items[i][0]
        return self.masks.get(name, self.masks.get(name.rsplit("/", 1)[-1]))

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    path: Path
    layout: str
    images: int
    description: str


# ---- folders -------------------------------------------------------------------------------


def open_dataset(path: str | Path, *, max_files: int = MAX_FILES, within: str | Path | None = None) -> LabelledImages:
    """A folder in one of the layouts above; symlinked files count only if they point inside `within`
    (default: the folder itself), symlinked folders are never entered."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"dataset folder not found: {folder}")
    root = folder.resolve()
    fence = Path(within).resolve() if within is not None else root
    if not root.is_relative_to(fence):
        raise ValueError(f"dataset folder {folder} lies outside {fence}")
    return _build(_walk(root, fence, max_files), str(folder))


def _walk(root: Path, fence: Path, max_files: int) -> dict[str, Source]:
    files: dict[str, Source] = {}
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        for name in filenames:
            seen += 1
            if seen > max_files:
                raise ValueError(f"{root} holds more than {max_files:,} files; the limit is {max_files:,}")
            path = Path(dirpath) / name
            if _hidden(name) or (path.is_symlink() and not path.resolve().is_relative_to(fence)):
                continue
            files[path.relative_to(root).as_posix()] = path
    return files


def list_datasets(root: str | Path, *, max_files: int = MAX_FILES) -> list[DatasetInfo]:
    """The sub-folders of an operator's `root` that open as datasets, by name; others are skipped,
    and so are symlinks leading outside `root`."""
    base = Path(root).resolve()
    if not base.is_dir():
        raise ValueError(f"datasets root not found: {root}")
    found = []
    for child in sorted(base.iterdir()):
        if _hidden(child.name) or not child.is_dir() or not child.resolve().is_relative_to(base):
            continue
        try:
            ds = open_dataset(child, max_files=max_files, within=base)
        except ValueError:
            continue
        found.append(DatasetInfo(child.name, child, ds.layout, len(ds), ds.description))
    return found


# ---- zips ----------------------------------------------------------------------------------


def open_zip(
    data: bytes,
    *,
    max_bytes: int = MAX_ZIP_BYTES,
    max_files: int = MAX_FILES,
    max_pixels: int = MAX_TOTAL_PIXELS,
    max_unzipped: int = MAX_UNZIPPED_BYTES,
    max_ratio: float = MAX_RATIO,
    name: str = "the archive",
) -> LabelledImages:
    """A zip's bytes in one of the layouts above, read in memory (nothing is written to disk).

    Refused before any member is read: over `max_bytes`, not a zip, over `max_files` entries (from the
    end record, then the central directory), unsafe paths, symlinks, encryption, a declared total over
    `max_unzipped` or a member expanding over `max_ratio`×. Members are then read with bounded reads,
    and the images' headers must declare at most `max_pixels` pixels in all.
    """
    data = bytes(data)
    if len(data) > max_bytes:
        raise ValueError(f"{name} is too large ({len(data) / 2**20:.1f} MB; limit {max_bytes / 2**20:.0f} MB)")
    declared = _declared_entries(data)
    if declared is None:
        raise ValueError(f"{name} is not a zip file (no end-of-archive record)")
    if declared > max_files:
        raise ValueError(f"{name} has too many entries ({declared:,}; limit {max_files:,})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error) as err:
        raise ValueError(f"{name} is not a readable zip ({err})") from err
    with archive:
        infos = archive.infolist()
        if len(infos) > max_files:
            raise ValueError(f"{name} has too many entries ({len(infos):,}; limit {max_files:,})")
        members = _vet(infos, name, max_unzipped, max_ratio)
        files = {info.filename: _read(archive, info, name) for info in members}
    _check_pixels(files, name, max_pixels)
    return _build(files, name)


def _declared_entries(data: bytes) -> int | None:
    """Entry count from the end-of-central-directory record (zip64 aware), read before zipfile
    parses a central directory that may list millions of entries."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or len(data) < end + 22:
        return None
    (count,) = struct.unpack_from("<H", data, end + 10)
    locator = end - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack_from("<Q", data, locator + 8)
        if data[offset : offset + 4] == b"PK\x06\x06" and len(data) >= offset + 40:
            (count,) = struct.unpack_from("<Q", data, offset + 32)
    return count


def _vet(infos: list[zipfile.ZipInfo], name: str, max_unzipped: int, max_ratio: float) -> list[zipfile.ZipInfo]:
    """Every entry is checked (a hostile one anywhere refuses the archive); the wanted ones are returned."""
    seen: set[str] = set()
    for info in infos:
        _check_entry(info, name, max_ratio)
        if info.filename in seen:
            raise ValueError(f"{name}: entry {info.filename!r} appears twice")
        seen.add(info.filename)
    total = sum(info.file_size for info in infos)
    if total > max_unzipped:
        raise ValueError(
            f"{name} declares {total / 2**20:,.0f} MB uncompressed (limit {max_unzipped / 2**20:,.0f} MB); "
            "it may be a zip bomb"
        )
    return [i for i in infos if not i.is_dir() and not _hidden(i.filename) and _wanted(i.filename)]


def _check_entry(info: zipfile.ZipInfo, name: str, max_ratio: float) -> None:
    entry = info.filename
    if "\\" in entry:
        raise ValueError(f"{name}: entry {entry!r} has a backslash in its path")
    if entry.startswith("/") or re.match(r"[A-Za-z]:", entry):
        raise ValueError(f"{name}: entry {entry!r} has an absolute path")
    if ".." in entry.split("/"):
        raise ValueError(f"{name}: entry {entry!r} points outside the archive ('..')")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ValueError(f"{name}: entry {entry!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise ValueError(f"{name}: entry {entry!r} is encrypted; zip the files without a password")
    if info.file_size > RATIO_FLOOR and info.file_size > max_ratio * max(info.compress_size, 1):
        raise ValueError(
            f"{name}: entry {entry!r} expands {info.file_size / max(info.compress_size, 1):,.0f}× "
            f"(limit {max_ratio:,.0f}×); it may be a zip bomb"
        )
    limit = images.MAX_FILE_BYTES if _is_image(entry) else MAX_LABEL_FILE_BYTES
    if _wanted(entry) and info.file_size > limit:
        raise ValueError(
            f"{name}: entry {entry!r} is too large ({info.file_size / 2**20:.1f} MB; limit {limit // 2**20} MB)"
        )


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    # One byte past the declared size shows a header that lies, without inflating the rest.
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        raise ValueError(f"{name}: entry {info.filename!r} is corrupt or lies about its size ({err})") from err
    if len(data) > info.file_size:
        raise ValueError(f"{name}: entry {info.filename!r} holds more than the {info.file_size:,} bytes it declares")
    return data


def _check_pixels(files: dict[str, Source], name: str, max_pixels: int) -> None:
    total = 0
    for entry, data in files.items():
        if not _is_image(entry) or _hidden(entry):
            continue
        try:
            w, h = images.peek_size(data)
        except ValueError as err:
            raise ValueError(f"{name}: {entry}: {err}") from err
        if w * h > images.MAX_PIXELS:
            raise ValueError(f"{name}: {entry} is too large ({w}×{h} pixels; limit {images.MAX_PIXELS:,} pixels)")
        total += w * h
        if total > max_pixels:
            raise ValueError(f"{name}: the images declare more than {max_pixels:,} pixels in all")


# ---- layouts -------------------------------------------------------------------------------


def _hidden(path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.split("/"))


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def _wanted(path: str) -> bool:
    return _is_image(path) or path.lower().endswith((".csv", ".txt"))


def _is_label_file(name: str) -> bool:
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


def _top_folder(files: dict[str, Source]) -> str:
    """'T/' when everything sits under one folder T that itself holds a dataset, else ''."""
    tops = {k.split("/", 1)[0] for k in files}
    if len(tops) != 1 or any("/" not in k for k in files):
        return ""
    prefix = tops.pop() + "/"
    inner = [k[len(prefix) :] for k in files]
    has_labels = any("/" not in k and _is_label_file(k) for k in inner)
    in_folders = any("/" in k and _is_image(k) for k in inner)
    return prefix if has_labels or in_folders else ""


def _build(files: dict[str, Source], where: str) -> LabelledImages:
    files = {k: v for k, v in files.items() if not _hidden(k)}
    prefix = _top_folder(files)
    files = {k[len(prefix) :]: v for k, v in files.items()}
    masks = {k[len(MASKS_FOLDER) :]: v for k, v in files.items() if k.startswith(MASKS_FOLDER) and _is_image(k)}
    files = {k: v for k, v in files.items() if not k.startswith(MASKS_FOLDER)}
    pictures = sorted(k for k in files if _is_image(k))
    if not pictures:
        raise ValueError(f"{where}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    reader, label_file = _label_reader(files, where)
    pairs, layout, what = reader(files, pictures, label_file, where)
    if not pairs:
        raise ValueError(f"{where}: {label_file or 'the folders'} label no images")
    pairs.sort(key=lambda p: p[0])
    left_out = len(pictures) - len(pairs)
    note = f"; {left_out} image(s) not named in {label_file} were left out" if left_out else ""
    labels = [label for _, label in pairs]
    description = f"{what}: {len(pairs)} images, {len(set(map(str, labels)))} labels, from {where}{note}"
    if masks:
        description += f"; {len(masks)} object mask(s)"
    return LabelledImages([(k, files[k]) for k, _ in pairs], labels, description, layout, masks)


def _label_reader(files: dict[str, Source], where: str) -> tuple[Callable, str | None]:
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
    loose = [k for k in files if "/" not in k and _is_image(k)]
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
    if not _is_image(key):
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


# ---- labels → a model's classes ------------------------------------------------------------


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 wnids in the models' class order (see assets/README.md for the source)."""
    wnids = tuple(WNID_FILE.read_text().split())
    if len(set(wnids)) != 1000 or len(wnids) != 1000:
        raise RuntimeError(f"{WNID_FILE} must list 1000 distinct wnids; it lists {len(wnids)}")
    return wnids


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _mapper(model) -> Callable[[str | int], int | None]:
    """Label → class index, or None. An exact name wins; a loose one (case, '_') that fits two classes
    (torchvision's 'Cardigan' corgi and 'cardigan' sweater) maps to neither."""
    exact = {n: i for i, n in reversed(list(enumerate(model.class_names)))}
    names: dict[str, int | None] = {}
    for i, n in enumerate(model.class_names):
        names[_key(n)] = None if _key(n) in names else i
    count = len(model.class_names)
    wnids = {w: i for i, w in enumerate(imagenet_wnids())} if _imagenet_1000(model) else {}

    def index(label: str | int) -> int | None:
        if isinstance(label, int):
            return label if 0 <= label < count else None
        if label in exact:
            return exact[label]
        return names.get(_key(label), wnids.get(label))

    return index


def _imagenet_1000(model) -> bool:
    return domains.of(model).wnids and len(model.class_names) == 1000


def unmapped_labels(dataset: LabelledImages, model) -> list[str | int]:
    """The distinct labels (first-seen order) that name none of `model`'s classes."""
    index, out = _mapper(model), []
    for label in dict.fromkeys(dataset.labels):
        if index(label) is None:
            out.append(label)
    return out


def fits(dataset: LabelledImages, model) -> bool:
    """Whether every label maps onto `model` (needs only .class_names and .domain, so no weights)."""
    return not unmapped_labels(dataset, model)


def class_indices(dataset: LabelledImages, model) -> list[int]:
    """Each item's class index in `model`, or one ValueError naming the first unmapped labels."""
    missing = unmapped_labels(dataset, model)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" …" if len(missing) > 5 else "")
        forms = "one of its class names, a class index 0–" + str(len(model.class_names) - 1)
        if _imagenet_1000(model):
            forms += " or an ImageNet wnid (like n01440764)"
        raise ValueError(
            f"{len(missing)} label(s) of the dataset do not map onto {model.name}'s classes: {shown}; "
            f"a label must be {forms}"
        )
    index = _mapper(model)
    return [index(label) for label in dataset.labels]


def tensors(dataset: LabelledImages, model, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` items (all by default) fitted to `model` as in `engine.images.load`: an N×C×H×W
    batch in [0, 1] and their class indices, both on the model's device."""
    if n is not None and n < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    y = class_indices(dataset, model)[:n]
    xs = []
    for name, source in dataset.items[: len(y)]:
        try:
            xs.append(images.load(source, model))
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
    return torch.cat(xs), torch.tensor(y, dtype=torch.long, device=model.device)


def evaluation_split(dataset: LabelledImages, model, n: int | None = None):
    """((images, labels), target-image bank) of the first `n` items, as `engine.domains` gives for built-in
    images: a user's dataset is its own bank, of the images the model classifies as their label."""
    x, y = tensors(dataset, model, None if n is None else min(n, len(dataset)))
    return (x, y), targets.bank(model, x, y)


def interleaved(dataset: LabelledImages, model) -> tuple[LabelledImages, list[int]]:
    """The items reordered round-robin over their classes (first of each class, then second, ...), and their
    class indices in `model`."""
    classes = class_indices(dataset, model)
    rank: dict[int, int] = {}
    order = []
    for i, c in enumerate(classes):
        order.append((rank.get(c, 0), c, i))
        rank[c] = rank.get(c, 0) + 1
    picked = [i for _, _, i in sorted(order)]
    return (
        LabelledImages(
            [dataset.items[i] for i in picked],
            [dataset.labels[i] for i in picked],
            dataset.description,
            dataset.layout,
            dataset.masks,
        ),
        [classes[i] for i in picked],
    )


def as_domain(record, dataset: LabelledImages, source: str, model):
    """`record` (a user's domain) with `dataset` as its images: its evaluation split, its target-image bank and
    the pictures one can pick, numbered in the dataset's class-interleaved order ("<source>#<i>")."""
    ordered, classes = interleaved(dataset, model)
    labels = torch.tensor(classes, dtype=torch.long)
    decoded: dict = {}  # (model, device) → the split of its first images: decoded and judged once, not per call

    def fetch(i: int, m) -> torch.Tensor:
        name, item = ordered.items[i]
        try:
            return images.load(item, m)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err

    def split(m, n: int):
        if not 1 <= n <= len(ordered):
            raise ValueError(f"the number of images must be between 1 and {len(ordered)} (the images given)")
        # The bank spans the classes whatever n is (AA's target images), as a built-in domain's does.
        size = max(n, min(len(ordered), BANK_IMAGES))
        key = (m.name, str(m.device))
        if key not in decoded or decoded[key][0] < size:
            decoded[key] = (size, evaluation_split(ordered, m, size))
        (x, y), bank = decoded[key][1]
        return (x[:n], y[:n]), bank

    return record.with_images(
        source, count=len(ordered), split=split, fetch=fetch, labels=lambda: labels, mask_file=ordered.mask
    )
