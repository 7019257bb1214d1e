"""Perturbation quiz: the thesis' human evaluation, one perturbation at a time, scored at the end."""

from __future__ import annotations

import time

import streamlit as st

from app import classroom_section, resources, state, widgets
from app.jobs import Progress
from engine import cost, domains, images
from engine.analysis import quiz, quiz_views


def page() -> None:
    if classroom_section.hosting():  # a teacher's room: its pictures and answers come from the classroom database
        classroom_section.teach()
        return
    started = widgets.page_start("Perturbation quiz", "quiz")
    if started is None:
        return
    _, model, blacks = started
    session = state.quiz_session()
    if session is None:
        _start(model)
    elif not session.finished:
        _question(session)
    else:
        _results(session, blacks)


def _start(model) -> None:
    if not widgets.has_images(model, "The quiz"):
        return
    domain = domains.of(model)
    try:
        keys = widgets.cached(("quiz-askable", model.name, domain.count()), lambda: quiz.askable(model)[1])
    except ValueError as err:
        st.error(str(err))
        return
    if not keys:
        st.info(quiz_views.nothing_to_ask(model.name))
        return
    d = domain.defaults["quiz"]
    classes = len(model.class_names)
    st.markdown(quiz_views.INTRO)
    with st.form("quiz-form"):
        c = st.columns(3)
        most = min(200, len(keys))
        count = c[0].number_input("Questions", 1, most, min(d["questions"], most), key="quiz.questions")
        choices = c[1].number_input(
            "Choices per question", 2, classes, quiz.default_choices(domain, classes), key="quiz.choices"
        )
        seed = c[2].number_input("Seed (same seed, same quiz)", 0, 2**31 - 1, 0, key="quiz.seed")
        go = st.form_submit_button("Start", type="primary")
    usable = widgets.usable_models()
    names = quiz.source_names(model.name, [n for n in domain.sources if n in usable])
    settings = quiz.Settings.for_domain(domain)
    st.caption(quiz_views.settings_sentence(names, settings, domain.indexed))
    classroom_section.offer(model, names, settings, len(keys))
    sizes = {"questions": int(count), "choices": int(choices), "seed": int(seed)}
    key = ("quiz", tuple(names), *sizes.values())
    if not (go or widgets.pending("quiz") == key):
        return
    sources = [resources.model(n) for n in names]
    seconds = quiz.seconds(sources, quiz.plan_for(model, **sizes), settings)
    if not widgets.heavy_gate("quiz", key, seconds, go, cost.stops_early(settings.attack)):
        return
    progress = Progress("Making the perturbations", "quiz")
    made = quiz.make(sources, **sizes, settings=settings, callback=progress)
    progress.finish(lambda: state.start_quiz(made) if made.complete else None)
    if not made.complete:
        st.warning("Cancelled before every picture was made: press Start again.")
        return
    st.rerun()


def _question(session: state.QuizSession) -> None:
    made = session.quiz
    k = session.current
    q = made.questions[k]
    if session.shown is None or session.shown[0] != k:
        session.shown = (k, time.monotonic())
    total = len(made.questions)
    st.progress(k / total, text=f"Question {k + 1} of {total}")
    left, right = st.columns([1, 1])
    left.image(images.enlarged(q.picture, 320), caption="the perturbation alone", width=320)
    left.markdown(quiz_views.PICTURE_NOTE)
    with right.form(f"quiz-q-{session.serial}-{k}"):
        pick = st.radio(
            "Which class was the attacked image?",
            list(q.choices),
            index=None,
            format_func=lambda c: made.class_names[c],
            key=f"quiz.pick.{session.serial}.{k}",
        )
        a, b = st.columns(2)
        answered = a.form_submit_button("Next", type="primary")
        skipped = b.form_submit_button("Skip")
    if answered and pick is None:
        right.warning("Choose a class first, or skip the question.")
    elif answered or skipped:
        session.answers.append(quiz.Answer(q.number, pick if answered else None, time.monotonic() - session.shown[1]))
        st.rerun()
    if st.button("Restart", key="quiz.restart"):
        state.end_quiz()
        st.rerun()


def _results(session: state.QuizSession, blacks) -> None:
    made = session.quiz
    s = quiz.score(made.questions, session.answers)
    st.header("Your score")
    if s["accuracy"] is None:
        st.info("No question was answered, so there is no score.")
    else:
        label, value, why = quiz_views.score_metric(s)
        st.metric(label, value, help=why)
    widgets.what_it_shows(quiz_views.score_sentence(s))
    unanswered = quiz_views.unanswered_sentence(s)
    if unanswered:
        st.caption(unanswered)
    # A table wraps its cells: a grid cuts the last column at 1280 px.
    st.table(quiz_views.score_rows(s), hide_index=True)
    _machine(session, blacks)
    answers = quiz.answers_csv(made, session.answers)
    st.download_button(
        "Download answers (CSV)", answers, quiz_views.csv_name(made), "text/csv", key="quiz.csv", type="primary"
    )
    if st.button("Restart", key="quiz.again"):
        state.end_quiz()
        st.rerun()
    st.subheader("The questions, revealed")
    widgets.image_grid(quiz_views.revealed(made, session.answers), 5, 160)


def _machine(session: state.QuizSession, blacks) -> None:
    """A held-out model's score on the same pictures and choices: a reference, not a person."""
    made = session.quiz
    # The sidebar's black-box model if it fits the quiz (the model may have changed since), else a domain judge.
    name = quiz_views.reference_judge(made, [b.name for b in blacks], widgets.usable_models())
    if name is not None:
        if name not in session.machine:
            session.machine[name] = quiz.machine_answers(made, resources.model(name))
        st.caption(quiz_views.machine_sentence(name, quiz.score(made.questions, session.machine[name])))


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
