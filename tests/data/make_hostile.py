"""Write the hostile-upload corpus: odd, broken and malicious image files, made here, never downloaded.

    python tests/data/make_hostile.py OUT_DIR

`CORPUS` says what each file must give: an image of a known size (after EXIF
rotation) or a ValueError whose message contains the given words.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# name -> ("ok", (width, height)) or ("error", words expected in the message)
CORPUS: dict[str, tuple[str, object]] = {
    "empty.png": ("error", "empty"),
    "truncated.png": ("error", "corrupt or truncated"),
    "truncated.jpg": ("error", "corrupt or truncated"),
    "random_bytes.png": ("error", "not a recognised image format"),
    "bomb.png": ("error", "too many pixels"),
    "gray16.png": ("ok", (64, 48)),
    "cmyk.jpg": ("ok", (64, 48)),
    "palette_transparent.png": ("ok", (64, 48)),
    "animated.gif": ("ok", (64, 48)),
    "exif_rotated.jpg": ("ok", (48, 64)),  # stored 64×48 with "rotate 90°": shown upright as 48×64
    "one_pixel.png": ("error", "too small"),
    "sliver_20000x50.png": ("error", "too elongated"),
    "drawing.svg": ("error", "not a recognised image format"),
    "over_limit.png": ("error", "too large"),
}


def _photo(w: int = 64, h: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // w, yy * 255 // h, rng.integers(0, 255, (h, w))], -1).astype(np.uint8)
    return Image.fromarray(arr)


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header declaring side×side pixels, with a few bytes of data: decoding it would need ~30 GB."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def write_corpus(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    photo = _photo()
    png, jpg = _bytes(photo, "PNG"), _bytes(photo, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    frames = [_photo().rotate(a) for a in (0, 90, 180)]
    animated = io.BytesIO()
    frames[0].save(animated, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    gray16 = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16))
    files = {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpg[: len(jpg) // 3],
        "random_bytes.png": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "bomb.png": bomb_png(),
        "gray16.png": _bytes(gray16, "PNG"),
        "cmyk.jpg": _bytes(photo.convert("CMYK"), "JPEG"),
        "palette_transparent.png": _bytes(palette, "PNG", transparency=0),
        "animated.gif": animated.getvalue(),
        "exif_rotated.jpg": _bytes(photo, "JPEG", exif=exif.tobytes()),
        "one_pixel.png": _bytes(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"),
        "sliver_20000x50.png": _bytes(Image.new("L", (20000, 50), 128), "PNG"),
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">'
        b'<rect width="64" height="48"/></svg>',
        # Over the 25 MB limit: a real PNG header followed by padding (never decoded).
        "over_limit.png": png + b"\x00" * (26 * 1024 * 1024),
    }
    paths = {}
    for name, data in files.items():
        path = out / name
        path.write_bytes(data)
        paths[name] = path
    return paths


if __name__ == "__main__":
    for path in write_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")).values():
        print(path)
