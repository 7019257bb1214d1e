"""The thesis' human evaluation as a quiz (Menn 2023, §4.8.2.2).

The thesis showed people 200 display-normalised perturbations, each alone and with
20 classes to choose from, and they named the class of the attacked image 80.7 % of
the time (chance: 5 %). Here a quiz is made in two steps:

- `plan`: which image each question attacks, its kind (single-model or noisy
  multi-model perturbation), its true class and its shuffled choices. It depends
  only on the seed and the labels, so a filled answer sheet is scored without
  computing any perturbation;
- `render`: the perturbations themselves (`recognisable.perturbations`), display-
  normalised into the 8-bit pictures the taker sees.

`score` counts only the answers given: a skipped question is reported as
unanswered, never silently as wrong. `machine_answers` lets a held-out judge
model take the same quiz from the same pictures, choosing among the same choices
(as the thesis' machine evaluation read only the 20 classes' outputs).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from engine import cost, domains, images, progress
from engine.analysis import recognisable
from engine.metrics import predict_labels

KINDS = ("single-model", "noisy multi-model")
# Menn 2023, §4.8.2.2: 4 groups × 12 people × 50 perturbations (200 in all), ImageNet, noisy multi-model BIM,
# 20 choices (the classes of the experiment's images); mean accuracy after dropping each group's best and worst.
THESIS = {
    "accuracy": 0.807,
    "choices": 20,
    "chance": 0.05,
    "questions": 200,
    "takers": 48,
    "what": "people, ImageNet, noisy multi-model BIM, 20 choices",
}
CSV_COLUMNS = ("question", "kind", "true class", "choices", "answer", "correct", "seconds")
CHOICE_SEPARATOR = " | "
CONFIDENCE = 0.95


@dataclass(frozen=True, eq=False)
class Question:
    number: int  # 1-based, in the order shown
    kind: str  # which averaging made the perturbation: hidden from the taker until the end
    image: str  # the attacked image's key ("fmnist:17", "chelsea"): hidden too, it names the class
    true_class: int
    choices: tuple[int, ...]  # class indices in the order shown; the true class exactly once
    picture: np.ndarray | None = field(default=None, repr=False)  # H×W×3 uint8 display-normalised δ; None: not rendered


@dataclass(frozen=True)
class Answer:
    question: int  # the question's number
    choice: int | None  # the class index chosen; None: skipped
    seconds: float | None = None  # time from showing the question to answering it


@dataclass(frozen=True)
class Settings:
    """How the perturbations are made: one attack, its parameters, and the noisy copies per source model."""

    attack: str
    params: dict
    copies: int
    sigma: float

    @classmethod
    def for_domain(
        cls,
        domain: domains.Domain,
        attack: str | None = None,
        params: dict | None = None,
        copies: int | None = None,
        sigma: float | None = None,
    ) -> Settings:
        """The domain's quiz defaults, each overridable; another attack than the default starts from its own."""
        d = domain.defaults.get("quiz")
        if d is None:
            raise ValueError(f"{domain.title} has no quiz settings of its own (no built-in labelled images)")
        own = attack is None or attack == d["attack"]
        return cls(
            d["attack"] if attack is None else attack,
            {**(d["params"] if own else {}), **(params or {})},
            d["copies"] if copies is None else copies,
            d["sigma"] if sigma is None else sigma,
        )


@dataclass
class Quiz:
    domain: str
    class_names: list[str]
    questions: list[Question]
    seed: int
    settings: Settings
    sources: list[str]  # every source model; the first alone makes the single-model perturbations
    seconds: float = 0.0
    stopped_early: bool = False

    @property
    def complete(self) -> bool:
        return all(q.picture is not None for q in self.questions)

    def sheet(self, key: bool = False) -> list[dict]:
        """One row per question: its choices by name; with `key`, also its kind, image and true class."""
        rows = []
        for q in self.questions:
            row = {"question": q.number, "choices": [self.class_names[c] for c in q.choices]}
            if key:
                row.update(kind=q.kind, image=q.image, **{"true class": self.class_names[q.true_class]})
            rows.append(row)
        return rows


def source_names(first: str | None, names: Sequence[str]) -> list[str]:
    """A quiz's sources: `names` with `first` (if given) moved to the front, since the first source alone makes
    the single-model perturbations."""
    return list(names) if first is None else [first] + [n for n in names if n != first]


def default_choices(domain: domains.Domain, num_classes: int) -> int:
    return min(domain.defaults["quiz"]["choices"], num_classes)


def plan(
    labels: Sequence[int],
    keys: Sequence[str],
    num_classes: int,
    *,
    questions: int,
    choices: int,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    pool: Sequence[int] | None = None,
) -> list[Question]:
    """The questions of a quiz, without pictures, from a bank of labelled images (`keys[i]` has class `labels[i]`).

    Images: a seeded draw spread evenly over the bank's classes, one image per question, in a seeded order.
    Kinds: as even a split as `questions` allows, in a seeded order. Choices: the true class and `choices` − 1
    distractors drawn (seeded) first from `pool` (default: the bank's own classes, as the thesis offered the
    classes of its experiment's images), then, where the pool is too small, from the other classes.
    """
    labels = [int(v) for v in labels]
    if len(labels) != len(keys) or not labels:
        raise ValueError("the quiz needs a bank of images with one label each")
    _whole("questions", questions, 1, len(labels))
    _whole("choices", choices, 2, num_classes)
    if not kinds or any(k not in recognisable.SETTINGS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be distinct settings among {', '.join(recognisable.SETTINGS)}, got {list(kinds)}")
    if any(not 0 <= v < num_classes for v in labels):
        raise ValueError(f"every label must be a class index in [0, {num_classes})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i in rng.permutation(len(labels)).tolist():
        by_class.setdefault(labels[i], []).append(i)
    picked: list[int] = []
    while len(picked) < questions:  # round-robin over the classes (in their seeded order) until enough
        for members in by_class.values():
            if members and len(picked) < questions:
                picked.append(members.pop())
    # Shuffled again: in round-robin order the first questions would never repeat a class, a hint to the taker.
    picked = [picked[i] for i in rng.permutation(questions).tolist()]
    kind_of = [kinds[i % len(kinds)] for i in range(questions)]
    kind_of = [kind_of[i] for i in rng.permutation(questions).tolist()]
    pool = sorted(set(labels) if pool is None else {int(c) for c in pool})
    out = []
    for n, (i, kind) in enumerate(zip(picked, kind_of)):
        truth = labels[i]
        near = [c for c in pool if c != truth]
        far = [c for c in range(num_classes) if c != truth and c not in set(pool)]
        drawn = rng.choice(near, min(choices - 1, len(near)), replace=False).tolist() if near else []
        if len(drawn) < choices - 1:
            drawn += rng.choice(far, choices - 1 - len(drawn), replace=False).tolist()
        options = [truth, *drawn]
        options = tuple(int(options[j]) for j in rng.permutation(choices).tolist())
        out.append(Question(n + 1, kind, str(keys[i]), truth, options))
    return out


def _whole(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number in [{low}, {high}], got {value!r}")


def bank(model) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The labelled images a quiz on `model`'s domain draws from: its built-in evaluation images and their keys."""
    domain = domains.of(model)
    if domain.split is None or "quiz" not in domain.defaults:
        raise domains.NeedsImages(
            f"{model.name} ({domain.title}) has no labelled images of its "
            f"{len(model.class_names)} classes to make a quiz from"
        )
    keys = domain.image_keys()
    (x, y), _ = domain.evaluation_split(model, len(keys))
    return x, y, keys


def askable(model) -> tuple[torch.Tensor, list[str]]:
    """(labels, keys) of the bank's images that `model` classifies correctly: the ones a quiz asks about. An
    attack leaves an image its model already gets wrong untouched: its single-model picture would be blank, a
    question nobody can answer."""
    x, y, keys = bank(model)
    right = (predict_labels(model, x.to(model.device)).cpu() == y.cpu()).nonzero().squeeze(1).tolist()
    return y[right], [keys[i] for i in right]


def plan_for(
    model, *, questions: int, choices: int | None = None, seed: int = 0, kinds: Sequence[str] = KINDS
) -> list[Question]:
    """`plan` over the model's domain's built-in images that `model` classifies correctly (`askable`; the default
    choices: the domain's, at most its classes)."""
    y, keys = askable(model)
    if not keys:
        raise ValueError(f"{model.name} classifies none of its labelled images correctly: no question to ask")
    num_classes = len(model.class_names)
    choices = default_choices(domains.of(model), num_classes) if choices is None else choices
    return plan(y.tolist(), keys, num_classes, questions=questions, choices=choices, seed=seed, kinds=kinds)


def seconds(sources: Sequence, questions: Sequence[Question], settings: Settings) -> float:
    """The expected time to render `questions` here (engine.cost): each kind's attack on its own images."""
    rows = {
        "single-model": (list(sources[:1]), 1),
        "multi-model": (list(sources), 1),
        "noisy multi-model": (list(sources), settings.copies),
    }
    total = 0.0
    for kind in {q.kind for q in questions}:
        models, copies = rows[kind]
        count = sum(q.kind == kind for q in questions)
        total += cost.averaged_seconds(settings.attack, models, count, copies, settings.params)
    return total


def render(
    questions: Sequence[Question],
    sources: Sequence,
    x: torch.Tensor,
    settings: Settings,
    *,
    seed: int = 0,
    callback: progress.Callback | None = None,
) -> tuple[list[Question], bool]:
    """The questions with their pictures: `x[i]` is question i's image. Each kind is one batched averaging
    (`sources[0]` alone for single-model). Returns (questions, stopped early); a cancelled kind's
    questions keep no picture (a part-finished average is not the perturbation the question promises)."""
    if x.shape[0] != len(questions):
        raise ValueError(f"{len(questions)} questions but {x.shape[0]} images")
    sources = list(sources)
    domain = sources[0].domain
    y = torch.tensor([q.true_class for q in questions], device=x.device)
    pictures: dict[int, np.ndarray] = {}
    kinds = [k for k in recognisable.SETTINGS if any(q.kind == k for q in questions)]
    stopped = False
    for i, kind in enumerate(kinds):
        rows = [j for j, q in enumerate(questions) if q.kind == kind]
        inner = progress.part(callback, i, len(kinds), kind=kind)

        def relay(step, total, state, inner=inner):
            nonlocal stopped
            go = inner(step, total, state)
            stopped = stopped or go is False
            return go

        index = torch.tensor(rows, device=x.device)
        deltas = recognisable.perturbations(
            sources,
            x.index_select(0, index),
            y.index_select(0, index),
            {settings.attack: dict(settings.params)},
            copies=settings.copies,
            sigma=settings.sigma,
            settings=(kind,),
            seed=seed,
            callback=None if callback is None else relay,
        )
        if stopped:
            break
        shown = recognisable.display_normalise(deltas[(settings.attack, kind)], domain)
        for j, picture in zip(rows, shown):
            pictures[j] = images.to_uint8(picture)
    return [replace(q, picture=pictures.get(j)) for j, q in enumerate(questions)], stopped


def make(
    sources: Sequence,
    *,
    questions: int,
    choices: int | None = None,
    seed: int = 0,
    settings: Settings | None = None,
    kinds: Sequence[str] = KINDS,
    callback: progress.Callback | None = None,
) -> Quiz:
    """A whole quiz over the domain's built-in images: `sources[0]` makes the single-model perturbations,
    all of `sources` the (noisy) multi-model ones."""
    sources = list(sources)
    if not sources:
        raise ValueError("a quiz needs at least one source model")
    first = sources[0]
    domain = domains.of(first)
    settings = Settings.for_domain(domain) if settings is None else settings
    x, _, keys = bank(first)
    questions_ = plan_for(first, questions=questions, choices=choices, seed=seed, kinds=kinds)
    where = {k: i for i, k in enumerate(keys)}
    chosen = x[[where[q.image] for q in questions_]].to(first.device)
    start = time.perf_counter()
    rendered, stopped = render(questions_, sources, chosen, settings, seed=seed, callback=callback)
    return Quiz(
        first.domain,
        list(first.class_names),
        rendered,
        seed,
        settings,
        [m.name for m in sources],
        time.perf_counter() - start,
        stopped,
    )


def check_judge(judge, domain: str, num_classes: int, sources: Sequence[str]) -> None:
    if judge.domain != domain or len(judge.class_names) != num_classes:
        raise ValueError(f"{judge.name} does not see {domain} images with their {num_classes} classes")
    if judge.name in sources:
        raise ValueError(f"{judge.name} made the quiz's perturbations: a judge must be held out, not a source")


def machine_answers(quiz: Quiz, judge, batch: int = 64) -> list[Answer]:
    """A model takes the quiz: it sees each question's 8-bit picture and picks the choice with the highest logit."""
    check_judge(judge, quiz.domain, len(quiz.class_names), quiz.sources)
    shown = [q for q in quiz.questions if q.picture is not None]
    channels = judge.input_size[0]
    answers = []
    for start in range(0, len(shown), batch):
        part = shown[start : start + batch]
        # Grey pictures are stored as three equal channels; the judge gets what the display shows.
        x = torch.from_numpy(np.stack([q.picture[..., :channels] if channels == 1 else q.picture for q in part]))
        x = (x.permute(0, 3, 1, 2).float() / 255.0).to(judge.device)
        began = time.perf_counter()
        with torch.no_grad():
            logits = judge(x)
        each = (time.perf_counter() - began) / len(part)
        for q, row in zip(part, logits):
            options = torch.tensor(q.choices, device=row.device)
            answers.append(Answer(q.number, int(options[row.index_select(0, options).argmax()]), each))
    return answers


def _interval(correct: int, answered: int, level: float = CONFIDENCE) -> tuple[float, float] | None:
    """Clopper–Pearson: the exact binomial interval for the accuracy behind `correct` of `answered`."""
    if answered == 0:
        return None
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = 0.0 if correct == 0 else float(beta.ppf(tail, correct, answered - correct + 1))
    high = 1.0 if correct == answered else float(beta.ppf(1 - tail, correct + 1, answered - correct))
    return low, high


def _tally(questions: Sequence[Question], chosen: Mapping[int, Answer]) -> dict:
    answered = [q for q in questions if chosen.get(q.number) is not None and chosen[q.number].choice is not None]
    correct = sum(chosen[q.number].choice == q.true_class for q in answered)
    interval = _interval(correct, len(answered))
    return {
        "questions": len(questions),
        "answered": len(answered),
        "unanswered": len(questions) - len(answered),
        "unanswered questions": [q.number for q in questions if q not in answered],
        "correct": correct,
        "accuracy": correct / len(answered) if answered else None,
        "ci low": None if interval is None else interval[0],
        "ci high": None if interval is None else interval[1],
        "chance": float(np.mean([1 / len(q.choices) for q in questions])) if questions else None,
    }


def check_answers(questions: Sequence[Question], answers: Sequence[Answer]) -> dict[int, Answer]:
    """Answers by question number; an unknown question, a second answer or a class not offered is an error."""
    by_number = {q.number: q for q in questions}
    chosen: dict[int, Answer] = {}
    for a in answers:
        q = by_number.get(a.question)
        if q is None:
            raise ValueError(f"answer to question {a.question!r}: the quiz has questions 1–{len(questions)}")
        if a.question in chosen:
            raise ValueError(f"question {a.question} is answered twice")
        if a.choice is not None and a.choice not in q.choices:
            raise ValueError(f"question {a.question}: class {a.choice} is not one of its choices")
        chosen[a.question] = a
    return chosen


def score(questions: Sequence[Question], answers: Sequence[Answer]) -> dict:
    """Accuracy among the answered questions, overall and per kind, with its 95 % binomial (Clopper–Pearson)
    interval, next to chance (1/choices) and the thesis' human figure. Unanswered questions are counted
    and listed, not scored as wrong."""
    chosen = check_answers(questions, answers)
    kinds = [k for k in recognisable.SETTINGS if any(q.kind == k for q in questions)]
    return {
        **_tally(questions, chosen),
        "by kind": {k: _tally([q for q in questions if q.kind == k], chosen) for k in kinds},
        "confidence": CONFIDENCE,
        "thesis": dict(THESIS),
    }


def answers_csv(quiz: Quiz, answers: Sequence[Answer]) -> str:
    """The answer sheet as CSV: one row per question (skipped ones with an empty answer), classes by name."""
    chosen = check_answers(quiz.questions, answers)
    names = quiz.class_names
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for q in quiz.questions:
        a = chosen.get(q.number)
        pick = None if a is None else a.choice
        writer.writerow(
            [
                q.number,
                q.kind,
                names[q.true_class],
                CHOICE_SEPARATOR.join(names[c] for c in q.choices),
                "" if pick is None else names[pick],
                "" if pick is None else int(pick == q.true_class),
                "" if a is None or a.seconds is None else f"{a.seconds:.3f}",
            ]
        )
    return out.getvalue()


def blank_sheet(quiz: Quiz) -> str:
    """An answer sheet to fill in: question and choices only (no kind, no true class)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("question", "choices", "answer"))
    for q in quiz.questions:
        writer.writerow([q.number, CHOICE_SEPARATOR.join(quiz.class_names[c] for c in q.choices), ""])
    return out.getvalue()


def read_answers(text: str, questions: Sequence[Question], class_names: Sequence[str]) -> list[Answer]:
    """Answers from a filled sheet: columns "question" and "answer" (a class name or index; empty: skipped),
    optionally "seconds". Where the sheet names a question's true class, it must be this quiz's."""
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or not {"question", "answer"} <= set(rows[0]):
        raise ValueError('an answer sheet is a CSV with at least the columns "question" and "answer"')
    lowered = {n.strip().lower(): i for i, n in enumerate(class_names)}
    by_number = {q.number: q for q in questions}
    answers = []
    for line, row in enumerate(rows, start=2):
        number = (row.get("question") or "").strip()
        if not number.isdigit() or int(number) not in by_number:
            raise ValueError(f"line {line}: question {number[:20]!r} is not one of this quiz's 1–{len(questions)}")
        q = by_number[int(number)]
        truth = (row.get("true class") or "").strip().lower()
        if truth and lowered.get(truth) != q.true_class:
            raise ValueError(
                f"line {line}: the sheet's question {q.number} is a {row['true class'][:40]!r}, this "
                f"quiz's a {class_names[q.true_class]!r}: was the sheet made with other settings or "
                "another seed?"
            )
        given = (row.get("answer") or "").strip()
        if not given:
            choice = None
        elif given.isdigit() and int(given) < len(class_names):
            choice = int(given)
        elif given.lower() in lowered:
            choice = lowered[given.lower()]
        else:
            raise ValueError(f"line {line}: answer {given[:40]!r} is neither a class name nor a class index")
        took = (row.get("seconds") or "").strip()
        try:
            spent = float(took) if took else None
        except ValueError:
            raise ValueError(f"line {line}: seconds {took[:20]!r} is not a number") from None
        answers.append(Answer(q.number, choice, spent))
    check_answers(questions, answers)
    return answers
