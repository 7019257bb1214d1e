"""Typed session-state accessors: key names live here only (STYLE §2)."""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

_RESULTS = "attack_results"  # run key -> AttackResult (this session's cache)
_LAST = "last_run_key"
_UPLOADS = "uploaded_images"  # image key -> bytes of every image this session uploaded (AA's bank)


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose: model and image (gallery name or uploaded file)."""

    model: str
    image_key: str  # gallery name, or "upload:<sha>"
    image_label: str
    upload: bytes | None = field(default=None, repr=False)
    problem: str | None = None  # why an uploaded file was refused (the gallery photo is used instead)


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines an attack result; hashable, so it keys the cache."""

    model: str
    image_key: str
    attack: str
    params: tuple
    target: int | None
    seed: int


def results() -> dict:
    if _RESULTS not in st.session_state:
        st.session_state[_RESULTS] = {}
    return st.session_state[_RESULTS]


def remember(spec: RunSpec, result) -> None:
    store = results()
    store[spec] = result
    while len(store) > 16:  # bound memory: oldest first
        store.pop(next(iter(store)))
    st.session_state[_LAST] = spec


def last_spec() -> RunSpec | None:
    return st.session_state.get(_LAST)


def result_for(spec: RunSpec | None):
    return None if spec is None else results().get(spec)


def remember_upload(selection: Selection) -> None:
    if selection.upload is None:
        return
    uploads = st.session_state.setdefault(_UPLOADS, {})
    uploads[selection.image_key] = selection.upload
    while len(uploads) > 16:
        uploads.pop(next(iter(uploads)))


def uploads() -> dict[str, bytes]:
    return dict(st.session_state.get(_UPLOADS, {}))
