"""A researcher's own world in a real browser (headless Chromium, Debian's package, driven by Playwright, at
1280×720): their two models as ONNX files with the metadata typed into the form, their labelled pictures, and
every page run on them. Screenshots go to a temporary folder, or with UPDATE_SCREENSHOTS=1 the Explorer's and
the Transfer lab's also to docs/screenshots/own_model_*.png. Skipped, with the reason, where Chromium is not
installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sys.path.insert(0, str(ROOT / "bench"))
import browser_own_model as byo  # noqa: E402
from bench_common import streamlit_server  # noqa: E402

playwright = require("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium: apt-get install chromium"),
]

PICTURES = "[data-testid='stMain'] img, [data-testid='stMain'] .js-plotly-plot"
DOCS = {"Explorer": "own_model_explorer.png", "Transfer lab": "own_model_transfer.png"}


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    """The walk's own app server, without the suite's data root (on the suite's server the Transfer lab showed
    nothing for the uploaded models: not yet explained)."""
    try:
        with streamlit_server(tmp_path_factory.mktemp("server") / "streamlit.log") as url:
            yield url
    except RuntimeError as err:
        pytest.fail(str(err))


def _files(folder: Path) -> dict[str, tuple[Path, dict[str, str]]]:
    """The white and black boxes as ONNX graphs, with what a person types for them, and the labelled pictures."""
    import own_world

    meta = own_world.META
    typed = {
        "Mean per channel": ", ".join(map(str, meta["mean"])),
        "Std per channel": ", ".join(map(str, meta["std"])),
        "Class names, one per line": "\n".join(meta["class_names"]),
        "Domain": meta["domain"],
    }
    files = {}
    for which in ("white", "black"):
        path = folder / f"{which}.onnx"
        path.write_bytes(byo.onnx_bytes(which))
        files[which] = (path, typed)
    (folder / "images.zip").write_bytes(own_world.zip_bytes())
    return files


def _screenshot(page, path: Path) -> None:
    """The whole page: the app scrolls inside its own main area, so the window is made as tall as the page."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": byo.VIEWPORT["width"], "height": min(max(height, byo.VIEWPORT["height"]), 4000)})
    # Two animation frames: the charts have been laid out again at the new size.
    page.wait_for_function(
        "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))", polling=100
    )
    page.screenshot(path=str(path))
    page.set_viewport_size(byo.VIEWPORT)


def test_own_onnx_models_and_pictures_work_on_every_page(bare_server, browser, tmp_path):
    server = bare_server
    files = _files(tmp_path)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.window(viewport=byo.VIEWPORT)
    page = context.new_page()
    try:
        page.goto(server + "/", wait_until="domcontentloaded")
        page.get_by_text("Bring your own model").first.wait_for(timeout=240_000)
        byo.wait_idle(page)
        for which in ("white", "black"):
            assert byo.add_model(page, *files[which]) == which
        # The note about the last model added is where the button was pressed, and says what to do next.
        note = page.locator("[data-testid='stSidebar'] [data-testid='stAlertContentSuccess']")
        said = "Added black: 10 classes (red square, red disk, red cross, …), domain shapes."
        assert note.inner_text().startswith(said)
        assert note.is_visible() and note.bounding_box()["y"] < byo.VIEWPORT["height"]
        page.locator("[data-testid='stSidebar']").screenshot(path=str(shots / "sidebar-added.png"))
        byo.pick_white_box_and_images(page, "white", tmp_path / "images.zip")
        section = page.locator("[data-testid='stSidebar'] details").filter(
            has=page.locator("summary", has_text="Bring your own model")
        )
        assert section.get_attribute("open") is None  # folded once the new model is picked: the pictures come next
        for title, button, marker in byo.PAGES:
            result = byo.first_result(page, title, button, marker)
            assert result["seconds"] is not None, f"{title}: {result['sentence']}"
            page.locator(PICTURES).first.wait_for(timeout=120_000)
            byo.wait_idle(page)
            text = byo.main_text(page)
            assert not byo.ERRORS.search(text), f"{title}: {byo.ERRORS.search(text).group(0)} in {text[:2000]}"
            assert page.locator("[data-testid='stException']").count() == 0
            assert page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']").count() == 0
            page.screenshot(path=str(shots / f"{title.split()[0].lower()}-screen.png"))
            _screenshot(page, shots / f"{title.split()[0].lower()}.png")
            if title in DOCS and os.environ.get("UPDATE_SCREENSHOTS") == "1":
                shutil.copy(shots / f"{title.split()[0].lower()}.png", ROOT / "docs" / "screenshots" / DOCS[title])
    finally:
        print(f"screenshots: {shots}")
        context.close()


def test_bench_quick_mode_times_two_pages(server):
    """The bench script trains its TorchScript model and times two pages, here on the suite's app server (its own
    process: Playwright's sync API runs one browser driver per thread, and the suite's is open)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "browser_own_model.py"), "--quick", "--url", server],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| TorchScript |"))
    assert re.fullmatch(r"\| TorchScript \| [\d.]+ \| [\d.]+ \|", row), done.stdout
