"""A labelled dataset from a zip held in memory (nothing is written to disk), refused before any member is read
when it looks hostile: too large, too many entries, unsafe paths, symlinks, encryption or a zip bomb."""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
import zlib

from engine import images
from engine.datasets.folders import MAX_FILES, LabelledImages, build
from engine.datasets.labels import MAX_LABEL_FILE_BYTES, Source, hidden, is_image, wanted

MAX_ZIP_BYTES = 200 * 2**20
MAX_UNZIPPED_BYTES = 1 * 2**30
MAX_RATIO = 100  # photos barely compress; zeros compress ~1000×
RATIO_FLOOR = 2**20  # small members (a CSV of repeated labels) may compress well
MAX_TOTAL_PIXELS = 2_000_000_000  # ~10,000 photos of 450×450: a bound on decoding time


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
    """A zip's bytes in one of the layouts of `engine.datasets.folders`, read in memory (nothing is written to disk).

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
    return build(files, name)


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
    return [i for i in infos if not i.is_dir() and not hidden(i.filename) and wanted(i.filename)]


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
    limit = images.MAX_FILE_BYTES if is_image(entry) else MAX_LABEL_FILE_BYTES
    if wanted(entry) and info.file_size > limit:
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
        if not is_image(entry) or hidden(entry):
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
