"""What every bench script shares: timing to completion, medians with their spread, common flags."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch


def timed(fn):
    """(seconds, result) of `fn()`, waiting for queued GPU work on both sides: CUDA calls return early."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def spread(values: list[float]) -> dict:
    return {"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values), "n": len(values)}


def fooled(model, adv: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per image: the model now gives the target (targeted) or anything but the label (untargeted)."""
    with torch.no_grad():
        pred = model(adv).argmax(1)
    return pred == labels if targeted else pred != labels


def cell(spread: dict | None) -> str:
    """A `spread` as 'median (min–max)' seconds, '—' when absent."""
    return "—" if spread is None else f"{spread['median_s']:.3f} ({spread['min_s']:.3f}–{spread['max_s']:.3f})"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def parser(doc: str, repeats: int, quick_help: str | None = None, device: bool = True) -> argparse.ArgumentParser:
    """--repeats, --quick (CI smoke mode), --json and, where the script can use a GPU, --device."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--json", action="store_true")
    if device:
        p.add_argument("--device", default="cpu")
    return p


ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(
    log: Path, timeout_s: float = 90.0, env: dict | None = None, port: int | None = None, stop: int = signal.SIGTERM
):
    """`streamlit run app/main.py` on `port` (default: a free one) of 127.0.0.1, as a user starts it (with `env`
    added to the environment); yields its URL. Leaving sends `stop` (SIGKILL: a crash, nothing shut down)."""
    port = free_port() if port is None else port
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app/main.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
                # Nothing here edits the app's sources, and a source change seen mid-run would put a
                # "rerun?" prompt in the page that no test or bench waits for.
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a script thread deep in a long computation does not stop at once
            proc.kill()
            proc.wait(timeout=20)


def two_cores() -> None:
    """The figures are for a two-core machine: at most two torch threads, and never more than the caller had (a
    test runs a bench's quick mode with its worker's share of the cores, beside another worker)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))


# The app at rest: Streamlit marks its root with the script's state, its running badge is gone, no skeleton
# waits for a chart, and Plotly has laid out every chart (it draws after the data arrives). Every such wait here
# and in tests/ polls every 100 ms: Playwright's default, every animation frame, keeps headless Chromium drawing
# frames while it waits (0.85 CPU-s in a 5 s wait against 0.05).
IDLE = """() => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning'
    && !document.querySelector('[data-testid=stStatusWidget]')
    && !document.querySelector('[data-testid=stMain] [data-testid=stSkeleton]')
    && [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')].every(
        p => p._fullLayout && p.querySelector('.main-svg'))"""


def at_rest(page, timeout_s: float) -> None:
    """Until the app is at rest twice, a moment apart: a rerun that a click asked for reaches the page a moment
    later, and a single look could land before it."""
    for _ in range(2):
        page.wait_for_function(IDLE, timeout=max(timeout_s, 0.001) * 1000, polling=100)
        page.wait_for_timeout(400)


# Counts the app's finished runs from now on, and notes whether a run has started since (Streamlit marks its root
# with the script's state; the frontend leaves "notRunning" the moment it sends a click, whatever the server's load).
# The observer watches the whole document, not the root element it first found: were that element ever replaced,
# an observer of the old one would never see another run, and every later wait would run to its bound. It reads
# each change's old value as well as the state now: a busy page hands over several changes at once, and by then
# the state may be back at "notRunning" with only the old values telling that a run came and went.
WATCH_RUNS = """() => {
    if (!window.__runs) {
        window.__runs = {done: 0, running: false, started: false};
        new MutationObserver(records => {
            for (const record of records) {
                const before = record.oldValue, s = record.target.getAttribute('data-test-script-state');
                if (s !== 'notRunning' || (before && before !== 'notRunning')) window.__runs.started = true;
                if (s === 'running' || before === 'running') window.__runs.running = true;
                if (s === 'notRunning' && window.__runs.running) {
                    window.__runs.running = false;
                    window.__runs.done++;
                }
            }
        }).observe(document.documentElement, {attributes: true, subtree: true, attributeOldValue: true,
                                              attributeFilter: ['data-test-script-state']});
    }
    window.__runs.done = 0;
    window.__runs.started = false;
}"""


def click_to_run(page, button, tries: int = 3, patience_s: float = 20) -> None:
    """Click `button` (a locator) and see the app take the click: its script starts. A person whose click did
    not take (a layout shift under the pointer, a frame redrawn mid-click) clicks again, and so does this; a click
    that took is never repeated, so nothing runs twice."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        page.evaluate(WATCH_RUNS)
        button.click()
        try:
            page.wait_for_function("() => window.__runs.started", timeout=patience_s * 1000, polling=100)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


def choose(page, label: str, option: str, timeout_s: float = 120) -> None:
    """Pick `option` in the selectbox labelled `label`, as a person does: open it, type, click the entry, and
    see the box show it.

    A person whose list closed before they picked opens it again, and so does this: a rerun under way replaces
    the box (and closes its list), and the scroll that brings a box into view closes a list opened mid-scroll.
    Each try waits for what the page shows (the app at rest, the list open, the entry), a little longer each
    time; only the whole choice is bounded, by `timeout_s`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    box = page.get_by_label(label, exact=True).first
    entry = page.get_by_role("option", name=option, exact=True).first
    deadline = time.monotonic() + timeout_s
    patience_ms = 2_000
    while True:
        left_ms = (deadline - time.monotonic()) * 1000
        try:
            page.wait_for_function(IDLE, timeout=max(left_ms, 1), polling=100)
            box.scroll_into_view_if_needed(timeout=patience_ms)
            box.click(timeout=patience_ms)  # the list opens on the press
            expect(box).to_have_attribute("aria-expanded", "true", timeout=patience_ms)
            # Long lists are virtualised: filter as a person would, by typing, or the entry may never show.
            page.keyboard.type(option[:12])
            entry.click(timeout=patience_ms)
            expect(box).to_have_value(option, timeout=patience_ms)
            return
        except (AssertionError, PlaywrightTimeout):
            if time.monotonic() >= deadline:
                raise
            # Close the list and let go of the box, which drops what was typed: the next try types afresh.
            if page.evaluate("() => document.activeElement?.getAttribute('aria-expanded') === 'true'"):
                page.keyboard.press("Escape")
            page.evaluate("() => document.activeElement?.blur()")
            patience_ms = min(2 * patience_ms, 30_000)
