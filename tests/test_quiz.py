"""The perturbation quiz (Menn 2023, §4.8.2.2): plan, pictures, machine taker, score, CSV and CLI."""

import csv
import io
import json

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from engine import domains, images, models
from engine.analysis import quiz, recognisable
from engine.cli import main

SOURCES = ("fmnist-lenet-0", "fmnist-vgg-0")  # the two quickest Fashion-MNIST sources
JUDGE = "fmnist-lenet-1"
QUICK = quiz.Settings("deepfool", {"steps": 5}, copies=2, sigma=0.2)


@pytest.fixture(scope="module")
def sources():
    return [models.load(n, device="cpu") for n in SOURCES]


@pytest.fixture(scope="module")
def made(sources):
    return quiz.make(sources, questions=6, seed=3, settings=QUICK)


def _labels(n: int = 300, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, classes, n).tolist(), [f"img{i}" for i in range(n)]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "classes,choices,pool", [(10, 10, None), (10, 4, None), (1000, 20, None), (1000, 20, (1, 2, 3))]
)
def test_choices_hold_the_true_class_exactly_once_and_are_distinct(seed, classes, choices, pool):
    labels, keys = _labels(200, classes=min(classes, 40), seed=seed)
    qs = quiz.plan(labels, keys, classes, questions=30, choices=choices, seed=seed, pool=pool)
    for q in qs:
        assert len(q.choices) == choices and len(set(q.choices)) == choices
        assert q.choices.count(q.true_class) == 1
        assert all(0 <= c < classes for c in q.choices)
        assert labels[keys.index(q.image)] == q.true_class  # the class is the attacked image's own
    assert len({q.image for q in qs}) == len(qs)  # no image asked twice
    if pool is not None:  # a pool too small is topped up from the other classes, and used in full first
        assert all(set(pool) - {q.true_class} <= set(q.choices) for q in qs)


def test_the_true_class_sits_anywhere_among_the_choices():
    labels, keys = _labels()
    slots = {
        q.choices.index(q.true_class)
        for seed in range(5)
        for q in quiz.plan(labels, keys, 10, questions=20, choices=10, seed=seed)
    }
    assert len(slots) >= 8  # not always first (or last): the position gives nothing away


def test_distractors_come_from_the_bank_classes_first():
    labels = [3, 5, 7, 9] * 10
    keys = [f"p{i}" for i in range(len(labels))]
    qs = quiz.plan(labels, keys, 1000, questions=8, choices=4, seed=0)
    assert all(set(q.choices) == {3, 5, 7, 9} for q in qs)
    wider = quiz.plan(labels, keys, 1000, questions=8, choices=6, seed=0)
    assert all({3, 5, 7, 9} <= set(q.choices) for q in wider)


def test_the_plan_is_seeded_blinded_and_mixes_both_kinds():
    labels, keys = _labels()
    a = quiz.plan(labels, keys, 10, questions=20, choices=10, seed=5)
    b = quiz.plan(labels, keys, 10, questions=20, choices=10, seed=5)
    assert [(q.image, q.kind, q.choices) for q in a] == [(q.image, q.kind, q.choices) for q in b]
    c = quiz.plan(labels, keys, 10, questions=20, choices=10, seed=6)
    assert [q.image for q in a] != [q.image for q in c]
    for seed in range(6):
        kinds = [q.kind for q in quiz.plan(labels, keys, 10, questions=21, choices=10, seed=seed)]
        assert abs(kinds.count("single-model") - kinds.count("noisy multi-model")) <= 1
    orders = {tuple(q.kind for q in quiz.plan(labels, keys, 10, questions=10, choices=10, seed=s)) for s in range(6)}
    assert len(orders) > 1  # the order of kinds changes with the seed: no fixed pattern to learn
    classes = [labels[keys.index(q.image)] for q in quiz.plan(labels, keys, 10, questions=20, choices=10, seed=1)]
    assert sorted(np.bincount(classes, minlength=10)) == [2] * 10  # spread evenly over the classes


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"questions": 0}, "questions"),
        ({"questions": 301}, "questions"),
        ({"choices": 1}, "choices"),
        ({"choices": 11}, "choices"),
        ({"seed": -1}, "seed"),
        ({"kinds": ("both",)}, "kinds"),
        ({"questions": 2.5}, "questions"),
    ],
)
def test_a_bad_plan_is_refused_with_its_reason(bad, match):
    labels, keys = _labels()
    args = {"questions": 10, "choices": 10, "seed": 0, **bad}
    with pytest.raises(ValueError, match=match):
        quiz.plan(labels, keys, 10, **args)


def _answers(questions, rng) -> tuple[list, list]:
    """Random answers: right, wrong (another of the choices) or skipped (None, or no answer at all)."""
    answers, truth = [], []
    for q in questions:
        r = rng.random()
        if r < 0.15:
            continue  # never answered
        if r < 0.3:
            answers.append(quiz.Answer(q.number, None, 2.0))
            continue
        pick = q.true_class if rng.random() < 0.5 else int(rng.choice([c for c in q.choices if c != q.true_class]))
        answers.append(quiz.Answer(q.number, pick, float(rng.random() * 10)))
        truth.append((q.kind, pick == q.true_class))
    return answers, truth


@pytest.mark.parametrize("seed", range(5))
def test_the_score_is_what_the_answers_give(seed):
    labels, keys = _labels()
    qs = quiz.plan(labels, keys, 10, questions=24, choices=8, seed=seed)
    answers, truth = _answers(qs, np.random.default_rng(seed))
    s = quiz.score(qs, answers)
    right = sum(ok for _, ok in truth)
    assert (s["questions"], s["answered"], s["correct"]) == (24, len(truth), right)
    assert s["unanswered"] == 24 - len(truth)
    given = {a.question for a in answers if a.choice is not None}
    assert s["unanswered questions"] == [q.number for q in qs if q.number not in given]
    assert s["accuracy"] == pytest.approx(right / len(truth))
    assert s["chance"] == pytest.approx(1 / 8)
    ci = binomtest(right, len(truth)).proportion_ci(confidence_level=0.95, method="exact")
    assert (s["ci low"], s["ci high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
    for kind in quiz.KINDS:
        part = s["by kind"][kind]
        mine = [ok for k, ok in truth if k == kind]
        assert part["questions"] == sum(q.kind == kind for q in qs)
        assert (part["answered"], part["correct"]) == (len(mine), sum(mine))
        assert part["chance"] == pytest.approx(1 / 8)
    assert s["thesis"]["accuracy"] == 0.807


def test_no_answers_score_nothing_rather_than_zero():
    labels, keys = _labels()
    qs = quiz.plan(labels, keys, 10, questions=4, choices=5, seed=0)
    s = quiz.score(qs, [quiz.Answer(q.number, None) for q in qs])
    assert s["answered"] == 0 and s["accuracy"] is None and s["ci low"] is None and s["unanswered"] == 4
    assert s["chance"] == pytest.approx(0.2)
    perfect = quiz.score(qs, [quiz.Answer(q.number, q.true_class) for q in qs])
    assert perfect["accuracy"] == 1.0 and perfect["ci high"] == 1.0 and 0.3 < perfect["ci low"] < 1.0


@pytest.mark.parametrize(
    "answer,match",
    [
        (quiz.Answer(99, 1), "questions 1"),
        (quiz.Answer(1, "x"), "not one of its choices"),
    ],
)
def test_a_bad_answer_is_refused(answer, match):
    labels, keys = _labels()
    qs = quiz.plan(labels, keys, 10, questions=4, choices=3, seed=0)
    with pytest.raises(ValueError, match=match):
        quiz.score(qs, [answer])
    with pytest.raises(ValueError, match="twice"):
        quiz.score(qs, [quiz.Answer(1, None), quiz.Answer(1, qs[0].true_class)])
    outside = next(c for c in range(10) if c not in qs[0].choices)
    with pytest.raises(ValueError, match="not one of its choices"):
        quiz.score(qs, [quiz.Answer(1, outside)])


def _paper_quiz(questions=8, choices=10, seed=0) -> quiz.Quiz:
    names = domains.get("fashion-mnist").class_names
    labels, keys = _labels(classes=10)
    qs = quiz.plan(labels, keys, 10, questions=questions, choices=choices, seed=seed)
    return quiz.Quiz("fashion-mnist", names, qs, seed, QUICK, list(SOURCES))


def test_the_csv_round_trips_and_says_what_was_right():
    made = _paper_quiz()
    answers, _ = _answers(made.questions, np.random.default_rng(1))
    text = quiz.answers_csv(made, answers)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == quiz.CSV_COLUMNS and len(rows) == len(made.questions)  # a row for every question
    back = quiz.read_answers(text, made.questions, made.class_names)
    given = {a.question: a for a in answers}
    for a in back:
        original = given.get(a.question)
        assert a.choice == (None if original is None else original.choice)
        if original is not None and original.seconds is not None:
            assert a.seconds == pytest.approx(original.seconds, abs=1e-3)
    assert quiz.score(made.questions, back) == quiz.score(made.questions, answers)
    for row, q in zip(rows, made.questions):
        assert row["true class"] == made.class_names[q.true_class] and row["kind"] == q.kind
        assert row["choices"].split(quiz.CHOICE_SEPARATOR) == [made.class_names[c] for c in q.choices]
        a = given.get(q.number)
        assert row["correct"] == ("" if a is None or a.choice is None else str(int(a.choice == q.true_class)))


def test_a_sheet_from_another_quiz_or_with_bad_cells_is_refused():
    made = _paper_quiz()
    other = _paper_quiz(seed=1)
    keyed = quiz.answers_csv(other, [])
    if [q.true_class for q in other.questions] != [q.true_class for q in made.questions]:
        with pytest.raises(ValueError, match="another seed"):
            quiz.read_answers(keyed, made.questions, made.class_names)
    with pytest.raises(ValueError, match="columns"):
        quiz.read_answers("q,a\n1,2\n", made.questions, made.class_names)
    with pytest.raises(ValueError, match="neither a class name"):
        quiz.read_answers("question,answer\n1,Spaceship\n", made.questions, made.class_names)
    with pytest.raises(ValueError, match="line 2: question"):
        quiz.read_answers("question,answer\n40,\n", made.questions, made.class_names)
    by_name = quiz.read_answers(
        f"question,answer\n1,{made.class_names[made.questions[0].true_class].upper()}\n",
        made.questions,
        made.class_names,
    )
    assert by_name == [quiz.Answer(1, made.questions[0].true_class, None)]


@pytest.mark.slow
def test_pictures_are_the_display_normalised_perturbations(made, sources):
    assert made.complete and not made.stopped_early
    x, _, keys = quiz.bank(sources[0])
    for kind, models_ in (("single-model", sources[:1]), ("noisy multi-model", sources)):
        mine = [q for q in made.questions if q.kind == kind]
        xs = x[[keys.index(q.image) for q in mine]]
        y = torch.tensor([q.true_class for q in mine])
        # Reference: the same averaging called directly, one kind at a time.
        delta = recognisable.perturbations(
            models_, xs, y, {"deepfool": {"steps": 5}}, copies=2, sigma=0.2, settings=(kind,), seed=3
        )[("deepfool", kind)]
        for q, d in zip(mine, delta):
            expected = images.to_uint8(recognisable.display_normalise(d[None], "fashion-mnist"))
            assert q.picture.dtype == np.uint8 and q.picture.shape == (28, 28, 3)
            assert np.abs(q.picture.astype(int) - expected.astype(int)).max() <= 1


def test_a_cancelled_render_keeps_no_half_made_picture(sources):
    qs = quiz.plan_for(sources[0], questions=4, seed=0)
    x, _, keys = quiz.bank(sources[0])
    xs = x[[keys.index(q.image) for q in qs]]
    rendered, stopped = quiz.render(qs, sources, xs, QUICK, callback=lambda step, total, state: False)
    assert stopped and all(q.picture is None for q in rendered)


@pytest.mark.slow
def test_the_machine_taker_picks_its_best_logit_among_the_choices(made):
    judge = models.load(JUDGE, device="cpu")
    answers = quiz.machine_answers(made, judge)
    assert [a.question for a in answers] == [q.number for q in made.questions]
    for q, a in zip(made.questions, answers):
        x = torch.from_numpy(q.picture[..., :1].copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            logits = judge(x)[0]
        assert a.choice in q.choices and a.choice == max(q.choices, key=lambda c: float(logits[c]))
    s = quiz.score(made.questions, answers)
    assert s["answered"] == len(made.questions) and s["unanswered"] == 0
    with pytest.raises(ValueError, match="held out"):
        quiz.machine_answers(made, models.load(SOURCES[0], device="cpu"))
    with pytest.raises(ValueError, match="does not see"):
        quiz.machine_answers(made, models.load("efficientnet-lite1", device="cpu"))


def test_a_model_without_labelled_images_cannot_make_a_quiz(digits):
    from engine import domains

    model, _, _ = digits
    with pytest.raises(domains.NeedsImages, match="no labelled images of its 10 classes"):
        quiz.plan_for(model, questions=2)


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


QUIZ = [
    "quiz",
    "--models",
    *SOURCES,
    "--questions",
    "4",
    "--seed",
    "2",
    "--attack",
    "deepfool",
    "--steps",
    "5",
    "--copies",
    "2",
]


@pytest.mark.slow
def test_cli_writes_a_blind_quiz_scores_a_sheet_and_lets_a_judge_take_it(capsys, tmp_path):
    code, out, err = _cli(capsys, *QUIZ, "--out", str(tmp_path), "--black", JUDGE, "--json")
    assert code == 0, err
    blind = json.loads(out)
    assert blind["questions"] == 4 and blind["choices"] == 10 and blind["sources"] == list(SOURCES)
    assert all(set(row) == {"question", "choices", "picture"} for row in blind["sheet"])  # no kind, no class
    assert (tmp_path / "q001.png").is_file() and len(list(tmp_path.glob("q*.png"))) == 4
    judged = blind["judges"][JUDGE]
    assert judged["answered"] == 4 and set(judged["by kind"]) == set(quiz.KINDS)

    code, out, err = _cli(capsys, *QUIZ, "--key", "--json")
    keyed = json.loads(out)
    assert [r["choices"] for r in keyed["sheet"]] == [r["choices"] for r in blind["sheet"]]
    assert {r["kind"] for r in keyed["sheet"]} == set(quiz.KINDS)

    sheet = tmp_path / "answers.csv"
    rows = list(csv.DictReader(sheet.open()))
    assert [r["question"] for r in rows] == ["1", "2", "3", "4"] and all(r["answer"] == "" for r in rows)
    truth = [r["true class"] for r in keyed["sheet"]]
    wrong = next(c for c in rows[1]["choices"].split(quiz.CHOICE_SEPARATOR) if c != truth[1])
    filled = ["question,answer", f"1,{truth[0]}", f"2,{wrong}", "3,", f"4,{truth[3]}"]
    sheet.write_text("\n".join(filled) + "\n")
    code, out, err = _cli(
        capsys, "quiz", "--models", *SOURCES, "--questions", "4", "--seed", "2", "--answers", str(sheet), "--json"
    )
    assert code == 0, err
    s = json.loads(out)["score"]
    assert (s["answered"], s["correct"], s["unanswered questions"]) == (3, 2, [3])
    assert s["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "args,match",
    [
        (["quiz", "--questions", "4"], "--domain, --model or --models"),
        (["quiz", "--domain", "fashion-mnist", "--model", "efficientnet-lite0"], "not fashion-mnist"),
        ([*QUIZ, "--choices", "1"], "choices must be"),
        ([*QUIZ[:5], "0"], "questions must be"),
        ([*QUIZ, "--black", SOURCES[0]], "held out"),
        ([*QUIZ, "--eps", "0.1"], "--eps is not a parameter of deepfool"),
        (["quiz", "--models", SOURCES[0], "--answers", "/nonexistent.csv"], "nonexistent"),
        (["quiz", "--models", SOURCES[0], "--answers", "sheet.csv", "--black", JUDGE], "without making the pictures"),
        (["quiz", "--domain", "mnist"], "invalid choice"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(capsys, args, match):
    code, out, err = _cli(capsys, *args)
    assert code == 2 and match in err and "Traceback" not in err, err


@pytest.mark.slow
def test_the_page_asks_for_a_choice_keeps_its_answers_across_reruns_and_restarts():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "main.py"), default_timeout=600)
    at.query_params["model"] = "fmnist-lenet-0"
    at.run()
    at.switch_page("views/quiz.py").run()
    at.number_input(key="quiz.questions").set_value(2)
    at.button(key="FormSubmitter:quiz-form-Start").click().run()
    anyway = [b for b in at.button if b.label.startswith("Run anyway")]
    if anyway:  # a busy machine prices the run above the app's threshold
        anyway[0].click().run()
    assert not at.exception, at.exception
    session = at.session_state["quiz_session"]
    first, second = session.quiz.questions
    assert at.radio[0].options == [session.quiz.class_names[c] for c in first.choices]
    next_ = f"FormSubmitter:quiz-q-{session.serial}-0-Next"
    at.button(key=next_).click().run()  # no class chosen: not an answer
    assert at.session_state["quiz_session"].answers == [] and "Choose a class first" in at.warning[0].value
    at.radio[0].set_value(first.true_class)
    at.button(key=next_).click().run()
    at.button(key=f"FormSubmitter:quiz-q-{session.serial}-1-Skip").click().run()
    answers = at.session_state["quiz_session"].answers
    assert [(a.question, a.choice) for a in answers] == [(1, first.true_class), (2, None)]
    assert at.metric[0].value == "1 of 1 (100%)"
    at.button(key="quiz.again").click().run()
    assert "quiz_session" not in at.session_state and at.button(key="FormSubmitter:quiz-form-Start")
