"""What the quiz page and the CLI say about a quiz: the score in sentences and rows, the settings, the revealed
answers, which held-out model takes the quiz as a machine, and the page's fixed texts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from engine import domains
from engine.analysis.quiz import Answer, Quiz, Settings


def score_sentence(s: dict) -> str | None:
    """What a score means, in one sentence: the taker against guessing (its interval above chance or not)."""
    if s["accuracy"] is None:
        return None
    above = s["ci low"] is not None and s["ci low"] > s["chance"]
    return f"{s['correct']} of {s['answered']} right ({s['accuracy']:.0%}) where guessing gets {s['chance']:.0%}: " + (
        "even with the image hidden, the perturbation alone carries enough of its class to name it."
        if above
        else "not clearly above guessing on these few questions (the 95 % interval reaches down to "
        f"{s['ci low']:.0%}); more questions tell a real signal from luck."
    )


# ---- the quiz page's tables and words ------------------------------------------------------------


def _percent(v) -> str:
    return "—" if v is None else f"{v:.1%}"


def score_rows(s: dict) -> list[dict]:
    """A `score` as table rows: every question, each kind, and the thesis' human evaluation for comparison."""
    parts = [("all questions", s), *s["by kind"].items()]
    rows = [
        {
            "questions": name,
            "answered": str(p["answered"]),
            "correct": str(p["correct"]),
            "accuracy": _percent(p["accuracy"]),
            "95 % interval": "—" if p["ci low"] is None else f"{p['ci low']:.0%}–{p['ci high']:.0%}",
            "unanswered": str(p["unanswered"]),
            "chance": _percent(p["chance"]),
        }
        for name, p in parts
    ]
    t = s["thesis"]
    rows.append(
        {
            "questions": f"thesis: {t['what']}",
            "answered": f"{t['questions']} ({t['takers']} people)",
            "correct": "",
            "accuracy": _percent(t["accuracy"]),
            "95 % interval": "",
            "unanswered": "",
            "chance": _percent(t["chance"]),
        }
    )
    return rows


def settings_sentence(names: Sequence[str], settings: Settings, indexed: bool) -> str:
    """How the quiz's perturbations are made and where the wrong choices come from, in words."""
    pool = "the other test images' classes" if indexed else "the classes of the other gallery photos"
    return (
        f"Single-model perturbations: {names[0]}. Noisy multi-model: {', '.join(names)} with {settings.copies} "
        f"noisy copies each (σ {settings.sigma:g}). Attack: {settings.attack} {settings.params}. "
        f"Wrong choices are drawn from {pool}."
    )


def revealed(quiz: Quiz, answers: Sequence[Answer]) -> list[tuple[np.ndarray, str]]:
    """(picture, caption) per question once the quiz is over: its true class, kind and the taker's answer."""
    chosen = {a.question: a.choice for a in answers}
    out = []
    for q in quiz.questions:
        mine = chosen.get(q.number)
        verdict = "skipped" if mine is None else ("right" if mine == q.true_class else f"you: {quiz.class_names[mine]}")
        out.append((q.picture, f"{q.number}. {quiz.class_names[q.true_class]} · {q.kind} · {verdict}"))
    return out


def machine_judge(quiz: Quiz, preferred: Sequence[str], usable: Mapping[str, str]) -> str | None:
    """The held-out model that takes the quiz as a reference: the first of `preferred` (the chosen black-box
    models, then the domain's judges) of the quiz's domain that made none of its perturbations."""
    return next((n for n in dict.fromkeys(preferred) if usable.get(n) == quiz.domain and n not in quiz.sources), None)


def machine_sentence(name: str, s: dict) -> str:
    """A machine taker's `score` in words, overall and per kind."""
    kinds = ", ".join(f"{k} {_percent(p['accuracy'])}" for k, p in s["by kind"].items())
    return f"Machine taker {name} (held out, same pictures and choices): {_percent(s['accuracy'])} ({kinds})."


INTRO = (
    "Each question shows a **perturbation alone** — what an attack added to a test image, display-"
    "normalised (sign flipped, matched to the dataset's brightness and contrast) — never the image "
    "itself. Name the class of the image it was made from. Some perturbations come from one model, "
    "some from the average over several models and noisy copies of the image; which is which is "
    "revealed at the end."
)
PICTURE_NOTE = (
    "**What it shows:** what an attack added to a test image, with the image itself removed: "
    "naming its class from this alone means the perturbation carries the look of the object."
)


def nothing_to_ask(model_name: str) -> str:
    """Why a model that gets none of its labelled images right has no quiz."""
    return (
        f"{model_name} classifies none of its labelled images correctly, and an attack leaves an image its "
        "model already gets wrong untouched: there is no perturbation to ask about. Use a model that gets "
        "some of them right."
    )


def score_metric(s: dict) -> tuple[str, str, str]:
    """An answered `score` as a metric: (label, value, help with its interval and chance)."""
    return (
        "Correct among the answered questions",
        f"{s['correct']} of {s['answered']} ({s['accuracy']:.0%})",
        f"95 % binomial interval {s['ci low']:.0%}–{s['ci high']:.0%}; guessing gets {s['chance']:.0%}",
    )


def unanswered_sentence(s: dict) -> str | None:
    """Which questions a `score` left unanswered, in words (None when every one was answered)."""
    if not s["unanswered"]:
        return None
    skipped = s["unanswered questions"]
    return (
        f"Unanswered (not counted as wrong): question{'s' if len(skipped) > 1 else ''} {', '.join(map(str, skipped))}."
    )


def csv_name(quiz: Quiz) -> str:
    """The file name of a quiz's answers CSV."""
    return f"quiz-{quiz.domain}-seed{quiz.seed}.csv"


def reference_judge(quiz: Quiz, blacks: Sequence[str], usable: Mapping[str, str]) -> str | None:
    """`machine_judge` preferring the chosen black-box models `blacks`, then the quiz domain's judges."""
    return machine_judge(quiz, [*blacks, *domains.get(quiz.domain).judges], usable)
