"""The real app in a real browser: headless Chromium (Debian's package) driven by Playwright.

Starts `streamlit run app/main.py` on a free local port, opens every page, runs
its default computation and checks the result panels rendered. Screenshots go
to a temporary folder, or to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (the
README's pictures). Skipped, with the reason, where Chromium is not installed.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-test.txt")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium: apt-get install chromium")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start: {log.read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        folder = ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")


def _settle(page, text: str, timeout_s: int = 240) -> None:
    """A cold server's first paint is blank: wait for `text`, then for the app to stop running."""
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_s * 1000)
    page.wait_for_timeout(1500)  # Plotly draws after the data arrives


def _no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator("[data-testid='stException']").first.inner_text()


def test_explorer_default_example(server, browser, shots):
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(server + "/", wait_until="domcontentloaded")
    _settle(page, "SSIM")
    _no_exception(page)
    assert "→" in page.locator("h3").first.inner_text()  # "Egyptian cat → … (fooled)"
    assert page.locator(".js-plotly-plot").count() >= 7  # pictures, heat maps, spectrum, bars of two models
    assert page.get_by_text("Numbers (JSON)").count() == 1
    page.screenshot(path=str(shots / "explorer.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("path,button,expect", [
    ("transfer", "Run sweep", "tSuc on fmnist-resnet-1"),
    ("features", "Compute", "PCA plane"),
    ("anatomy", "Average", "Contour vs background"),
    ("jsma", "Run JSMA", "changed features in red"),
])
def test_every_page_runs_its_analysis(server, browser, shots, path, button, expect):
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{server}/{path}?model=fmnist-lenet-0&image=fmnist:0", wait_until="domcontentloaded")
    _settle(page, button)
    page.get_by_role("button", name=button).first.click()
    _settle(page, expect)
    _no_exception(page)
    page.screenshot(path=str(shots / f"{path}.png"), full_page=True)
    page.close()


def test_presentation_mode(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server + "/?model=fmnist-lenet-0&image=fmnist:0", wait_until="domcontentloaded")
    _settle(page, "SSIM")
    page.get_by_text("Presentation mode").click()
    _settle(page, "1 · The attack")
    _no_exception(page)
    assert page.get_by_text("An adversarial example is").count() >= 1
    page.screenshot(path=str(shots / "presentation.png"), full_page=True)
    page.close()
