"""Labelled datasets (engine.datasets): three layouts from folders and in-memory zips give the same
tensors as loading each gallery photo directly, labels map by name, index or wnid, and hostile
zips are refused with a specific message."""

import io
import json
import os
import shutil
import stat
import struct
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets.imagenette import Imagenette

from engine import datasets, images
from engine.datasets.imagenet import class_names as imagenet_names

LABELS = json.loads((images.GALLERY / "labels.json").read_text())
PHOTOS = sorted(LABELS)
WNIDS = datasets.imagenet_wnids()


def fake_model(class_names, domain="imagenet", size=224, name="lite0-classes"):
    """What datasets needs from a model, without weights."""
    return SimpleNamespace(
        name=name,
        domain=domain,
        class_names=list(class_names),
        input_size=(3, size, size),
        resize_size=size,
        device=torch.device("cpu"),
    )


IMAGENET = fake_model(list(imagenet_names()))
FMNIST = fake_model(
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    domain="fashion-mnist",
    size=28,
    name="fmnist-like",
)


def index(photo):
    return LABELS[photo]["imagenet_index"]


# ---- the three layouts, each written as a folder ------------------------------------------


def put(folder: Path, rel: str, photo: str):
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(images.GALLERY / photo, folder / rel)


def folders_by_name(d):
    for p in PHOTOS:
        label = LABELS[p]["label"]
        put(d, f"{label.replace(' ', '_') if p == 'grace_hopper.jpg' else label}/{p}", p)


def folders_by_wnid(d):
    for p in PHOTOS:
        put(d, f"{WNIDS[index(p)]}/{p}", p)


def folders_by_index(d):
    for p in PHOTOS:
        put(d, f"{index(p)}/{p}", p)


def csv_by_name(d):
    for p in PHOTOS:
        put(d, p, p)
    rows = [f"{p},{LABELS[p]['label'].upper()}" for p in PHOTOS]
    (d / "labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")


def csv_by_index_in_subfolder(d):
    for p in PHOTOS:
        put(d, f"pics/{p}", p)
    rows = [f"{index(p)},pics\\{p}" for p in PHOTOS]  # other column order, Windows separators
    (d / "mine.csv").write_text("Label,File\n" + "\n".join(rows) + "\n")


def loc_solution(d):
    for p in PHOTOS:
        put(d, p, p)
    rows = [f"{Path(p).stem},{WNIDS[index(p)]} 1 2 3 4 {WNIDS[index(p)]} 5 6 7 8" for p in PHOTOS]
    (d / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")


def val_txt_pairs(d):
    for p in PHOTOS:
        put(d, p, p)
    (d / "val.txt").write_text("".join(f"{p} {index(p)}\n" for p in PHOTOS))


def val_txt_lines(d):
    for p in PHOTOS:
        put(d, p, p)
    (d / "val.txt").write_text("".join(f"{index(p)}\n" for p in PHOTOS))  # PHOTOS is in sorted file order


LAYOUTS = {
    "folders-name": (folders_by_name, "imagefolder"),
    "folders-wnid": (folders_by_wnid, "imagefolder"),
    "folders-index": (folders_by_index, "imagefolder"),
    "csv-name": (csv_by_name, "csv"),
    "csv-index": (csv_by_index_in_subfolder, "csv"),
    "loc-wnid": (loc_solution, "imagenet-val"),
    "val-pairs": (val_txt_pairs, "imagenet-val"),
    "val-lines": (val_txt_lines, "imagenet-val"),
}


def zip_of(folder: Path, top: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, top + path.relative_to(folder).as_posix())
    return buf.getvalue()


@pytest.fixture(scope="module")
def direct():
    return {p: images.load(images.GALLERY / p, IMAGENET) for p in PHOTOS}


def check(ds, direct, layout, model=IMAGENET):
    assert ds.layout == layout and len(ds) == len(PHOTOS)
    names = [Path(name.replace("\\", "/")).name for name, _ in ds.items]
    assert [n for n, _ in ds.items] == sorted(n for n, _ in ds.items)
    x, y = datasets.tensors(ds, model)
    assert torch.equal(x, torch.cat([direct[n] for n in names]))
    assert y.tolist() == [index(n) for n in names]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_folder_and_zips_match_direct_loading(tmp_path, direct, layout):
    build, kind = LAYOUTS[layout]
    build(tmp_path / "ds")
    check(datasets.open_dataset(tmp_path / "ds"), direct, kind)
    check(datasets.open_zip(zip_of(tmp_path / "ds")), direct, kind)
    check(datasets.open_zip(zip_of(tmp_path / "ds", "my dataset/")), direct, kind)


def test_real_lite0_and_first_n(tmp_path, lite0):
    folders_by_wnid(tmp_path)
    ds = datasets.open_zip(zip_of(tmp_path))
    x, y = datasets.tensors(ds, lite0, n=3)
    names = [Path(n).name for n, _ in ds.items[:3]]
    assert torch.equal(x, torch.cat([images.load(images.GALLERY / n, lite0) for n in names]))
    assert y.tolist() == [index(n) for n in names]
    assert datasets.fits(ds, lite0)


def test_wnid_table_matches_class_names(lite0):
    assert len(WNIDS) == 1000 and list(WNIDS) == sorted(WNIDS)
    assert (WNIDS[0], WNIDS[14], WNIDS[282], WNIDS[999]) == ("n01440764", "n01537544", "n02123159", "n15075141")
    for wnid, names in Imagenette._WNID_TO_CLASS.items():  # an independent table: torchvision's Imagenette
        assert lite0.class_names[WNIDS.index(wnid)] == names[0]
    assert lite0.class_names[WNIDS.index("n02124075")] == "Egyptian cat"


def test_single_class_folder_is_not_taken_for_a_wrapper(tmp_path):
    put(tmp_path, "tripod/camera.png", "camera.png")
    ds = datasets.open_dataset(tmp_path)
    assert ds.labels == ["tripod"] and ds.layout == "imagefolder"
    assert datasets.open_zip(zip_of(tmp_path)).labels == ["tripod"]


def test_csv_leaves_out_unlisted_images_and_says_so(tmp_path):
    csv_by_name(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\ncoffee.png,espresso\n")
    ds = datasets.open_dataset(tmp_path)
    others = len(list(tmp_path.glob("*.*"))) - 2  # every photo but coffee, and the CSV itself
    assert ds.labels == ["espresso"] and f"{others} image(s) not named in labels.csv were left out" in ds.description


def test_hidden_and_macos_files_are_ignored(tmp_path):
    folders_by_index(tmp_path / "ds")
    put(tmp_path / "ds", ".thumbs/x.png", "coffee.png")
    put(tmp_path / "ds", "__MACOSX/967/._coffee.png", "coffee.png")
    assert len(datasets.open_dataset(tmp_path / "ds")) == len(PHOTOS)
    assert len(datasets.open_zip(zip_of(tmp_path / "ds"))) == len(PHOTOS)


# ---- labels onto models --------------------------------------------------------------------


def test_unmapped_labels_are_listed_with_the_model(tmp_path):
    folders_by_name(tmp_path)
    put(tmp_path, "not a class/x.png", "coffee.png")
    put(tmp_path, "1000/y.png", "coffee.png")
    ds = datasets.open_dataset(tmp_path)
    assert datasets.unmapped_labels(ds, IMAGENET) == [1000, "not a class"]  # in item order
    assert not datasets.fits(ds, IMAGENET)
    with pytest.raises(ValueError, match=r"2 label\(s\) .* lite0-classes's classes: 1000, 'not a class'; .*0–999"):
        datasets.tensors(ds, IMAGENET)


def test_wnids_and_names_do_not_map_onto_other_models(tmp_path):
    folders_by_wnid(tmp_path / "w")
    ds = datasets.open_dataset(tmp_path / "w")
    assert datasets.fits(ds, IMAGENET) and not datasets.fits(ds, FMNIST)
    with pytest.raises(ValueError, match=r"fmnist-like's classes: 'n0\d+'.*0–9$"):
        datasets.class_indices(ds, FMNIST)
    for label, photo in [("Sandal", "coffee.png"), ("ankle_boot", "camera.png"), ("3", "china.jpg")]:
        put(tmp_path / "f", f"{label}/{photo}", photo)
    fm = datasets.open_dataset(tmp_path / "f")
    assert datasets.class_indices(fm, FMNIST) == [3, 5, 9]  # sorted by path: 3/, Sandal/, ankle_boot/
    x, _ = datasets.tensors(fm, FMNIST)
    assert x.shape == (3, 3, 28, 28)


def test_exact_names_win_and_loose_names_that_fit_two_classes_do_not_map():
    def labelled(*labels):
        return datasets.LabelledImages([(f"{i}.png", b"") for i in range(len(labels))], list(labels), "", "csv")

    assert datasets.unmapped_labels(labelled("Cardigan", "CARDIGAN", "cardigan"), IMAGENET) == ["CARDIGAN"]
    ds = labelled("Cardigan", "cardigan", "Egyptian_CAT", " egyptian  cat", "n02124075", 285)
    assert datasets.class_indices(ds, IMAGENET) == [264, 474, 285, 285, 285, 285]


# ---- folder errors -------------------------------------------------------------------------


def write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def flat(d, csv_text=None, name="labels.csv"):
    put(d, "coffee.png", "coffee.png")
    put(d, "camera.png", "camera.png")
    if csv_text is not None:
        write(d / name, csv_text)
    return d


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent", r"dataset folder not found: .*absent"),
        (lambda d: (write(d / "notes.txt", "hi"), d)[1], r"no image files found"),
        (lambda d: flat(d), r"unknown layout: 2 image\(s\) at the top level and no labels file"),
        (
            lambda d: flat(d, "file,label\ncoffee.png,espresso\ngone.png,tripod\n"),
            r"labels.csv row 3: file 'gone.png' not found",
        ),
        (
            lambda d: flat(d, "name,class\ncoffee.png,espresso\n"),
            r"labels.csv: the header must name the columns file and label \(found: name, class\)",
        ),
        (lambda d: flat(d, "file,label\ncoffee.png, \n"), r"labels.csv row 2: empty label for 'coffee.png'"),
        (lambda d: flat(d, "file,label\ncoffee.png,a\ncoffee.png,b\n"), r"row 3: 'coffee.png' is labelled twice"),
        (lambda d: (flat(d, "file,label\n"), write(d / "b.csv", "file,label\n"), d)[-1], r"labels.csv label no images"),
        (
            lambda d: (flat(d, "file,label\n", "a.csv"), write(d / "b.csv", "file,label\n"), d)[-1],
            r"several CSV files \(a.csv, b.csv\)",
        ),
        (lambda d: flat(d, "1\n", "ILSVRC2012_validation_ground_truth.txt"), r"devkit's own order"),
        (lambda d: flat(d, "967\n", "val.txt"), r"val.txt has 1 labels for 2 top-level images"),
        (lambda d: flat(d, "coffee.png espresso\n", "val.txt"), r"val.txt line 1: expected '<file> <index>'"),
        (
            lambda d: flat(d, "ImageId,PredictionString\ncoffee,tench 1 2\n", "LOC_val_solution.csv"),
            r"row 2: 'tench' is not a wnid",
        ),
        (
            lambda d: flat(d, "ImageId,PredictionString\nespresso,n07920052 1\n", "LOC_val_solution.csv"),
            r"row 2: no image for ImageId 'espresso'",
        ),
    ],
    ids=[
        "missing-dir",
        "no-images",
        "unknown-layout",
        "missing-file",
        "bad-header",
        "empty-label",
        "twice",
        "labels-csv-wins",
        "several-csv",
        "devkit",
        "val-count",
        "val-syntax",
        "loc-wnid",
        "loc-missing",
    ],
)
def test_folder_errors(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        datasets.open_dataset(make(tmp_path))


def test_undecodable_image_names_the_file(tmp_path):
    put(tmp_path, "tripod/camera.png", "camera.png")
    write(tmp_path / "tripod/zz.png", "not a png")
    ds = datasets.open_dataset(tmp_path)
    with pytest.raises(ValueError, match=r"tripod/zz.png: not a recognised image format"):
        datasets.tensors(ds, IMAGENET)
    assert datasets.tensors(ds, IMAGENET, n=1)[1].tolist() == [872]


# ---- list_datasets and symlinks ------------------------------------------------------------


def test_list_datasets_skips_junk_and_symlinks_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    folders_by_index(root / "b-folders")
    csv_by_name(root / "a-csv")
    write(root / "junk/readme.txt", "nothing here")
    folders_by_index(outside / "secret")
    os.symlink(outside / "secret", root / "link-out")
    os.symlink(root / "b-folders", root / "link-in")
    os.symlink(outside / "secret/967/coffee.png", root / "b-folders/967/leak.png")
    found = datasets.list_datasets(root)
    assert [(d.name, d.layout, d.images) for d in found] == [
        ("a-csv", "csv", len(PHOTOS)),
        ("b-folders", "imagefolder", len(PHOTOS)),
        ("link-in", "imagefolder", len(PHOTOS)),
    ]
    assert (
        len(datasets.open_dataset(root / "b-folders", within=tmp_path)) == len(PHOTOS) + 1
    )  # the operator's fence decides


# ---- hostile zips --------------------------------------------------------------------------


PNG = (images.GALLERY / "camera.png").read_bytes()


def zip_with(*entries, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compression) as z:
        warnings.simplefilter("ignore")  # duplicate names
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def patch_central(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite one field of the first central-directory entry (and the local header's flags alike)."""
    out = bytearray(data)
    struct.pack_into(fmt, out, data.index(b"PK\x01\x02") + offset, value)
    if offset == 8:
        struct.pack_into(fmt, out, 6, value)
    return bytes(out)


def symlink_zip() -> bytes:
    info = zipfile.ZipInfo("tripod/link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zip_with(("tripod/camera.png", PNG), (info, "/etc/passwd"))


def empty_entries(n: int) -> bytes:
    """n empty stored files with zip64 end records, assembled directly (zipfile takes seconds for 100,000)."""
    local, central = [], []
    offset = 0
    for i in range(n):
        name = b"%06d.png" % i
        local.append(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name)
        central.append(
            struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset)
            + name
        )
        offset += len(local[-1])
    cd = b"".join(central)
    z64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, offset + len(cd), 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"".join(local) + cd + z64 + locator + end


def lying_size() -> bytes:
    data = zip_with(("tripod/camera.png", PNG), compression=zipfile.ZIP_DEFLATED)
    return patch_central(data, 24, "<I", 100)


@pytest.mark.parametrize(
    "data, limits, message",
    [
        (zip_with(("../tripod/camera.png", PNG)), {}, r"entry '../tripod/camera.png' points outside the archive"),
        (zip_with(("tripod/../../x.png", PNG)), {}, r"points outside the archive \('..'\)"),
        (zip_with(("/tmp/tripod/camera.png", PNG)), {}, r"entry '/tmp/tripod/camera.png' has an absolute path"),
        (zip_with(("C:/tripod/camera.png", PNG)), {}, r"has an absolute path"),
        (zip_with(("tripod\\..\\..\\camera.png", PNG)), {}, r"has a backslash in its path"),
        (symlink_zip(), {}, r"entry 'tripod/link.png' is a symbolic link"),
        (
            zip_with(("tripod/zeros.png", bytes(8 * 2**20)), compression=zipfile.ZIP_DEFLATED),
            {},
            r"entry 'tripod/zeros.png' expands 1,0\d\d× \(limit 100×\); it may be a zip bomb",
        ),
        (
            zip_with(*[(f"t/{i}.png", os.urandom(2**20)) for i in range(3)]),
            {"max_unzipped": 2 * 2**20},
            r"declares 3 MB uncompressed \(limit 2 MB\); it may be a zip bomb",
        ),
        (lying_size(), {}, r"entry 'tripod/camera.png' is corrupt or lies about its size \(Bad CRC-32"),
        (
            zip_with(("tripod/camera.png", PNG)),
            {"max_bytes": 1000},
            r"the archive is too large \(0.\d MB; limit 0 MB\)",
        ),
        (b"PNG? no: " * 100, {}, r"not a zip file \(no end-of-archive record\)"),
        (
            b"junk" * 10 + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, 30, 0, 0),
            {},
            r"the archive is not a readable zip \(Truncated central directory\)",
        ),
        (
            patch_central(zip_with(("tripod/camera.png", PNG)), 8, "<H", 1),
            {},
            r"entry 'tripod/camera.png' is encrypted",
        ),
        (zip_with(("tripod/a.png", PNG), ("tripod/a.png", PNG)), {}, r"entry 'tripod/a.png' appears twice"),
        (zip_with(("tripod/a.png", PNG)), {"max_pixels": 1000}, r"declare more than 1,000 pixels in all"),
        (zip_with(("tripod/a.png", b"hello")), {}, r"tripod/a.png: .*not a recognised image format"),
        (zip_with(("tripod/a.png", PNG)), {"max_files": 0}, r"has too many entries \(1; limit 0\)"),
    ],
    ids=[
        "dotdot",
        "dotdot-inside",
        "absolute",
        "drive-letter",
        "backslash",
        "symlink",
        "ratio-bomb",
        "declared-total",
        "lying-header",
        "max-bytes",
        "not-zip",
        "broken-zip",
        "encrypted",
        "duplicate",
        "pixels",
        "bad-image",
        "max-files",
    ],
)
def test_hostile_zips_are_refused(data, limits, message):
    with pytest.raises(ValueError, match=message):
        datasets.open_zip(data, **limits)


def test_many_empty_files_refused_before_reading(monkeypatch):
    data = empty_entries(100_000)
    # Refused from the end record alone: zipfile never parses the 100,000-entry central directory.
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("the central directory was parsed"))
    with pytest.raises(ValueError, match=r"too many entries \(100,000; limit 60,000\)"):
        datasets.open_zip(data, max_bytes=len(data))


def test_entry_count_the_end_record_hides_is_still_counted():
    data = bytearray(empty_entries(70_000))
    struct.pack_into("<Q", data, data.rindex(b"PK\x06\x06") + 32, 5)  # the zip64 record lies
    with pytest.raises(ValueError, match=r"too many entries \(70,000; limit 60,000\)"):
        datasets.open_zip(bytes(data), max_bytes=len(data))


def test_built_zip_of_empty_entries_is_a_valid_zip():
    with zipfile.ZipFile(io.BytesIO(empty_entries(3))) as z:
        assert z.namelist() == ["000000.png", "000001.png", "000002.png"] and z.testzip() is None


def test_zip_never_touches_disk(tmp_path, monkeypatch):
    folders_by_index(tmp_path)
    data = zip_of(tmp_path)
    monkeypatch.setattr(zipfile.ZipFile, "extract", lambda *a, **k: pytest.fail("extracted"))
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: pytest.fail("extracted"))
    ds = datasets.open_zip(data)
    assert all(isinstance(src, bytes) for _, src in ds.items)
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(ds.items[0][1]))), np.asarray(Image.open(tmp_path / ds.items[0][0]))
    )


def test_folder_file_limit_and_n(tmp_path):
    folders_by_index(tmp_path)
    with pytest.raises(ValueError, match=r"holds more than 3 files; the limit is 3"):
        datasets.open_dataset(tmp_path, max_files=3)
    with pytest.raises(ValueError, match=r"n must be at least 1 \(got 0\)"):
        datasets.tensors(datasets.open_dataset(tmp_path), IMAGENET, n=0)
