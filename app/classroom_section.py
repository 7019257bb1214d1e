"""The quiz page's classroom, the teacher's side: open a room, show its code and QR code on the projector, pace the
class (Reveal, Next) with a live count of who has answered, then the class's results. The room lives in the
classroom database (engine.classroom): the teacher's link carries the room's host key, so a reload or a server
restart comes back to the same room."""

from __future__ import annotations

import os

import numpy as np
import streamlit as st

from app import figures, resources, widgets
from app.jobs import Progress
from engine import classroom, cost, images
from engine.analysis import quiz, quiz_views

HOST = "host"  # the query parameter of the teacher's link
POLL_S = 1.0  # how often the teacher's count looks for new answers
KINDS = {"both": quiz.KINDS, "single-model only": quiz.KINDS[:1], "noisy multi-model only": quiz.KINDS[1:]}
# The join code, large enough to read from the back of the room.
CSS = """<style>
.st-key-room-code p {font-size: 2.6rem; font-weight: 700; letter-spacing: 0.3rem; margin: 0;}
</style>"""


def hosting() -> bool:
    return HOST in st.query_params


def picture(png: bytes, side: int) -> np.ndarray:
    """A stored question picture, enlarged with square pixels (the browser would blur a 28-px picture)."""
    return images.enlarged(np.asarray(images.decode(png).convert("RGB")), side)


def offer(model, names: list[str], settings: quiz.Settings, askable: int) -> None:
    """The form that opens a room for a class on the sidebar's model, and the quiz it makes."""
    with st.expander("Open a classroom: the whole class answers the same questions from their own phones"):
        with st.form("classroom-form"):
            c = st.columns(4)
            count = c[0].number_input("Questions for the class", 1, min(50, askable), min(5, askable), key="cr.n")
            choices = c[1].number_input(
                "Choices for the class", 2, len(model.class_names), min(4, len(model.class_names)), key="cr.choices"
            )
            kinds = c[2].selectbox("Perturbations", list(KINDS), key="cr.kinds")
            hours = c[3].number_input("Open for (hours)", 0.25, 24.0, classroom.DEFAULT_HOURS, 0.25, key="cr.hours")
            go_ = st.form_submit_button("Open the room", type="primary")
    sizes = {"questions": int(count), "choices": int(choices), "seed": 0}
    key = ("classroom", tuple(names), kinds, *sizes.values())
    if not (go_ or widgets.pending("classroom") == key):
        return
    sources = [resources.model(n) for n in names]
    seconds = quiz.seconds(sources, quiz.plan_for(model, **sizes, kinds=KINDS[kinds]), settings)
    if not widgets.heavy_gate("classroom", key, seconds, go_, cost.stops_early(settings.attack)):
        return
    progress = Progress("Making the class's perturbations", "classroom")
    made = quiz.make(sources, **sizes, kinds=KINDS[kinds], settings=settings, callback=progress)
    opened = []
    progress.finish(
        lambda: opened.append(resources.classroom().open_room(made, float(hours))) if made.complete else None
    )
    if not opened:
        st.warning("Cancelled before every picture was made: open the room again.")
        return
    st.query_params[HOST] = opened[0].host
    st.rerun()


def _link(code: str) -> str:
    """The students' link: the operator's address for the class (PE_CLASSROOM_URL) or the one this page has."""
    base = os.environ.get("PE_CLASSROOM_URL", "").rstrip("/")
    here = base + "/quiz" if base else st.context.url.split("?")[0].rstrip("/")
    return f"{here}?room={code}"


def teach() -> None:
    """The teacher's room: what the projector shows."""
    store = resources.classroom()
    host = st.query_params[HOST]
    try:
        room = store.room(host)
    except classroom.RoomError as err:
        st.error(str(err))
        _leave("Back to the quiz")
        return
    st.html(CSS)
    if room.phase == "finished":
        _results(store, host, room)
        return
    q = store.question(host)
    join, middle, right = st.columns([1, 1.25, 1.45])
    with join:
        st.caption("Join on your phone")
        st.container(key="room-code").markdown(room.code)
        link = _link(room.code)
        st.image(classroom.qr_png(link), width=190)
        st.caption(link)
    with middle:
        st.markdown(f"**Question {room.current + 1} of {room.total}**: which class was attacked?")
        st.image(picture(q.picture, 300), width=300)
    with right:
        if room.phase == "question":
            st.markdown("**Choices:** " + " · ".join(room.class_names[c] for c in q.choices))
            _count(host)
            if st.button("Reveal the answer", type="primary", key="cr.reveal"):
                store.reveal(host)
                st.rerun()
        else:
            t = store.tally(host)
            figure = figures.class_answers(
                [room.class_names[c] for c in t["counts"]],
                list(t["counts"].values()),
                q.choices.index(q.true_class),
                f"The class's answers (right: {room.class_names[q.true_class]})",
            )
            st.plotly_chart(figure, key="cr.bars", width="stretch")
            last = room.current + 1 == room.total
            if st.button("See the results" if last else "Next question", type="primary", key="cr.next"):
                store.next(host)
                st.rerun()


@st.fragment(run_every=POLL_S)
def _count(host: str) -> None:
    """Who has answered the question on screen: polls the database, so answers show without a click."""
    try:
        t = resources.classroom().tally(host)
    except classroom.RoomError:
        return
    done, waiting = t["answered"], t["waiting"]
    st.container(key="cr-count").markdown(f"### {len(done)} of {len(done) + len(waiting)} answered")
    if waiting:
        st.caption("Still thinking: " + ", ".join(classroom.shown_name(n) for n in waiting[:40]))


def _results(store: classroom.Store, host: str, room: classroom.Room) -> None:
    out = store.results(host)
    s = out["score"]
    st.subheader(f"Room {room.code}: the class's results")
    if s["accuracy"] is None:
        st.info("Nobody answered, so there is no score.")
    else:
        label, value, why = quiz_views.score_metric(s)
        st.metric(f"{label} (every answer of the class)", value, help=why)
        widgets.what_it_shows(quiz_views.score_sentence(s))
    st.table(quiz_views.score_rows(s), hide_index=True)
    st.caption("Each answer counts once: the interval pools the class's answers as if each were a separate taker.")
    st.markdown("**Each question's difficulty**")
    rows = [
        {**d, "share right": "—" if d["share right"] is None else f"{d['share right']:.0%}"} for d in out["difficulty"]
    ]
    st.dataframe(rows, hide_index=True)
    st.download_button(
        "Download every answer (CSV)",
        out["csv"],
        f"classroom-{room.code}.csv",
        "text/csv",
        key="cr.csv",
        type="primary",
    )
    _leave("Close the room", store, host)


def _leave(label: str, store: classroom.Store | None = None, host: str | None = None) -> None:
    if st.button(label, key="cr.leave"):
        if store is not None:
            store.close(host)
        del st.query_params[HOST]
        st.rerun()
