"""Object masks: which pixels of an image belong to the object.

Dark-background images (Fashion-MNIST) by a brightness threshold; gallery photos by
the masks committed under assets/images/masks; any other photo by OpenCV GrabCut
from a centred rectangle; a user's dataset by its own masks (`masks/<file>` in it),
else GrabCut. Pure image operations: nothing here imports attacks or analyses.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from engine import images

MASKS = Path(__file__).resolve().parent.parent / "assets" / "images" / "masks"
# Fashion-MNIST background pixels are exactly 0; 0.05 (≈13/255) keeps the faint edges of sandals and bags.
FMNIST_THRESHOLD = 0.05
GRABCUT_SIDE = 128


def threshold_mask(x: torch.Tensor, threshold: float = FMNIST_THRESHOLD) -> torch.Tensor:
    """Object masks (N×1×H×W bool) of dark-background images: brightness above `threshold`,
    with holes inside the outline filled (the object's interior belongs to it)."""
    bright = (x.mean(1) > threshold).cpu().numpy().astype(np.uint8)
    masks = [fill_holes(m) for m in bright]
    return torch.from_numpy(np.stack(masks)).unsqueeze(1).to(x.device).bool()


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background = what a flood fill from the border reaches; everything else is object."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return (padded | (1 - flood))[1:-1, 1:-1].astype(np.uint8)


def grabcut_mask(
    x: torch.Tensor, rect: tuple[float, float, float, float] = (0.1, 0.1, 0.8, 0.8), iterations: int = 5
) -> torch.Tensor:
    """Automatic object mask (1×H×W bool) of one colour image by OpenCV GrabCut.

    `rect` = (left, top, width, height) as fractions of the image: the object is
    assumed inside it, everything outside is background. Small images are cut at
    GRABCUT_SIDE px (GrabCut's colour models need more pixels than a 32×32 image
    has) and the mask brought back; where GrabCut finds nothing, the box itself is
    the mask, so every image gets an object to compare with its background.
    """
    arr = images.to_uint8(x)  # H×W×3 RGB
    h, w = arr.shape[:2]
    left, top, width, height = (float(v) for v in rect)
    if not (0 <= left < 1 and 0 <= top < 1 and 0 < width <= 1 - left + 1e-9 and 0 < height <= 1 - top + 1e-9):
        raise ValueError(f"rect must be (left, top, width, height) fractions inside the image, got {rect}")
    scale = max(1.0, GRABCUT_SIDE / min(h, w))
    big = cv2.resize(arr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC) if scale > 1 else arr
    bh, bw = big.shape[:2]
    box = (int(left * bw), int(top * bh), max(2, int(width * bw)), max(2, int(height * bh)))
    mask = np.zeros((bh, bw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random; masks must be reproducible
    cv2.grabCut(cv2.cvtColor(big, cv2.COLOR_RGB2BGR), mask, box, bgd, fgd, int(iterations), cv2.GC_INIT_WITH_RECT)
    obj = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    if scale > 1:
        obj = cv2.resize(obj, (w, h), interpolation=cv2.INTER_NEAREST)
    if not obj.any():
        obj[
            int(top * h) : int(top * h) + max(1, int(height * h)),
            int(left * w) : int(left * w) + max(1, int(width * w)),
        ] = 1
    return torch.from_numpy(fill_holes(obj)).unsqueeze(0).bool().to(x.device)


def gallery_mask(name: str, model) -> torch.Tensor:
    """The committed object mask of gallery photo `name`, resized and cropped exactly like the photo."""
    path = MASKS / f"{name}.png"
    if not path.is_file():
        raise ValueError(
            f"no object mask for {name!r}; masks exist for: {', '.join(sorted(p.stem for p in MASKS.glob('*.png')))}"
        )
    c, size, _ = model.input_size
    fitted = images.fit(Image.open(path).convert("L"), 1, size, getattr(model, "resize_size", None))
    return torch.from_numpy(np.asarray(fitted) > 127).unsqueeze(0).to(model.device)


def from_file(source, model) -> torch.Tensor:
    """A user's mask image (white = object), resized and cropped exactly like its photo (1×H×W bool)."""
    c, size, _ = model.input_size
    fitted = images.fit(images.decode(source).convert("L"), 1, size, getattr(model, "resize_size", None))
    return torch.from_numpy(np.asarray(fitted) > 127).unsqueeze(0).to(model.device)
