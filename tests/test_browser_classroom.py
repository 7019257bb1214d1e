"""The classroom quiz in real browsers: one teacher (a 1280×720 projector) and eight students (390×844 phones) on a
server of its own, with its own room database, killed and started again mid-quiz."""

from __future__ import annotations

import csv
import re
import sqlite3
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

# The browser tests' marks (slow; skipped, with the reason, where Chromium is missing) and their waits.
from test_browser import _no_exception, _past_the_gate, _settle, playwright, pytestmark  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_common import choose, free_port, streamlit_server  # noqa: E402
from conftest import BROWSER_TIMEOUT_MS  # noqa: E402

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
NAMES = ["Ada", "Bo", "Cy", "Di", "Ed", "Flo", *HOSTILE]
PHONE = {"width": 390, "height": 844}
PROJECTOR = {"width": 1280, "height": 720}


def _count(db: Path, question: int | None = None) -> int:
    with sqlite3.connect(db) as con:
        sql = "SELECT COUNT(*) FROM answers" + ("" if question is None else f" WHERE question = {int(question)}")
        return con.execute(sql).fetchone()[0]


def _expired_room(db: Path) -> str:
    """A room that ended an hour ago, opened straight in the database."""
    from engine import classroom
    from engine.analysis import quiz

    picture = np.zeros((28, 28, 3), np.uint8)
    question = quiz.Question(1, quiz.KINDS[0], "x", 0, (0, 1), picture)
    made = quiz.Quiz("fmnist", ["a", "b"], [question], 0, quiz.Settings("bim", {}, 1, 0.0), [])
    return classroom.Store(db, clock=lambda: time.time() - 7200).open_room(made, hours=1).code


def _arrive(page, text: str) -> None:
    """Wait for a page opened among eight at once to show `text`; one that a loaded machine left without a session
    is opened again, as a person would reload it."""
    try:
        _settle(page, text, timeout_s=120)
    except (AssertionError, playwright.TimeoutError):
        page.reload(wait_until="domcontentloaded")
        _settle(page, text)


LOADED = "() => [...document.querySelectorAll('[data-testid=stImage] img')].every(i => i.complete && i.naturalWidth)"


def _choices(page):
    return page.locator(".st-key-choices button")


# Nine pages and two server starts: minutes beside the other worker, past the suite's 600 s on a busy machine.
@pytest.mark.timeout(1500)
def test_a_class_of_eight_answers_once_each_and_the_room_survives_a_restart(browser, tmp_path, shots):
    db, port = tmp_path / "rooms.sqlite3", free_port()
    env = {"PE_CLASSROOM_DB": str(db)}
    dialogs: list[str] = []
    teacher = browser.new_context(viewport=PROJECTOR).new_page()
    students = [browser.new_context(viewport=PHONE).new_page() for _ in NAMES]
    visitor = browser.new_page(viewport=PHONE)
    for page in [teacher, *students, visitor]:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with streamlit_server(tmp_path / "first.log", env=env, port=port, stop=9) as url:
        # The teacher opens a room on a Fashion-MNIST model: two questions of three choices.
        teacher.goto(f"{url}/quiz?model=fmnist-lenet-0&image=fmnist:0", wait_until="domcontentloaded")
        _settle(teacher, "Open a classroom")
        teacher.get_by_text("Open a classroom").click()
        teacher.get_by_label("Questions for the class", exact=True).fill("2")
        teacher.get_by_label("Choices for the class", exact=True).fill("3")
        choose(teacher, "Perturbations", "single-model only", BROWSER_TIMEOUT_MS / 1000)  # seconds to make
        teacher.get_by_role("button", name="Open the room").click()
        _past_the_gate(teacher, "Question 1 of 2", timeout_s=180)
        code = teacher.locator(".st-key-room-code").inner_text().strip()
        assert re.fullmatch(r"[A-HJKMNP-Z2-9]{6}", code), code
        host = parse_qs(urlparse(teacher.url).query)["host"][0]
        assert teacher.get_by_text(f"{url}/quiz?room={code}").count() == 1  # the link under the QR code
        # Eight students join (the code typed in lower case); a far too long name is refused first.
        for page in students:
            page.goto(f"{url}/quiz?room={code.lower()}", wait_until="commit")
        for page, name in zip(students, NAMES):
            _arrive(page, f"Join room {code}")
            box = page.get_by_label("Your name (the teacher sees it)")
            if name == "Flo":
                box.fill("x" * 60)
                page.get_by_role("button", name="Join").click()
                page.get_by_text("use at most 40").wait_for()
            box.fill(name)
            page.get_by_role("button", name="Join").click()
        for page, name in zip(students, NAMES):
            _settle(page, "Question 1 of 2")
            assert page.get_by_text(name, exact=False).count() >= 1  # shown as typed, as text
            assert page.locator("img[onerror]").count() == 0
        teacher.get_by_text("0 of 8 answered").wait_for()
        for name in HOSTILE:  # the names still thinking, escaped: they show as typed
            assert teacher.get_by_text(name, exact=False).count() == 1
        assert teacher.locator("img[onerror]").count() == 0
        # Everyone answers; one double-clicks, one clicks twice before the page can redraw, one taps then reloads.
        for i, page in enumerate(students):
            button = _choices(page).nth(i % 3)
            if i == 0:
                button.dblclick()
            elif i == 1:
                button.evaluate("b => { b.click(); b.click(); }")
            else:
                button.click()
        teacher.get_by_text("8 of 8 answered").wait_for()
        assert _count(db) == 8
        students[2].reload(wait_until="domcontentloaded")
        _settle(students[2], "Your answer:")
        assert students[2].get_by_text(f"Join room {code}").count() == 0  # the same student, the same place
        assert _choices(students[2]).nth(2).is_disabled()
        # Layout on a phone: the picture takes the width, the choices are thumb-sized.
        phone = students[3]
        phone.wait_for_function(LOADED, polling=100)
        assert phone.locator("[data-testid='stImage'] img").first.bounding_box()["width"] >= 0.85 * PHONE["width"]
        assert min(_choices(phone).nth(k).bounding_box()["height"] for k in range(3)) >= 48
        phone.screenshot(path=str(shots / "classroom-student.png"), full_page=True)
        # Hostile and stale codes: a clear message, nothing run.
        stale = _expired_room(db)
        for room, says in (
            ("<script>alert(1)</script>", "is not a room code"),
            ("ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY", "There is no room"),
            (stale, f"Room {stale} has ended"),
        ):
            visitor.goto(f"{url}/quiz?room={room}", wait_until="domcontentloaded")
            _settle(visitor, says)
            _no_exception(visitor)
        visitor.close()
        # Reveal: the class's answers as bars, the right one marked.
        teacher.get_by_role("button", name="Reveal the answer").click()
        _settle(teacher, "Next question")
        bars = teacher.evaluate("() => document.querySelector('.js-plotly-plot').data[0]")
        assert sum(bars["y"]) == 8 and sum(x.startswith("✓ ") for x in bars["x"]) == 1
        for page in students:
            page.get_by_text("The answer:").wait_for()
        fold = teacher.get_by_role("button", name="Next question").bounding_box()
        assert fold["y"] + fold["height"] <= PROJECTOR["height"], "the projector view does not fit 1280×720"
        _no_exception(teacher)
        teacher.screenshot(path=str(shots / "classroom-teacher.png"))
    # The server is killed (SIGKILL) and started again on the same port and database: the room goes on.
    with streamlit_server(tmp_path / "second.log", env=env, port=port) as url:
        assert f"host={host}" in teacher.url
        teacher.goto(teacher.url, wait_until="domcontentloaded")  # the teacher's own link, reloaded
        _settle(teacher, "Next question")
        teacher.get_by_role("button", name="Next question").click()
        _settle(teacher, "Question 2 of 2")
        reloaded = 0
        for page in students:  # the students' pages reconnect by themselves and follow the teacher
            try:
                page.get_by_text("Question 2 of 2").wait_for(timeout=60_000)
            except playwright.TimeoutError:  # else a reload (the token is in the link) brings them back
                reloaded += 1
                page.reload(wait_until="domcontentloaded")
                page.get_by_text("Question 2 of 2").wait_for()
        print(f"{reloaded} of {len(students)} student pages needed a reload after the restart")
        for page in students[:3]:
            _choices(page).first.click()
        teacher.get_by_text("3 of 8 answered").wait_for()
        teacher.get_by_role("button", name="Reveal the answer").click()
        _settle(teacher, "See the results")
        teacher.get_by_role("button", name="See the results").click()
        _settle(teacher, "the class's results")
        _no_exception(teacher)
        with teacher.expect_download() as info:
            teacher.get_by_role("button", name="Download every answer (CSV)").click()
        rows = list(csv.DictReader(open(info.value.path(), encoding="utf-8")))
        assert len(rows) == 11 == _count(db) and {r["room"] for r in rows} == {code}
        assert {r["student"] for r in rows} == set(NAMES)
        students[0].get_by_text("The quiz is over").wait_for()
        assert students[0].get_by_text("Your score").count() == 1
    for page in [teacher, *students]:
        page.context.close()
    assert not dialogs, f"a name or code ran as script: {dialogs}"
