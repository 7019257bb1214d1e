"""From a student's tap to the teacher's count: eight students answer at once, in real browsers.

    python bench/classroom_latency.py              # 3 questions × 8 students (24 answers)
    python bench/classroom_latency.py --quick      # 1 question

Starts its own `streamlit run` (with a room database of its own), opens a room on the Fashion-MNIST LeNet as the
teacher (1280×720), and joins 8 students (390×844 phones, headless Chromium). On each question every student's
page clicks a choice at the same instant (a timer set to one wall-clock time on each page), and the teacher's page
records when its "N of 8 answered" count changes. An answer's latency is from its click to the first moment the
teacher's count includes it (the k-th answer the database stored is shown once the count reaches k): the server's
handling of the click plus the teacher's polling interval (app/classroom_section.POLL_S) and the redraw. Also
printed: click → stored (the database's own time of the answer), the server's share.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CHROMIUM_FLAGS, IDLE, choose, parser, streamlit_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FOREGROUND = [
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
STUDENTS = 8
WATCH = """() => { window.__seen = []; new MutationObserver(() => {
    const el = document.querySelector('.st-key-cr-count');
    const m = el && el.innerText.match(/(\\d+) of (\\d+) answered/);
    if (m) window.__seen.push([+m[1], Date.now()]); }).observe(document.body, {subtree: true, childList: true,
    characterData: true}); }"""
# Each student's page clicks its choice at the same wall-clock time and notes when it did.
CLICK_AT = """([at, k]) => { setTimeout(() => {
    const b = document.querySelectorAll('.st-key-choices button')[k]; window.__clicked = Date.now(); b.click();
    }, at - Date.now()); }"""


def _settle(page, text: str, timeout_ms: int = 300_000) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout_ms)
    page.wait_for_function(IDLE, timeout=timeout_ms, polling=100)


def _stored(db: Path, question: int) -> list[float]:
    """When each answer to `question` was stored (the server's clock, seconds), in order."""
    with sqlite3.connect(db) as con:
        return sorted(r[0] for r in con.execute("SELECT at FROM answers WHERE question = ?", (question,)))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, repeats=3, quick_help="one question", device=False)
    args = p.parse_args(argv)
    questions = 1 if args.quick else args.repeats
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="classroom-bench-"))
    db = folder / "rooms.sqlite3"
    latencies, server_side = [], []
    with streamlit_server(folder / "streamlit.log", env={"PE_CLASSROOM_DB": str(db)}) as url, sync_playwright() as pw:
        # The teacher's projector page is in the foreground in a classroom; here nine pages share one headless
        # browser, and Chromium would throttle the timers (the count's polling) of the pages behind.
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + FOREGROUND)
        context = browser.new_context()
        context.set_default_timeout(300_000)  # a loaded machine: every wait ends as soon as the page shows it
        teacher = context.new_page()
        teacher.set_viewport_size({"width": 1280, "height": 720})
        teacher.goto(f"{url}/quiz?model=fmnist-lenet-0&image=fmnist:0", wait_until="domcontentloaded")
        _settle(teacher, "Open a classroom")
        teacher.get_by_text("Open a classroom").click()
        teacher.get_by_label("Questions for the class", exact=True).fill(str(questions))
        teacher.get_by_label("Choices for the class", exact=True).fill("4")
        choose(teacher, "Perturbations", "single-model only", 300)  # the pictures are not what is timed
        teacher.get_by_role("button", name="Open the room").click()
        run_anyway = teacher.get_by_role("button", name="Run anyway")
        teacher.get_by_text(f"Question 1 of {questions}").or_(run_anyway).first.wait_for(timeout=300_000)
        if run_anyway.count():
            run_anyway.click()
        _settle(teacher, f"Question 1 of {questions}")
        code = teacher.locator(".st-key-room-code").inner_text().strip()
        students = []
        for _ in range(STUDENTS):  # a context each: eight browsers, eight sessions
            c = browser.new_context(viewport={"width": 390, "height": 844})
            c.set_default_timeout(300_000)
            students.append(c.new_page())
        for page in students:
            page.goto(f"{url}/quiz?room={code}", wait_until="commit")
        for i, page in enumerate(students):
            _settle(page, f"Join room {code}")
            page.get_by_label("Your name (the teacher sees it)").fill(f"student {i + 1}")
            page.get_by_role("button", name="Join").click()
        for q in range(1, questions + 1):
            for page in students:
                try:
                    _settle(page, f"Question {q} of {questions}", 120_000)
                except PlaywrightTimeout:  # a page a loaded machine left behind: reloaded, as a person would
                    page.reload(wait_until="domcontentloaded")
                    _settle(page, f"Question {q} of {questions}")
            _settle(teacher, f"0 of {STUDENTS} answered")
            teacher.bring_to_front()
            teacher.evaluate(WATCH)
            at = int(time.time() * 1000) + 2000
            for i, page in enumerate(students):
                page.evaluate(CLICK_AT, [at, i % 4])
            teacher.get_by_text(f"{STUDENTS} of {STUDENTS} answered").wait_for(timeout=120_000)
            clicks = sorted(page.evaluate("() => window.__clicked") / 1000 for page in students)
            seen = teacher.evaluate("() => window.__seen")
            stored = _stored(db, q)
            for k, when in enumerate(stored, start=1):
                shown = min(t for n, t in seen if n >= k) / 1000
                latencies.append(shown - clicks[k - 1])
                server_side.append(when - clicks[k - 1])
            print(f"question {q}: click → count " + " ".join(f"{v:.2f}" for v in latencies[-len(stored) :]), flush=True)
            teacher.get_by_role("button", name="Reveal the answer").click()
            button = "See the results" if q == questions else "Next question"
            _settle(teacher, button)
            teacher.get_by_role("button", name=button).click()
        browser.close()
    report = {
        "students": STUDENTS,
        "answers": len(latencies),
        "click_to_teacher_count_s": {"median": statistics.median(latencies), "max": max(latencies)},
        "click_to_stored_s": {"median": statistics.median(server_side), "max": max(server_side)},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        c, s = report["click_to_teacher_count_s"], report["click_to_stored_s"]
        print(f"{STUDENTS} students answering at once, {len(latencies)} answers")
        print(f"click → teacher's count: median {c['median']:.2f} s, max {c['max']:.2f} s")
        print(f"click → stored in the database: median {s['median']:.2f} s, max {s['max']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
