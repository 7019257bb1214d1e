"""Images in and out: decoding user files safely, fitting them to a model, and
turning tensors into pictures for display. Plain arrays and PIL images only, so the app, the CLI
and the tests share it (docs/ARCHITECTURE.md, the engine/app split).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GALLERY = ASSETS / "images"

MAX_FILE_BYTES = 25 * 1024 * 1024  # the app's upload limit is the same
MAX_PIXELS = 40_000_000  # ~6300×6300; bigger is almost surely a decompression bomb
MIN_SIDE = 8
MAX_ASPECT = 20.0

Source = str | Path | bytes | bytearray | Image.Image


def gallery() -> dict[str, Path]:
    """Sample photos shipped in assets/images (see assets/README.md for sources and licences)."""
    return {p.stem: p for p in sorted(GALLERY.iterdir()) if p.suffix.lower() in {".png", ".jpg", ".jpeg"}}


def _open(source: Source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"image file not found: {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(
                f"image file is too large ({path.stat().st_size / 2**20:.1f} MB; limit {MAX_FILE_BYTES // 2**20} MB)"
            )
        data = path.read_bytes()
    if not data:
        raise ValueError("the image file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"image file is too large ({len(data) / 2**20:.1f} MB; limit {MAX_FILE_BYTES // 2**20} MB)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(_explain(err)) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"not a readable image ({err})") from err


def _explain(err: Exception) -> str:
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"the image declares too many pixels (limit {MAX_PIXELS:,}); it may be a decompression bomb"
    return "not a recognised image format (PNG, JPEG, GIF, BMP, TIFF and WebP are supported)"


def decode(source: Source) -> Image.Image:
    """Decode to an upright RGB or L image, or raise ValueError with a message for the user.

    Header checks (size, aspect) come before pixel data is decoded, so a bomb costs nothing.
    """
    img = _open(source)
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ValueError(f"image is too large ({w}×{h} pixels; limit {MAX_PIXELS:,} pixels)")
    if min(w, h) < MIN_SIDE:
        raise ValueError(f"image is too small ({w}×{h}); each side needs at least {MIN_SIDE} pixels")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ValueError(
            f"image is too elongated ({w}×{h}); the longer side may be at most {MAX_ASPECT:.0f}× the shorter"
        )
    try:
        img.seek(0)  # first frame of an animation
        img = ImageOps.exif_transpose(img)
        img.load()
        return _to_rgb_or_l(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"the image data is corrupt or truncated ({err})") from err


def peek_size(source: Source) -> tuple[int, int]:
    """Width and height from the header alone (no pixel data decoded), or ValueError as `decode` gives."""
    return _open(source).size


def _to_rgb_or_l(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # PIL's own convert("L") clips 16-bit data at 255; scale by the type's range instead.
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "I" and arr.max() <= 255:
            top = 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas become white, as a browser shows them on a light page.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("1",):
        return img.convert("L")
    return img.convert("RGB")  # CMYK, YCbCr, P, LAB, HSV


def fit(img: Image.Image, channels: int, size: int, resize_size: int | None = None) -> Image.Image:
    """Shorter side to `resize_size` (default `size`), then a centred size×size crop."""
    img = img.convert("L" if channels == 1 else "RGB")
    resize_size = resize_size or size
    w, h = img.size
    scale = resize_size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new != (w, h):
        img = img.resize(new, Image.BICUBIC, reducing_gap=3.0)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr)).unsqueeze(0)


def load(source: Source, model) -> torch.Tensor:
    """A user's image as a 1×C×H×W tensor in [0, 1], sized for `model`, on the model's device."""
    c, h, _ = model.input_size
    img = fit(decode(source), c, h, getattr(model, "resize_size", None))
    return to_tensor(img).to(model.device)


# ---- display helpers: tensors → uint8 pictures -------------------------------------------


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """One image (C×H×W or 1×C×H×W) in [0, 1] → H×W×3 uint8 (grey is repeated to RGB)."""
    arr = x.detach().float().cpu()
    if arr.dim() == 4:
        arr = arr[0]
    arr = arr.clamp(0, 1).numpy().transpose(1, 2, 0)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return (arr * 255.0 + 0.5).astype(np.uint8)


def quantised(x: torch.Tensor) -> torch.Tensor:
    """x as an 8-bit file holds it (the rounding of `to_uint8`), back in [0, 1]."""
    return torch.floor(x.detach().clamp(0, 1) * 255.0 + 0.5) / 255.0


def amplified(delta: torch.Tensor) -> np.ndarray:
    """|δ| scaled so its largest value is white: shows *where* the attack acts."""
    mag = delta.detach().abs().float()
    if mag.dim() == 4:
        mag = mag[0]
    peak = float(mag.max())
    return to_uint8(mag / peak if peak > 0 else mag)


def signed(delta: torch.Tensor) -> np.ndarray:
    """δ centred on mid-grey and stretched to its largest magnitude: shows the sign per channel."""
    d = delta.detach().float()
    if d.dim() == 4:
        d = d[0]
    peak = float(d.abs().max())
    return to_uint8(0.5 + 0.5 * d / peak if peak > 0 else d + 0.5)


def signed_map(delta: torch.Tensor) -> np.ndarray:
    """Channel-mean δ as an H×W float array in [-1, 1], for a diverging colour map."""
    d = delta.detach().float()
    if d.dim() == 4:
        d = d[0]
    m = d.mean(0)
    peak = float(m.abs().max())
    return (m / peak if peak > 0 else m).cpu().numpy()


def enlarged(arr: np.ndarray, min_side: int = 224) -> np.ndarray:
    """Nearest-neighbour upscaling of a small picture (28×28) so its pixels stay crisp on screen."""
    factor = max(1, -(-min_side // min(arr.shape[:2])))
    return arr if factor == 1 else arr.repeat(factor, axis=0).repeat(factor, axis=1)


def npy_bytes(arr: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file (exact float values, for downloads)."""
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def png_bytes(arr: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG file bytes; `compress_level` 1 encodes ~4× faster for pictures that only go on screen."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def overlay(
    x: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    colour=(255, 0, 0),
    alpha: float = 0.6,
    outside: float = 1.0,
) -> np.ndarray:
    """The picture of `x` (a tensor in [0, 1] or an H×W×3 uint8 array) with the pixels of the H×W `mask`
    blended towards `colour` by `alpha`; the pixels outside are kept, or dimmed by the factor `outside` so
    the masked part stands out."""
    rgb = (to_uint8(x) if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)
    inside = (mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)).astype(bool)
    inside = inside.reshape(rgb.shape[:2])  # a 1×H×W mask is the same pixels
    if outside != 1.0:
        rgb[~inside] *= outside
    rgb[inside] = (1.0 - alpha) * rgb[inside] + alpha * np.asarray(colour, dtype=np.float64)
    return rgb.astype(np.uint8)
