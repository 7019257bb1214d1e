"""Fashion-MNIST: the project's offline small-image domain (every analysis can run on it
without a download).

The 10,000-image test split is committed under assets/data/fashion-mnist (MIT
licence, Zalando SE). The 60,000-image training split is read from Debian's
`dataset-fashion-mnist` package; only training needs it.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "data" / "fashion-mnist"
SYSTEM = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Per-pixel mean and std of the 60,000 training images in [0, 1] (computed by `train_statistics()`).
MEAN = 0.28604060411453247
STD = 0.3530242443084717
INPUT_SIZE = (1, 28, 28)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    dims = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _split(folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


@lru_cache(maxsize=1)
def _test_cached() -> tuple[torch.Tensor, torch.Tensor]:
    return _split(ASSETS, "t10k")


def test_view() -> tuple[torch.Tensor, torch.Tensor]:
    """The cached test split itself, not a copy: read-only (clone what you keep)."""
    return _test_cached()


def test_split() -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 test images (N×1×28×28 in [0, 1]) and labels, from the committed copy."""
    x, y = _test_cached()
    return x.clone(), y.clone()


def train_split(folder: Path = SYSTEM) -> tuple[torch.Tensor, torch.Tensor]:
    """The 60,000 training images, from Debian's package (training only)."""
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST training split not found in {folder}; install it with "
            "`apt-get install dataset-fashion-mnist` (Debian) or put the four idx .gz files there"
        )
    return _split(folder, "train")


def train_statistics(folder: Path = SYSTEM) -> tuple[float, float]:
    x, _ = train_split(folder)
    return float(x.mean()), float(x.std())


def class_bank(y: torch.Tensor) -> dict[int, torch.Tensor]:
    """Indices of each class in a label vector: the pool target images are drawn from."""
    return {c: (y == c).nonzero().squeeze(1) for c in range(len(CLASS_NAMES))}


def evaluation_slice(n: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed first-n slice of the test split that tests and the model card use."""
    x, y = test_split()
    return x[:n], y[:n]
