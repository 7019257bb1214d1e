"""A quiz for a whole class: one room, everyone on the same question, answers kept in an SQLite file.

The teacher opens a room from a made quiz (`engine.analysis.quiz.make`): its questions, their pictures (PNG) and
the pacing (current question, phase) live in the database, so a server restart loses nothing. Students join with
the room's short code and a display name and get a random token (the app keeps it in the page's URL, so a reload
keeps their place). The teacher's calls take the room's host token; a student's calls take the student's token
and only ever return that student's own answers. One answer per student and question: the database refuses a
second one (UNIQUE), so a double click counts once.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Callable
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import images
from engine.analysis import quiz as quizzes

# No 0/O, 1/I/L: a code read off a projector is typed without guessing.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
NAME_MAX = 40
PHASES = ("question", "revealed", "finished")
DEFAULT_HOURS = 3.0
MAX_HOURS = 24 * 7
CSV_COLUMNS = ("room", "question", "kind", "true class", "choices", "student", "answer", "correct", "seconds")

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    code TEXT PRIMARY KEY,
    host TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    quiz TEXT NOT NULL,
    current INTEGER NOT NULL DEFAULT 0,
    phase TEXT NOT NULL DEFAULT 'question' CHECK (phase IN ('question', 'revealed', 'finished')),
    shown REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS questions (
    room TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    image TEXT NOT NULL,
    true_class INTEGER NOT NULL,
    choices TEXT NOT NULL,
    picture BLOB NOT NULL,
    PRIMARY KEY (room, number)
);
CREATE TABLE IF NOT EXISTS students (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    token TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    joined REAL NOT NULL,
    UNIQUE (room, name)
);
CREATE TABLE IF NOT EXISTS answers (
    room TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    student INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    question INTEGER NOT NULL,
    choice INTEGER NOT NULL,
    seconds REAL,
    at REAL NOT NULL,
    UNIQUE (room, student, question)
);
"""


class RoomError(ValueError):
    """A code, token, name or answer the room refuses, with what to do about it in words."""


def default_path() -> Path:
    """Where the rooms live: PE_CLASSROOM_DB, else the user's cache folder."""
    if os.environ.get("PE_CLASSROOM_DB"):
        return Path(os.environ["PE_CLASSROOM_DB"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "perturbation-explorer" / "classroom.sqlite3"


def clean_code(text: str | None) -> str:
    """A code as typed ("k7px 3m") in its stored form ("K7PX3M"); RoomError where it cannot be a code."""
    code = re.sub(r"[\s-]", "", str(text or "")).upper()
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        shown = (text or "")[:12]
        raise RoomError(
            f"{shown!r} is not a room code: a code is {CODE_LENGTH} letters and digits, as your teacher shows it "
            f"(e.g. {'K7PX3M'})."
        )
    return code


def clean_name(text: str | None) -> str:
    """A display name, trimmed; RoomError for an empty, over-long or control-character name."""
    name = unicodedata.normalize("NFC", " ".join(str(text or "").split()))
    if not name:
        raise RoomError("Type a name first: the teacher sees it beside your answers.")
    if len(name) > NAME_MAX:
        raise RoomError(f"That name is {len(name)} characters long: use at most {NAME_MAX}.")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise RoomError("That name has invisible control characters: type it with letters and digits.")
    return name


def shown_name(name: str) -> str:
    """A name safe to put into Markdown: HTML and Markdown's own characters escaped, so it shows as typed."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~>])", r"\\\1", html.escape(name, quote=False))


def qr_png(url: str, scale: int = 6) -> bytes:
    """A QR code of `url` as PNG bytes (segno: pure Python, no network)."""
    import segno

    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


@dataclass(frozen=True)
class Opened:
    code: str
    host: str  # the teacher's token: whoever holds it paces the room


@dataclass(frozen=True)
class Question:
    number: int
    kind: str
    true_class: int
    choices: tuple[int, ...]
    picture: bytes  # PNG


@dataclass(frozen=True)
class Room:
    """A room as the teacher sees it."""

    code: str
    expires: float
    quiz: dict  # domain, class_names, sources, seed, settings
    current: int  # 0-based index of the question on screen
    phase: str
    total: int
    students: tuple[str, ...]  # display names, in joining order

    @property
    def class_names(self) -> list[str]:
        return self.quiz["class_names"]


@dataclass(frozen=True)
class StudentView:
    """What a student may see: the room's pacing, the current question (its answer only once revealed) and the
    student's own answers, never anyone else's."""

    name: str
    current: int
    phase: str
    total: int
    class_names: tuple[str, ...]
    question: Question | None  # None once the quiz is finished
    mine: dict[int, int]  # question number → own choice
    truth: dict[int, int]  # question number → its true class, for the revealed questions only


def _png(picture: np.ndarray) -> bytes:
    return images.png_bytes(np.ascontiguousarray(picture))


class Store:
    """The rooms in one SQLite file (WAL: readers never wait for the writer). Every call opens its own
    connection, so one store is safe to share between the app's sessions (threads) and processes."""

    def __init__(self, path: str | Path | None = None, clock: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else default_path()
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    @contextmanager
    def _db(self):
        with closing(sqlite3.connect(self.path, timeout=30)) as con:
            con.execute("PRAGMA foreign_keys=ON")
            with con:  # one transaction: committed on leaving, rolled back on an error
                yield con

    # ---- the teacher --------------------------------------------------------------------------------

    def open_room(self, made: quizzes.Quiz, hours: float = DEFAULT_HOURS) -> Opened:
        """A new room for a made quiz (every picture rendered), open for `hours`, on its first question."""
        if not made.complete:
            raise RoomError("The quiz has questions without a picture: make it again before opening a room.")
        if not 0 < hours <= MAX_HOURS:
            raise RoomError(f"A room stays open between a few minutes and {MAX_HOURS} hours, not {hours!r}.")
        now = self.clock()
        about = {
            "domain": made.domain,
            "class_names": list(made.class_names),
            "sources": list(made.sources),
            "seed": made.seed,
            "settings": {
                "attack": made.settings.attack,
                "params": made.settings.params,
                "copies": made.settings.copies,
                "sigma": made.settings.sigma,
            },
        }
        host = secrets.token_urlsafe(18)
        with self._db() as con:
            for _ in range(20):
                code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
                if con.execute("SELECT 1 FROM rooms WHERE code = ?", (code,)).fetchone() is None:
                    break
            con.execute(
                "INSERT INTO rooms (code, host, created, expires, quiz, shown) VALUES (?, ?, ?, ?, ?, ?)",
                (code, host, now, now + hours * 3600, json.dumps(about), now),
            )
            con.executemany(
                "INSERT INTO questions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (code, q.number, q.kind, q.image, q.true_class, json.dumps(list(q.choices)), _png(q.picture))
                    for q in made.questions
                ],
            )
        return Opened(code, host)

    def _hosted(self, con, host: str) -> sqlite3.Row:
        row = con.execute(
            "SELECT code, expires, quiz, current, phase, shown FROM rooms WHERE host = ?", (str(host),)
        ).fetchone()
        if row is None:
            raise RoomError("This teacher's link names no room (it was closed or has expired): open a new room.")
        if row[1] <= self.clock():
            raise RoomError(f"Room {row[0]} has expired: open a new room for the class.")
        return row

    def room(self, host: str) -> Room:
        with self._db() as con:
            code, expires, about, current, phase, _ = self._hosted(con, host)
            total = con.execute("SELECT COUNT(*) FROM questions WHERE room = ?", (code,)).fetchone()[0]
            names = [r[0] for r in con.execute("SELECT name FROM students WHERE room = ? ORDER BY id", (code,))]
        return Room(code, expires, json.loads(about), current, phase, total, tuple(names))

    def question(self, host: str, index: int | None = None) -> Question:
        """A question of the teacher's room (default: the one on screen)."""
        with self._db() as con:
            code, _, _, current, _, _ = self._hosted(con, host)
            return self._question(con, code, current if index is None else index)

    @staticmethod
    def _question(con, code: str, index: int) -> Question:
        row = con.execute(
            "SELECT number, kind, true_class, choices, picture FROM questions WHERE room = ? "
            "ORDER BY number LIMIT 1 OFFSET ?",
            (code, index),
        ).fetchone()
        return Question(row[0], row[1], row[2], tuple(json.loads(row[3])), bytes(row[4]))

    def reveal(self, host: str) -> None:
        """End answering the current question and show its answer."""
        self._step(host, "question", lambda current, total: (current, "revealed"))

    def next(self, host: str) -> None:
        """After a reveal: the next question, or the end after the last."""
        self._step(
            host,
            "revealed",
            lambda current, total: (current + 1, "question") if current + 1 < total else (current, "finished"),
        )

    def _step(self, host: str, expected: str, move) -> None:
        with self._db() as con:
            code, _, _, current, phase, _ = self._hosted(con, host)
            if phase != expected:
                return  # a second click on a button the first click already acted on
            total = con.execute("SELECT COUNT(*) FROM questions WHERE room = ?", (code,)).fetchone()[0]
            index, new = move(current, total)
            con.execute(
                "UPDATE rooms SET current = ?, phase = ?, shown = ? WHERE code = ? AND phase = ?",
                (index, new, self.clock(), code, expected),
            )

    def close(self, host: str) -> None:
        """End the room now: its code stops working (its answers stay until `purge`)."""
        with self._db() as con:
            con.execute("UPDATE rooms SET expires = ? WHERE host = ?", (self.clock(), str(host)))

    def tally(self, host: str) -> dict:
        """The current question's answers so far: who answered, who has not, and the count per choice."""
        with self._db() as con:
            code, _, _, current, _, _ = self._hosted(con, host)
            q = self._question(con, code, current)
            rows = con.execute(
                "SELECT s.name, a.choice FROM students s LEFT JOIN answers a "
                "ON a.student = s.id AND a.question = ? WHERE s.room = ? ORDER BY s.id",
                (q.number, code),
            ).fetchall()
        counts = {c: 0 for c in q.choices}
        for _, choice in rows:
            if choice is not None:
                counts[choice] += 1
        return {
            "question": q.number,
            "answered": [n for n, c in rows if c is not None],
            "waiting": [n for n, c in rows if c is None],
            "counts": counts,
        }

    def answers(self, host: str) -> list[dict]:
        """Every answer in the room (the teacher's view): question, student, choice, seconds."""
        with self._db() as con:
            code = self._hosted(con, host)[0]
            rows = con.execute(
                "SELECT a.question, s.name, a.choice, a.seconds FROM answers a JOIN students s ON s.id = a.student "
                "WHERE a.room = ? ORDER BY a.question, s.id",
                (code,),
            ).fetchall()
        return [{"question": q, "student": n, "choice": c, "seconds": t} for q, n, c, t in rows]

    def results(self, host: str) -> dict:
        """The class's score (every answer pooled, per kind, with its 95 % interval beside chance and the
        thesis), each question's difficulty, and the CSV of every answer."""
        room = self.room(host)
        with self._db() as con:
            questions = [self._question(con, room.code, i) for i in range(room.total)]
        given = self.answers(host)
        by_number = {q.number: q for q in questions}
        # Each answer is one trial: a question of the same kind and choices, numbered by the answer.
        trials = [
            quizzes.Question(
                i + 1,
                by_number[a["question"]].kind,
                "",
                by_number[a["question"]].true_class,
                by_number[a["question"]].choices,
            )
            for i, a in enumerate(given)
        ]
        score = quizzes.score(trials, [quizzes.Answer(i + 1, a["choice"]) for i, a in enumerate(given)])
        names = room.class_names
        difficulty = []
        for q in questions:
            mine = [a["choice"] for a in given if a["question"] == q.number]
            right = sum(c == q.true_class for c in mine)
            wrong = [c for c in mine if c != q.true_class]
            common = max(set(wrong), key=wrong.count) if wrong else None
            difficulty.append(
                {
                    "question": q.number,
                    "kind": q.kind,
                    "true class": names[q.true_class],
                    "answers": len(mine),
                    "right": right,
                    "share right": right / len(mine) if mine else None,
                    "most chosen wrong answer": "" if common is None else names[common],
                }
            )
        return {"score": score, "difficulty": difficulty, "csv": self._csv(room, by_number, given)}

    @staticmethod
    def _csv(room: Room, by_number: dict, given: list[dict]) -> str:
        names = room.class_names
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for a in given:
            q = by_number[a["question"]]
            writer.writerow(
                [
                    room.code,
                    q.number,
                    q.kind,
                    names[q.true_class],
                    quizzes.CHOICE_SEPARATOR.join(names[c] for c in q.choices),
                    _cell(a["student"]),
                    names[a["choice"]],
                    int(a["choice"] == q.true_class),
                    "" if a["seconds"] is None else f"{a['seconds']:.3f}",
                ]
            )
        return out.getvalue()

    # ---- the students -------------------------------------------------------------------------------

    def _open(self, con, text: str) -> tuple:
        code = clean_code(text)
        row = con.execute("SELECT code, expires, current, phase, shown FROM rooms WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise RoomError(f"There is no room {code}: check the code on the teacher's screen.")
        if row[1] <= self.clock():
            raise RoomError(f"Room {code} has ended: ask your teacher for the code of today's room.")
        return row

    def check(self, text: str) -> str:
        """The stored code of an open room, or RoomError saying why not (malformed, unknown, expired)."""
        with self._db() as con:
            return self._open(con, text)[0]

    def where(self, text: str) -> tuple[int, str]:
        """(current question index, phase): what a student's page polls to follow the teacher."""
        with self._db() as con:
            _, _, current, phase, _ = self._open(con, text)
        return current, phase

    def join(self, text: str, name: str) -> str:
        """A student's token for the room; the name must be free in the room."""
        name = clean_name(name)
        token = secrets.token_urlsafe(18)
        with self._db() as con:
            code = self._open(con, text)[0]
            try:
                con.execute(
                    "INSERT INTO students (room, token, name, joined) VALUES (?, ?, ?, ?)",
                    (code, token, name, self.clock()),
                )
            except sqlite3.IntegrityError:
                raise RoomError(f"Someone in room {code} is already called that: add an initial.") from None
        return token

    def _student(self, con, text: str, token: str) -> tuple:
        room = self._open(con, text)
        row = con.execute(
            "SELECT id, name FROM students WHERE room = ? AND token = ?", (room[0], str(token or ""))
        ).fetchone()
        if row is None:
            raise RoomError(f"You have not joined room {room[0]} from this browser yet: type your name to join.")
        return room, row

    def student(self, text: str, token: str) -> StudentView:
        with self._db() as con:
            (code, _, current, phase, _), (sid, name) = self._student(con, text, token)
            about = json.loads(con.execute("SELECT quiz FROM rooms WHERE code = ?", (code,)).fetchone()[0])
            total = con.execute("SELECT COUNT(*) FROM questions WHERE room = ?", (code,)).fetchone()[0]
            q = None if phase == "finished" else self._question(con, code, current)
            mine = dict(con.execute("SELECT question, choice FROM answers WHERE student = ?", (sid,)).fetchall())
            shown = current + (phase != "question")  # questions whose answer the class has seen
            truth = dict(
                con.execute(
                    "SELECT number, true_class FROM questions WHERE room = ? ORDER BY number LIMIT ?", (code, shown)
                ).fetchall()
            )
        hidden = None if q is None else Question(q.number, "", -1, q.choices, q.picture)  # kind and answer: blinded
        return StudentView(name, current, phase, total, tuple(about["class_names"]), hidden, mine, truth)

    def answer(self, text: str, token: str, question: int, choice: int) -> bool:
        """Record a student's answer to the question on screen: True if recorded, False if this student had
        already answered it (the first answer stands). RoomError once the question is closed."""
        with self._db() as con:
            (code, _, current, phase, shown), (sid, _) = self._student(con, text, token)
            q = self._question(con, code, current)
            if phase != "question" or q.number != question:
                raise RoomError("That question is closed: the teacher has moved on.")
            if choice not in q.choices:
                raise RoomError(f"Class {choice!r} is not one of this question's choices.")
            added = con.execute(
                "INSERT INTO answers (room, student, question, choice, seconds, at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (room, student, question) DO NOTHING",
                (code, sid, question, int(choice), max(0.0, self.clock() - shown), self.clock()),
            )
            return added.rowcount == 1

    # ---- the operator -------------------------------------------------------------------------------

    def rooms(self) -> list[dict]:
        """Every room: code, times, phase, question, students and answers (no tokens)."""
        with self._db() as con:
            rows = con.execute(
                "SELECT r.code, r.created, r.expires, r.phase, r.current, "
                "(SELECT COUNT(*) FROM questions q WHERE q.room = r.code), "
                "(SELECT COUNT(*) FROM students s WHERE s.room = r.code), "
                "(SELECT COUNT(*) FROM answers a WHERE a.room = r.code) FROM rooms r ORDER BY r.created"
            ).fetchall()
        now = self.clock()
        keys = ("code", "created", "expires", "phase", "question", "questions", "students", "answers")
        return [{**dict(zip(keys, r)), "question": r[4] + 1, "open": r[2] > now} for r in rows]

    def purge(self, older_than_hours: float = 0.0) -> int:
        """Delete the rooms that expired more than `older_than_hours` ago, with everything in them."""
        with self._db() as con:
            gone = con.execute("DELETE FROM rooms WHERE expires <= ?", (self.clock() - older_than_hours * 3600,))
            return gone.rowcount


def _cell(text: str) -> str:
    """A name as a CSV cell a spreadsheet shows as text: a leading = + - @ would start a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
