"""The only place with Streamlit cache decorators (docs/ARCHITECTURE.md, app).

Models are shared by every session (`cache_resource`); they are read-only at
inference, and anything that hooks them holds `model.lock`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import streamlit as st
import torch

from app import state
from engine import attacks, datasets, domains, images, models
from engine.analysis.target_images import evaluation_split

BUILTIN = state.BUILTIN
# Uploaded archives are read in memory: bounded well below the folder limits.
ZIP_LIMITS = {"max_bytes": 100 * 2**20, "max_files": 5_000, "max_pixels": 500_000_000}


@st.cache_resource(show_spinner="Loading model…")
def load_model(name: str):
    return models.load(name)


_MODEL_ROWS = "_model_rows"


def check_models() -> None:
    """Look at every registered model's weights once per rerun (called first thing by app/main.py).

    Not cached across reruns: a weights file may appear or break while the app runs; but the
    sidebar asks for the rows several times a rerun, and each look is a dozen file checks.
    """
    st.session_state[_MODEL_ROWS] = models.available()


def model_rows() -> list[dict]:
    """Every registered model and whether it loads here, as checked at the start of this rerun."""
    if _MODEL_ROWS not in st.session_state:
        check_models()
    return st.session_state[_MODEL_ROWS]


@st.cache_data(show_spinner=False)
def attack_rows(domain: str) -> list[dict]:
    return attacks.available(domains.get(domain).attack_defaults)


@st.cache_resource(show_spinner=False)
def _classroom_store(path: str):
    from engine import classroom as rooms

    return rooms.Store(path)


def classroom():
    """The classroom database (engine.classroom: PE_CLASSROOM_DB, else the user's cache folder), one for every
    session: each of its calls opens its own connection."""
    from engine import classroom as rooms

    return _classroom_store(str(rooms.default_path()))


def model(name: str):
    """A model by name: this session's uploaded models first, else the shared cached one."""
    own = state.own_models()
    return own[name] if name in own else load_model(name)


def image_tensor(model_name: str, source_key: str, data: bytes | None) -> torch.Tensor:
    """The chosen image fitted to the model (CPU; cached per input geometry and image, shared: read-only)."""
    m = model(model_name)
    record = domains.of(m)
    if data is None and record.fetch is not None and record.parse_key(source_key) is not None:
        return record.load(source_key, m).cpu()  # this session's own images: never in the shared cache
    c, size, _ = m.input_size
    return _fitted_image((c, size, getattr(m, "resize_size", None) or size), source_key, data)


# cache_resource, not cache_data: cache_data pickles a tensor in and out on every hit. The engine
# never writes into its inputs (check_input detaches, attacks work on copies).
@st.cache_resource(show_spinner=False, max_entries=32)
def _fitted_image(geometry: tuple[int, int, int], source_key: str, data: bytes | None) -> torch.Tensor:
    c, size, resize = geometry
    owner = domains.owner(source_key) if data is None else None
    if owner is not None and owner.indexed:
        index = owner.parse_key(source_key)
        return owner.numbered()[0][index : index + 1].clone()
    source = data if data is not None else images.gallery()[source_key]
    return images.to_tensor(images.fit(images.decode(source), c, size, resize))


def class_members(domain: domains.Domain) -> dict[int, list[int]]:
    """An indexed domain's image numbers per class (a user's images: this session's, never cached across)."""
    return _builtin_members(domain.name) if not domain.custom else _members(domain.class_labels())


@st.cache_data(show_spinner=False)
def _builtin_members(name: str) -> dict[int, list[int]]:
    return _members(domains.get(name).class_labels())


def _members(y: torch.Tensor) -> dict[int, list[int]]:
    return {c: (y == c).nonzero().squeeze(1).tolist() for c in sorted(set(y.tolist()))}


def attach_images(model_name: str, source: str) -> None:
    """This session's own models of `model_name`'s domain take the chosen labelled images as their domain's
    images (pictures to pick, evaluation split, target-image bank); built-in models keep their own."""
    own = state.own_models()
    if model_name not in own or not domains.get(own[model_name].domain).custom:
        return
    for other in own.values():
        if other.domain != own[model_name].domain:
            continue
        if source == BUILTIN or not datasets.fits(dataset(source), other):
            other.domain_record = None
            continue
        key = ("domain-images", other.name, source)
        record = state.analysis(key)
        if record is None:
            record = datasets.as_domain(domains.get(other.domain), dataset(source), source, other)
            state.store_analysis(key, record)
        other.domain_record = record


@st.cache_data(show_spinner=False, max_entries=32)
def upload_problem(data: bytes) -> str | None:
    """None if an uploaded file decodes as an image, else the reason in plain words."""
    try:
        images.decode(data)
    except ValueError as err:
        return str(err)
    return None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def data_root() -> Path | None:
    """The folder whose sub-folders the app offers as datasets: `--data-root DIR` after `--` on the
    command line, else $PE_DATA_ROOT; set by whoever starts the app, never by a link."""
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    root = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--data-root"), None) or os.environ.get(
        "PE_DATA_ROOT"
    )
    return Path(root).expanduser() if root else None


@st.cache_data(show_spinner=False, ttl=60)
def data_folders(root: str) -> list[datasets.DatasetInfo]:
    return datasets.list_datasets(root)


@st.cache_resource(show_spinner=False, max_entries=8)
def _folder_dataset(path: str) -> datasets.LabelledImages:
    return datasets.open_dataset(path, within=data_root())


def dataset(key: str) -> datasets.LabelledImages:
    """A chosen dataset: "folder:<name>" under the data root, or "zip:<digest>" uploaded this session."""
    kind, _, name = key.partition(":")
    if kind == "folder":
        root = data_root()
        if root is None or name not in {d.name for d in data_folders(str(root))}:
            raise ValueError(f"no dataset {name!r} under the data root")
        return _folder_dataset(str(root / name))
    if kind == "zip" and name in state.own_datasets():
        return state.own_datasets()[name][1]
    raise ValueError(f"unknown dataset {key!r}")


def evaluation(model_name: str, n: int, source: str = BUILTIN):
    """((images, labels), target-image bank) of up to n evaluation images for a model: its domain's own,
    or a chosen dataset's (which is then its own bank: the images the model classifies correctly)."""
    if source == BUILTIN or domains.of(model(model_name)).custom:  # a user's model: its images, classes interleaved
        return evaluation_split(model(model_name), min(n, evaluation_capacity(model_name, source)))
    return _dataset_tensors(model_name, source, n)


def _dataset_tensors(model_name: str, source: str, n: int):
    # Per session, not shared: a session's own model may carry any name.
    key = ("dataset-tensors", model_name, source, n)
    found = state.analysis(key)
    if found is None:
        with st.spinner("Reading the dataset…"):
            (x, y), bank = datasets.evaluation_split(dataset(source), model(model_name), n)
        found = ((x.cpu(), y.cpu()), (bank[0].cpu(), bank[1].cpu()))  # like the built-in split: CPU, moved by callers
        state.store_analysis(key, found)
    return found


def evaluation_capacity(model_name: str, source: str = BUILTIN) -> int:
    record = domains.of(model(model_name))
    if source == BUILTIN or record.custom:
        return record.capacity()
    return len(dataset(source))
