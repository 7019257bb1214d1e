"""The only place with Streamlit cache decorators (STYLE §2, "Streamlit").

Models are shared by every session (`cache_resource`); they are read-only at
inference, and anything that hooks them holds `model.lock`.
"""
from __future__ import annotations

import hashlib

import streamlit as st
import torch

from app import state
from engine import attacks, domains, images, models


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
    return attacks.available(domain)


def model(name: str):
    """A model by name: this session's uploaded models first, else the shared cached one."""
    own = state.own_models()
    return own[name] if name in own else load_model(name)


def image_tensor(model_name: str, source_key: str, data: bytes | None) -> torch.Tensor:
    """The chosen image fitted to the model (CPU; cached per input geometry and image, shared: read-only)."""
    m = model(model_name)
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
        return owner.numbered()[0][index:index + 1]
    source = data if data is not None else images.gallery()[source_key]
    return images.to_tensor(images.fit(images.decode(source), c, size, resize))


@st.cache_data(show_spinner=False)
def class_members(domain: str) -> dict[int, list[int]]:
    """An indexed domain's image numbers per class."""
    y = domains.get(domain).numbered()[1]
    return {c: (y == c).nonzero().squeeze(1).tolist() for c in sorted(set(y.tolist()))}


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
