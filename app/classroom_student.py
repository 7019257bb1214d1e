"""The classroom quiz on a student's phone: join with a name, then only the question on the teacher's screen, its
choices as big buttons, and the student's own answers. The student's token is kept in the link (`me`), so a
reload keeps their place; the page follows the teacher by polling the room's pacing."""

from __future__ import annotations

import streamlit as st

from app import resources
from app.classroom_section import picture
from engine import classroom

ROOM, ME = "room", "me"  # the query parameters of a student's link
POLL_S = 2.0  # how often a student's page looks whether the teacher moved on
# Phones: the picture fills the width (a column is the whole screen there) and each choice is a thumb-sized button.
CSS = """<style>
.st-key-choices button {min-height: 3.4rem;}
.st-key-choices button p {font-size: 1.25rem;}
</style>"""


def page(text: str) -> None:
    st.html(CSS)
    store = resources.classroom()
    try:
        code = store.check(text)
    except classroom.RoomError as err:
        st.title("Perturbation quiz")
        st.error(str(err))
        _other_code()
        return
    token = st.query_params.get(ME)
    try:
        view = store.student(code, token)
    except classroom.RoomError as err:
        _join(store, code, None if token is None else str(err))
        return
    st.markdown(f"**Room {code}** · {classroom.shown_name(view.name)}")
    _live(code, token)


# The whole view is the fragment that polls: it draws the teacher's current question itself. A poll that asked
# for a full-app rerun instead left, in two of four test runs, one page that never updated again (the rerun and
# the poll's timer seem to race in Streamlit's frontend), and that student missed the rest of the quiz.
@st.fragment(run_every=POLL_S)
def _live(code: str, token: str) -> None:
    store = resources.classroom()
    try:
        view = store.student(code, token)
    except classroom.RoomError as err:
        st.info(str(err))
        return
    if view.phase == "finished":
        _finished(view)
    else:
        _question(store, code, token, view)


def _other_code() -> None:
    typed = st.text_input("Room code", max_chars=12, key="cr.code", placeholder="e.g. K7PX3M")
    if st.button("Go to the room", key="cr.go") and typed:
        st.query_params.from_dict({ROOM: typed[:12]})
        st.rerun()


def _join(store: classroom.Store, code: str, problem: str | None) -> None:
    st.title(f"Join room {code}")
    if problem:
        st.info(problem)
    with st.form("cr.join"):
        name = st.text_input(
            "Your name (the teacher sees it)", max_chars=classroom.NAME_MAX + 20, key="cr.name", autocomplete="off"
        )
        asked = st.form_submit_button("Join", type="primary", width="stretch")
    if asked:
        try:
            token = store.join(code, name)
        except classroom.RoomError as err:
            st.error(str(err))
            return
        st.query_params.from_dict({ROOM: code, ME: token})
        st.rerun()


def _question(store: classroom.Store, code: str, token: str, view: classroom.StudentView) -> None:
    q = view.question
    names = view.class_names
    st.progress(view.current / view.total, text=f"Question {view.current + 1} of {view.total}")
    left, right = st.columns([1, 1])
    left.image(picture(q.picture, 390), width="stretch", caption="the perturbation alone: which class was attacked?")
    mine = view.mine.get(q.number)
    with right.container(key="choices"):
        for c in q.choices:
            chosen = c == mine
            if st.button(
                ("✓ " if chosen else "") + names[c],
                key=f"cr.c.{q.number}.{c}",
                type="primary" if chosen else "secondary",
                width="stretch",
                disabled=mine is not None or view.phase != "question",
            ):
                try:
                    store.answer(code, token, q.number, c)
                except classroom.RoomError as err:
                    st.warning(str(err))
                st.rerun(scope="fragment")
    truth = view.truth.get(q.number)
    if truth is not None:
        verdict = "no answer from you" if mine is None else "you were right" if mine == truth else "not this time"
        right.success(f"The answer: **{names[truth]}** ({verdict}).")
    elif mine is not None:
        right.info(f"Your answer: **{names[mine]}**. Waiting for the teacher to reveal it.")


def _finished(view: classroom.StudentView) -> None:
    names = view.class_names
    right = sum(view.mine.get(n) == t for n, t in view.truth.items())
    st.header("The quiz is over")
    st.metric("Your score", f"{right} of {len(view.truth)}")
    rows = [
        {
            "question": n,
            "your answer": names[view.mine[n]] if n in view.mine else "—",
            "the answer": names[t],
            "right": "✓" if view.mine.get(n) == t else "",
        }
        for n, t in sorted(view.truth.items())
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
