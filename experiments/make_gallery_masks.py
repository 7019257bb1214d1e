"""Object masks of the gallery photos for the contour-vs-background analysis (Menn 2023, §4.8).

GrabCut (engine.analysis.masking.grabcut_mask) from a hand-chosen rectangle per
photo, at a working size of 320 px, written at the photo's full size to
assets/images/masks/<name>.png (255 = object). Each mask was checked by eye on
the overlays this script also writes (--preview DIR).

    python experiments/make_gallery_masks.py [--preview /tmp/masks]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine import images
from engine.analysis.masking import MASKS, grabcut_mask

# (left, top, width, height) as fractions of the photo: where the object is.
RECTS = {
    "camera": (0.0, 0.05, 0.62, 0.95),
    "chelsea": (0.02, 0.0, 0.83, 1.0),
    "china": (0.33, 0.02, 0.36, 0.85),
    "coffee": (0.08, 0.05, 0.84, 0.78),
    "grace_hopper": (0.1, 0.05, 0.85, 0.94),
    "motorcycle": (0.04, 0.08, 0.92, 0.9),
    "rocket": (0.3, 0.02, 0.35, 0.96),
    "airliner": (0.01, 0.2, 0.98, 0.6),
    "aitzgorri": (0.0, 0.03, 1.0, 0.47),
    "brown_bear": (0.02, 0.02, 0.96, 0.96),
    "canoes": (0.0, 0.47, 1.0, 0.52),
    "crowned_crane": (0.0, 0.02, 0.98, 0.97),
    "cups": (0.02, 0.55, 0.42, 0.44),
    "dragonfly": (0.35, 0.2, 0.63, 0.34),
    "fire_engine": (0.01, 0.04, 0.98, 0.92),
    "flamingo": (0.02, 0.01, 0.96, 0.98),
    "forest_stream": (0.05, 0.35, 0.9, 0.62),
    "fruits": (0.6, 0.5, 0.4, 0.5),
    "garbage_truck": (0.01, 0.02, 0.98, 0.96),
    "hot_air_balloon": (0.02, 0.01, 0.96, 0.98),
    "ladybird": (0.6, 0.4, 0.1, 0.2),
    "mantis": (0.01, 0.01, 0.98, 0.98),
    "orange": (0.03, 0.03, 0.94, 0.92),
    "paintbrushes": (0.0, 0.0, 0.78, 1.0),
    "paratrooper": (0.02, 0.01, 0.96, 0.98),
    "pekinese": (0.05, 0.0, 0.9, 1.0),
    "picos_de_europa": (0.0, 0.1, 1.0, 0.45),
    "spaniels": (0.15, 0.02, 0.55, 0.62),
    "slug": (0.01, 0.01, 0.98, 0.98),
    "squirrel": (0.2, 0.0, 0.5, 0.8),
    "stethoscope": (0.01, 0.01, 0.98, 0.98),
    "strawberry": (0.02, 0.01, 0.96, 0.98),
    "tank": (0.01, 0.25, 0.98, 0.73),
    "warplane": (0.01, 0.05, 0.98, 0.9),
    "woodlouse": (0.01, 0.01, 0.98, 0.98),
    "yellow_flower": (0.15, 0.0, 0.85, 1.0),
}
WORK = 320


def make(name: str, path: Path) -> np.ndarray:
    img = images.decode(path).convert("RGB")
    w, h = img.size
    scale = WORK / max(w, h)
    small = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    mask = grabcut_mask(images.to_tensor(small)[0], RECTS[name], iterations=8)[0].numpy()
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.NEAREST))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preview", type=Path, help="also write overlays (object tinted red) here")
    parser.add_argument("--only", nargs="*", help="gallery names to redo (default: all)")
    args = parser.parse_args()
    MASKS.mkdir(parents=True, exist_ok=True)
    for name, path in images.gallery().items():
        if args.only and name not in args.only:
            continue
        mask = make(name, path)
        Image.fromarray(mask).save(MASKS / f"{name}.png", optimize=True)
        print(f"{name}: object covers {mask.mean() / 255:.1%} of the photo")
        if args.preview:
            args.preview.mkdir(parents=True, exist_ok=True)
            rgb = np.asarray(images.decode(path).convert("RGB")).astype(np.float32)
            tint = rgb.copy()
            tint[mask == 0] *= 0.3
            Image.fromarray(tint.astype(np.uint8)).save(args.preview / f"{name}.jpg")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
