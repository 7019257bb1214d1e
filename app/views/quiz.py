"""Perturbation quiz: the thesis' human evaluation, one perturbation at a time, scored at the end."""

from __future__ import annotations

import time

import streamlit as st

from app import resources, state, widgets
from app.jobs import Progress
from engine import cost, domains, images
from engine.analysis import quiz


def page() -> None:
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
        st.info(
            f"{model.name} classifies none of its labelled images correctly, and an attack leaves an image its "
            "model already gets wrong untouched: there is no perturbation to ask about. Use a model that gets "
            "some of them right."
        )
        return
    d = domain.defaults["quiz"]
    classes = len(model.class_names)
    st.markdown(
        "Each question shows a **perturbation alone** — what an attack added to a test image, display-"
        "normalised (sign flipped, matched to the dataset's brightness and contrast) — never the image "
        "itself. Name the class of the image it was made from. Some perturbations come from one model, "
        "some from the average over several models and noisy copies of the image; which is which is "
        "revealed at the end."
    )
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
    st.caption(quiz.settings_sentence(names, settings, domain.indexed))
    key = ("quiz", tuple(names), int(count), int(choices), int(seed))
    if not (go or widgets.pending("quiz") == key):
        return
    sources = [resources.model(n) for n in names]
    planned = quiz.plan_for(model, questions=int(count), choices=int(choices), seed=int(seed))
    if not widgets.heavy_gate(
        "quiz", key, quiz.seconds(sources, planned, settings), go, cost.stops_early(settings.attack)
    ):
        return
    progress = Progress("Making the perturbations", "quiz")
    made = quiz.make(
        sources, questions=int(count), choices=int(choices), seed=int(seed), settings=settings, callback=progress
    )
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
    left.markdown(
        "**What it shows:** what an attack added to a test image, with the image itself removed: "
        "naming its class from this alone means the perturbation carries the look of the object."
    )
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
        st.metric(
            "Correct among the answered questions",
            f"{s['correct']} of {s['answered']} ({s['accuracy']:.0%})",
            help=f"95 % binomial interval {s['ci low']:.0%}–{s['ci high']:.0%}; guessing gets {s['chance']:.0%}",
        )
    said = quiz.score_sentence(s)
    if said:
        st.markdown(f"**What it shows:** {said}")
    if s["unanswered"]:
        skipped = s["unanswered questions"]
        st.caption(
            f"Unanswered (not counted as wrong): question{'s' if len(skipped) > 1 else ''} "
            f"{', '.join(map(str, skipped))}."
        )
    st.table(quiz.score_rows(s), hide_index=True)  # a table wraps its cells: a grid cuts the last column at 1280 px
    _machine(session, blacks)
    st.download_button(
        "Download answers (CSV)",
        quiz.answers_csv(made, session.answers),
        type="primary",
        file_name=f"quiz-{made.domain}-seed{made.seed}.csv",
        mime="text/csv",
        key="quiz.csv",
    )
    if st.button("Restart", key="quiz.again"):
        state.end_quiz()
        st.rerun()
    st.subheader("The questions, revealed")
    cols = st.columns(5)
    for i, (picture, caption) in enumerate(quiz.revealed(made, session.answers)):
        cols[i % 5].image(images.enlarged(picture, 160), width=160, caption=caption)


def _machine(session: state.QuizSession, blacks) -> None:
    """A held-out model's score on the same pictures and choices: a reference, not a person."""
    made = session.quiz
    # The sidebar's black-box model if it fits the quiz (the model may have changed since), else a domain judge.
    name = quiz.machine_judge(
        made, [b.name for b in blacks] + list(domains.get(made.domain).judges), widgets.usable_models()
    )
    if name is not None:
        if name not in session.machine:
            session.machine[name] = quiz.machine_answers(made, resources.model(name))
        st.caption(quiz.machine_sentence(name, quiz.score(made.questions, session.machine[name])))


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
