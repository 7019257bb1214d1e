"""Typed session-state accessors: the keys of what they store (results, analyses, uploads) are named here only."""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

_RESULTS = "attack_results"  # run key -> AttackResult (this session's cache)
_LAST = "last_run_key"
_UPLOADS = "uploaded_images"  # image key -> bytes of every image this session uploaded (AA's bank)
_DATASETS = "own_datasets"  # digest -> (file name, LabelledImages) of the zips this session uploaded
_EVAL_SOURCE = "eval_source"  # which labelled images the multi-image analyses use (app.resources.dataset keys)
BUILTIN = "built-in"  # that source: the model's domain's own images


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


_ANALYSES = "analysis_results"  # (page, inputs...) -> result of an engine analysis (this session's cache)
_BYO = "own_models"  # name -> Classifier built from an uploaded state_dict (this session only)
_URL_DONE = "url_applied"


def analysis(key: tuple):
    return st.session_state.get(_ANALYSES, {}).get(key)


def store_analysis(key: tuple, value) -> None:
    store = st.session_state.setdefault(_ANALYSES, {})
    store[key] = value
    while len(store) > 24:
        store.pop(next(iter(store)))


def cached_analysis(key: tuple, compute):
    """The analysis stored under `key`; when there is none, `compute()` makes it and it is stored."""
    found = analysis(key)
    if found is None:
        found = compute()
        store_analysis(key, found)
    return found


def forget_analysis(key: tuple) -> None:
    st.session_state.get(_ANALYSES, {}).pop(key, None)


def own_models() -> dict:
    return st.session_state.setdefault(_BYO, {})


def url_pending() -> bool:
    """True once per session: the first run reads the URL, later runs write it."""
    if st.session_state.get(_URL_DONE):
        return False
    st.session_state[_URL_DONE] = True
    return True


def forget_result(spec: RunSpec) -> None:
    results().pop(spec, None)


def own_datasets() -> dict:
    return st.session_state.setdefault(_DATASETS, {})


def evaluation_source() -> str:
    return st.session_state.get(_EVAL_SOURCE, BUILTIN)


def set_evaluation_source(source: str) -> None:
    st.session_state[_EVAL_SOURCE] = source


_QUIZ = "quiz_session"
_QUIZ_SERIAL = "quiz_serial"  # quizzes started in this session: each one's widgets get fresh keys


@dataclass
class QuizSession:
    """This session's quiz: the questions with their pictures, the answers so far (in question order, skipped
    ones with no choice), when the current question was first shown, and the machine takers' answers once asked."""

    quiz: object  # engine.analysis.quiz.Quiz
    serial: int
    answers: list = field(default_factory=list)
    shown: tuple[int, float] | None = None  # (question index, time.monotonic() when first drawn)
    machine: dict = field(default_factory=dict)  # judge name -> its answers

    @property
    def current(self) -> int:
        return len(self.answers)

    @property
    def finished(self) -> bool:
        return self.current >= len(self.quiz.questions)


def quiz_session() -> QuizSession | None:
    return st.session_state.get(_QUIZ)


def start_quiz(quiz) -> None:
    st.session_state[_QUIZ_SERIAL] = st.session_state.get(_QUIZ_SERIAL, 0) + 1
    st.session_state[_QUIZ] = QuizSession(quiz, st.session_state[_QUIZ_SERIAL])


def end_quiz() -> None:
    st.session_state.pop(_QUIZ, None)
