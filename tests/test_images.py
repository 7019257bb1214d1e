import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from engine import images


class Target:
    """The two things `images.load` needs from a model."""

    def __init__(self, channels=3, size=32):
        self.input_size = (channels, size, size)
        self.resize_size = size
        self.device = torch.device("cpu")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient_rgb(w=48, h=32) -> Image.Image:
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    return Image.fromarray(arr)


def test_path_bytes_and_pil_agree(tmp_path):
    img = gradient_rgb()
    path = tmp_path / "g.png"
    img.save(path)
    a = images.load(path, Target())
    b = images.load(path.read_bytes(), Target())
    c = images.load(img, Target())
    assert a.shape == (1, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(a, c)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0


def test_grayscale_and_rgb_targets():
    grey = images.load(encode(gradient_rgb().convert("L"), "PNG"), Target(channels=3))
    assert grey.shape == (1, 3, 32, 32) and torch.equal(grey[:, 0], grey[:, 1])
    assert images.load(encode(gradient_rgb(), "PNG"), Target(channels=1, size=28)).shape == (1, 1, 28, 28)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    decoded = images.decode(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.size == (20, 40)
    arr = np.asarray(decoded.convert("L"), dtype=float)
    assert arr[:20].mean() > 200 and arr[20:].mean() < 50  # the white half is now on top


def test_rgba_composites_on_white():
    img = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    assert np.asarray(images.decode(encode(img, "PNG"))).min() == 255


def test_palette_with_transparency():
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    decoded = images.decode(encode(img, "PNG", transparency=0))
    assert decoded.mode == "RGB" and np.asarray(decoded).min() == 255


def test_sixteen_bit_png_keeps_its_range():
    arr = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (16, 1))
    decoded = images.decode(encode(Image.fromarray(arr), "PNG"))
    out = np.asarray(decoded)
    assert decoded.mode == "L" and out[0, 0] == 0 and out[0, -1] == 255
    assert np.all(np.diff(out[0].astype(int)) >= 0) and len(np.unique(out)) > 20


def test_cmyk_jpeg():
    decoded = images.decode(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    r, g, b = np.asarray(decoded).reshape(-1, 3).mean(0)
    assert decoded.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 255, 255), (0, 0, 0)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(images.decode(data)).min() > 200


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"\x00\x01garbage" * 100, "not a recognised image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a recognised image"),
        (_png_declaring(60000, 60000), "too many pixels|too large"),
        (_png_declaring(20000, 50), "too elongated"),
    ],
)
def test_bad_input_is_a_clear_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        images.load(data, Target())


def test_truncated_files_are_reported():
    for fmt in ("PNG", "JPEG"):
        data = encode(gradient_rgb(64, 64), fmt)
        with pytest.raises(ValueError, match="corrupt|truncated|not a"):
            images.load(data[: len(data) // 2], Target())


def test_tiny_and_oversized_files():
    with pytest.raises(ValueError, match="too small"):
        images.load(encode(Image.new("RGB", (1, 1)), "PNG"), Target())
    with pytest.raises(ValueError, match="too large"):
        images.load(b"\x89PNG" + b"\x00" * (images.MAX_FILE_BYTES + 1), Target())


def test_missing_path(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        images.load(tmp_path / "nope.png", Target())


def test_display_helpers():
    delta = torch.zeros(1, 3, 4, 4)
    delta[0, 0, 0, 0] = 0.02
    delta[0, 1, 1, 1] = -0.01
    amp = images.amplified(delta)
    assert amp.shape == (4, 4, 3) and amp.dtype == np.uint8 and amp.max() == 255
    signed = images.signed(delta)
    assert signed[0, 0, 0] == 255 and signed[1, 1, 1] < 128 and signed[2, 2, 0] in (127, 128)
    assert images.to_uint8(torch.ones(1, 1, 4, 4)).shape == (4, 4, 3)
    png = images.png_bytes(amp)
    assert Image.open(io.BytesIO(png)).size == (4, 4)


def test_gallery_has_labelled_photos():
    gallery = images.gallery()
    assert len(gallery) >= 6
    readme = (images.ASSETS / "README.md").read_text()
    for _name, path in gallery.items():
        assert path.name in readme, f"{path.name} is not documented in assets/README.md"


def test_enlarged_keeps_pixels_crisp():
    arr = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    big = images.enlarged(arr)
    assert big.shape == (224, 224, 3)
    assert np.array_equal(big[::8, ::8], arr)
    assert images.enlarged(np.zeros((300, 300, 3), np.uint8)).shape == (300, 300, 3)


def test_npy_bytes_round_trip():
    arr = np.linspace(-0.03, 0.03, 12, dtype=np.float32).reshape(3, 2, 2)
    assert np.array_equal(np.load(io.BytesIO(images.npy_bytes(arr))), arr)
