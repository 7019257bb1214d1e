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

Labels that are all ASCII digits become ints; everything else stays a stripped string (the readers are in
`engine.datasets.labels`; zips, with their safety checks, in `engine.datasets.zips`).
Items are sorted by their path inside the dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from engine import domains, images, targets
from engine.datasets.labels import IMAGE_SUFFIXES, Source, hidden, is_image, is_label_file, label_reader

WNID_FILE = images.ASSETS / "data" / "imagenet_wnids.txt"

MAX_FILES = 60_000  # the ImageNet validation set (50,000 images) fits; a zip of empty files does not
MASKS_FOLDER = "masks/"
BANK_IMAGES = 500  # a user's domain's target-image bank: its first images, classes interleaved


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
    return build(_walk(root, fence, max_files), str(folder))


def _walk(root: Path, fence: Path, max_files: int) -> dict[str, Source]:
    files: dict[str, Source] = {}
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not hidden(d)]
        for name in filenames:
            seen += 1
            if seen > max_files:
                raise ValueError(f"{root} holds more than {max_files:,} files; the limit is {max_files:,}")
            path = Path(dirpath) / name
            if hidden(name) or (path.is_symlink() and not path.resolve().is_relative_to(fence)):
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
        if hidden(child.name) or not child.is_dir() or not child.resolve().is_relative_to(base):
            continue
        try:
            ds = open_dataset(child, max_files=max_files, within=base)
        except ValueError:
            continue
        found.append(DatasetInfo(child.name, child, ds.layout, len(ds), ds.description))
    return found


def _top_folder(files: dict[str, Source]) -> str:
    """'T/' when everything sits under one folder T that itself holds a dataset, else ''."""
    tops = {k.split("/", 1)[0] for k in files}
    if len(tops) != 1 or any("/" not in k for k in files):
        return ""
    prefix = tops.pop() + "/"
    inner = [k[len(prefix) :] for k in files]
    has_labels = any("/" not in k and is_label_file(k) for k in inner)
    in_folders = any("/" in k and is_image(k) for k in inner)
    return prefix if has_labels or in_folders else ""


def build(files: dict[str, Source], where: str) -> LabelledImages:
    files = {k: v for k, v in files.items() if not hidden(k)}
    prefix = _top_folder(files)
    files = {k[len(prefix) :]: v for k, v in files.items()}
    masks = {k[len(MASKS_FOLDER) :]: v for k, v in files.items() if k.startswith(MASKS_FOLDER) and is_image(k)}
    files = {k: v for k, v in files.items() if not k.startswith(MASKS_FOLDER)}
    pictures = sorted(k for k in files if is_image(k))
    if not pictures:
        raise ValueError(f"{where}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    reader, label_file = label_reader(files, where)
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
