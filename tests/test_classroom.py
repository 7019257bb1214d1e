"""The classroom store: rooms, students and answers in an SQLite file that outlives the server."""

import csv
import io
import json
import sqlite3

import numpy as np
import pytest
from PIL import Image
from scipy.stats import beta

from engine import classroom
from engine.analysis import quiz

NAMES = ["T-shirt", "Trouser", "Pullover", "Dress"]


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _quiz(n: int = 3) -> quiz.Quiz:
    rng = np.random.default_rng(0)
    questions = [
        quiz.Question(
            i + 1,
            quiz.KINDS[i % 2],
            f"fmnist:{i}",
            i % 4,
            tuple(sorted({i % 4, (i + 1) % 4, (i + 2) % 4})),
            rng.integers(0, 256, (28, 28, 3), dtype=np.uint8),
        )
        for i in range(n)
    ]
    return quiz.Quiz("fmnist", NAMES, questions, 0, quiz.Settings("bim", {"steps": 2}, 2, 0.1), ["a", "b"])


@pytest.fixture
def room(tmp_path):
    clock = Clock()
    store = classroom.Store(tmp_path / "rooms.sqlite3", clock=clock)
    made = _quiz()
    return store, store.open_room(made, hours=1), made, clock


def _wrong(q) -> int:
    return next(c for c in q.choices if c != q.true_class)


def test_the_database_is_in_wal_mode_and_codes_use_the_unambiguous_alphabet(room):
    store, opened, _, _ = room
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(opened.code) == classroom.CODE_LENGTH and set(opened.code) <= set(classroom.ALPHABET)
    assert not set("01OIL") & set(classroom.ALPHABET)
    assert classroom.clean_code(f" {opened.code[:3].lower()}-{opened.code[3:]} ") == opened.code


def test_a_second_answer_is_refused_and_counted_once(room):
    store, opened, made, _ = room
    token = store.join(opened.code, "Ada")
    q = made.questions[0]
    assert store.answer(opened.code, token, 1, q.true_class) is True
    assert store.answer(opened.code, token, 1, _wrong(q)) is False  # the first answer stands
    t = store.tally(opened.host)
    assert t["answered"] == ["Ada"] and sum(t["counts"].values()) == 1 and t["counts"][q.true_class] == 1
    with sqlite3.connect(store.path) as con:  # the database itself refuses a second row, whatever the caller
        sid = con.execute("SELECT id FROM students").fetchone()[0]
        with pytest.raises(sqlite3.IntegrityError):
            con.execute(
                "INSERT INTO answers (room, student, question, choice, at) VALUES (?, ?, 1, 0, 0)", (opened.code, sid)
            )


def test_answers_are_taken_only_for_the_open_question_and_offered_choices(room):
    store, opened, made, _ = room
    token = store.join(opened.code, "Ada")
    with pytest.raises(classroom.RoomError, match="not one of this question's choices"):
        store.answer(opened.code, token, 1, next(c for c in range(4) if c not in made.questions[0].choices))
    with pytest.raises(classroom.RoomError, match="closed"):
        store.answer(opened.code, token, 2, made.questions[1].true_class)  # not on screen yet
    store.reveal(opened.host)
    store.reveal(opened.host)  # a double click on Reveal acts once
    assert store.room(opened.host).phase == "revealed"
    with pytest.raises(classroom.RoomError, match="closed"):
        store.answer(opened.code, token, 1, made.questions[0].true_class)
    store.next(opened.host)
    store.next(opened.host)  # a double click on Next does not skip a question
    assert (store.room(opened.host).current, store.room(opened.host).phase) == (1, "question")
    for _ in range(2):
        store.reveal(opened.host)
        store.next(opened.host)
    assert store.room(opened.host).phase == "finished" and store.student(opened.code, token).question is None


def test_wrong_malformed_and_stale_codes_say_what_is_wrong(room):
    store, opened, _, clock = room
    for hostile in ("<script>alert(1)</script>", "' OR 1=1 --", "", "K7PX3", "O0O0O0"):
        with pytest.raises(classroom.RoomError, match="is not a room code"):
            store.join(hostile, "Ada")
    unknown = next(c * 6 for c in classroom.ALPHABET if c * 6 != opened.code)
    with pytest.raises(classroom.RoomError, match=f"There is no room {unknown}: check the code"):
        store.check(unknown)
    token = store.join(opened.code, "Ada")
    clock.now += 3600  # the room was opened for one hour
    with pytest.raises(classroom.RoomError, match=f"Room {opened.code} has ended"):
        store.student(opened.code, token)
    with pytest.raises(classroom.RoomError, match="has ended"):
        store.join(opened.code, "Bo")
    with pytest.raises(classroom.RoomError, match="has expired"):
        store.room(opened.host)
    assert store.rooms()[0]["open"] is False
    assert store.purge(older_than_hours=1) == 0 and store.purge() == 1 and store.rooms() == []
    with sqlite3.connect(store.path) as con:  # everything in the room went with it
        assert [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("questions", "students")] == [0, 0]


def test_closing_a_room_ends_its_code_now(room):
    store, opened, _, _ = room
    store.close(opened.host)
    with pytest.raises(classroom.RoomError, match="has ended"):
        store.check(opened.code)


def test_a_restart_reopens_the_file_and_finds_everything_where_it_was(room):
    store, opened, made, clock = room
    token = store.join(opened.code, "Ada")
    store.answer(opened.code, token, 1, made.questions[0].true_class)
    store.reveal(opened.host)
    store.next(opened.host)
    again = classroom.Store(store.path, clock=clock)  # a new server process: nothing shared but the file
    r = again.room(opened.host)
    assert (r.code, r.current, r.phase, r.total, r.students) == (opened.code, 1, "question", 3, ("Ada",))
    view = again.student(opened.code, token)
    assert view.name == "Ada" and view.mine == {1: made.questions[0].true_class}
    for i, q in enumerate(made.questions):  # the pictures are in the database, pixel for pixel
        stored = again.question(opened.host, i)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored.picture)).convert("RGB")), q.picture)
        assert (stored.number, stored.kind, stored.true_class, stored.choices) == (
            q.number,
            q.kind,
            q.true_class,
            q.choices,
        )


def test_a_student_sees_only_their_own_answers_and_no_answer_before_the_reveal(room):
    store, opened, made, _ = room
    ada, bo = store.join(opened.code, "Ada"), store.join(opened.code, "Bo")
    q = made.questions[0]
    store.answer(opened.code, ada, 1, q.true_class)
    view = store.student(opened.code, bo)
    assert view.mine == {} and view.truth == {}
    assert view.question.true_class == -1 and view.question.kind == ""  # blinded until the reveal
    assert "Ada" not in repr(view)
    store.answer(opened.code, bo, 1, _wrong(q))
    store.reveal(opened.host)
    assert store.student(opened.code, bo).mine == {1: _wrong(q)}
    assert store.student(opened.code, bo).truth == {1: q.true_class}
    for forged in ("", "x" * 24, opened.host):  # no token, a guessed one, the teacher's: no student's view
        with pytest.raises(classroom.RoomError, match="not joined"):
            store.student(opened.code, forged)
    other = store.open_room(_quiz(), hours=1)  # a token of one room does not open another
    with pytest.raises(classroom.RoomError, match="not joined"):
        store.student(other.code, ada)
    with pytest.raises(classroom.RoomError, match="names no room"):
        store.tally(ada)  # a student's token is not a teacher's


def test_names_are_checked_kept_as_typed_and_escaped_where_shown(room):
    store, opened, _, _ = room
    hostile = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "Robert'); DROP TABLE students;--"]
    for name in hostile:
        store.join(opened.code, name)
    assert store.room(opened.host).students == tuple(hostile)  # parameterised SQL: stored as typed, table intact
    for name in hostile + ["[x](javascript:alert(1))", "**bold** `code`"]:
        shown = classroom.shown_name(name)
        assert "<" not in shown and ">" not in shown
        assert "](" not in shown and "**" not in shown and "`" not in shown.replace("\\`", "")
    assert classroom.shown_name("O'Brien & Zoë") == "O'Brien &amp; Zoë"  # an entity Markdown shows as "&"
    with pytest.raises(classroom.RoomError, match="at most 40"):
        store.join(opened.code, "x" * 41)
    with pytest.raises(classroom.RoomError, match="Type a name"):
        store.join(opened.code, "   ")
    with pytest.raises(classroom.RoomError, match="control"):
        store.join(opened.code, "a\u202eb")
    with pytest.raises(classroom.RoomError, match="already called that"):
        store.join(opened.code, "  <script>alert(1)</script> ")


def test_results_pool_the_class_per_kind_with_difficulty_and_every_answer_in_the_csv(room):
    store, opened, made, _ = room
    tokens = [store.join(opened.code, n) for n in ("Ada", "Bo", "=HYPERLINK(1)")]
    picks = {}
    for k, q in enumerate(made.questions):
        for s, token in enumerate(tokens):
            if (k, s) == (2, 2):
                continue  # one student misses the last question
            choice = q.true_class if (k + s) % 3 else _wrong(q)
            store.answer(opened.code, token, q.number, choice)
            picks[(q.number, s)] = choice
        store.reveal(opened.host)
        store.next(opened.host)
    out = store.results(opened.host)
    s = out["score"]
    right = sum(c == made.questions[n - 1].true_class for (n, _), c in picks.items())
    assert (s["answered"], s["correct"]) == (8, right)
    assert s["ci low"] == pytest.approx(beta.ppf(0.025, right, 8 - right + 1))  # Clopper–Pearson, pooled answers
    single = [(n, c) for (n, _), c in picks.items() if made.questions[n - 1].kind == "single-model"]
    assert s["by kind"]["single-model"]["answered"] == len(single)
    assert s["thesis"]["accuracy"] == 0.807
    assert [d["answers"] for d in out["difficulty"]] == [3, 3, 2]
    assert out["difficulty"][0]["share right"] == pytest.approx(
        sum(picks[(1, i)] == made.questions[0].true_class for i in range(3)) / 3
    )
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert len(rows) == 8 and {r["room"] for r in rows} == {opened.code}
    assert {r["student"] for r in rows} == {"Ada", "Bo", "'=HYPERLINK(1)"}  # no spreadsheet formula
    assert sum(int(r["correct"]) for r in rows) == right


def test_the_qr_code_is_a_square_png():
    picture = Image.open(io.BytesIO(classroom.qr_png("http://127.0.0.1:8501/quiz?room=K7PX3M")))
    assert picture.format == "PNG" and picture.size[0] == picture.size[1] >= 21 * 6


def test_the_operator_lists_rooms_and_purges_the_expired_ones_from_the_cli(tmp_path, monkeypatch, capsys):
    from conftest import cli_json

    db = tmp_path / "rooms.sqlite3"
    monkeypatch.setenv("PE_CLASSROOM_DB", str(db))
    classroom.Store(db, clock=lambda: 0.0).open_room(_quiz(), hours=1)  # long expired
    fresh = classroom.Store(db).open_room(_quiz(), hours=1)
    listed = cli_json(capsys, "classroom", "--json")
    assert listed["database"] == str(db) and [r["open"] for r in listed["rooms"]] == [False, True]
    assert "host" not in json.dumps(listed) and fresh.host not in json.dumps(listed)  # no teacher's key leaks
    purged = cli_json(capsys, "classroom", "--expire", "1", "--json")
    assert purged["purged"] == 1 and [r["code"] for r in purged["rooms"]] == [fresh.code]
