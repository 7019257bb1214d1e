"""Every lab page's default, as a visitor meets it (headless Chromium, Debian's package, driven by Playwright, at
1280×720): on the photos (the app's default world), on Fashion-MNIST (picked in the sidebar) and, for the Transfer
lab, on a user's own model. Each page's default computation runs to the end; then no chart may be all zero (or
empty) without a sentence in it, and each page says in words what it shows. Screenshots go to a temporary folder,
or to DEFAULTS_SHOTS=DIR. Skipped, with the reason, where Chromium is not installed (under CI, failed)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import require

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sys.path.insert(0, str(ROOT / "bench"))
import browser_own_model as byo  # noqa: E402  (the app server is conftest's `server`)
from bench_common import click_to_run  # noqa: E402

playwright = require("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium: apt-get install chromium"),
]

SAYS = "What it shows:"
# navigation title, the button that starts the default computation, the text its result shows
PAGES = {
    "transfer": ("Transfer lab", "Run sweep", SAYS),
    "anatomy": ("Anatomy of a perturbation", "Average", "Contour vs background"),
    "jsma": ("JSMA lab", "Run JSMA", SAYS),
    "patch": ("Patch distance", "Place the patch", "Numbers per distance"),
    "features": ("Feature space", "Compute", "Plane distance to target"),
    "quiz": ("Perturbation quiz", "Start", "Question 1 of"),
    "sweeps": ("Sweep results", "Run a small example sweep", SAYS),
}

# Per chart: its title, whether every y/z value it plots is 0 or missing, and the sentences written inside it.
# Plotly keeps the decoded arrays in _fullData (data may hold base64-typed arrays).
CHARTS = """() => [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')].map(p => {
    const values = [];
    for (const t of (p._fullData || p.data || [])) {
        if (t.type === 'image' || t.visible === false) continue;
        for (const key of ['y', 'z']) {
            const v = t[key];
            if (v && typeof v.length === 'number' && typeof v !== 'string') {
                for (const item of v) {
                    if (item && typeof item === 'object' && typeof item.length === 'number') values.push(...item);
                    else values.push(item);
                }
            }
        }
    }
    const numbers = values.filter(v => typeof v === 'number' && isFinite(v));
    const notes = ((p._fullLayout || p.layout || {}).annotations || []).map(a => a.text || '')
        .filter(text => text.replace(/<br>/g, ' ').split(/\\s+/).length >= 4);
    const pictures = (p._fullData || p.data || []).some(t => t.type === 'image');
    return {title: ((p.layout || {}).title || {}).text || '', pictures,
            flat: !pictures && numbers.every(v => v === 0), count: numbers.length, notes,
            last: numbers.length ? numbers[numbers.length - 1] : null};
})"""
# Streamlit draws a skeleton where a chart goes until Plotly has loaded: every one replaced, every chart laid out.
DRAWN = """() => !document.querySelector('[data-testid=stMain] [data-testid=stSkeleton]') &&
    [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')].every(
        p => p._fullLayout && p.querySelector('.main-svg'))"""


# The revealed quiz pictures that are a single flat colour (an attack that changed nothing), by caption. Each
# picture is read once it has loaded and decoded: a canvas drawn from a picture still arriving stays transparent,
# one flat colour, whatever the picture holds.
BLANK_PICTURES = """async () => {
    const boxes = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage]')];
    await Promise.all(boxes.map(box => box.querySelector('img')?.decode().catch(() => null)));
    return boxes.filter(box => {
        const img = box.querySelector('img');
        if (!img || !img.naturalWidth) return false;
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 4; i < pixels.length; i += 4) {
            if (pixels[i] !== pixels[0] || pixels[i + 1] !== pixels[1] || pixels[i + 2] !== pixels[2]) return false;
        }
        return true;
    }).map(box => box.innerText);
}"""


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = (
        Path(os.environ["DEFAULTS_SHOTS"])
        if os.environ.get("DEFAULTS_SHOTS")
        else tmp_path_factory.mktemp("defaults-screenshots")
    )
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def _frames(page) -> None:
    """Two animation frames: the charts have been laid out at the window's present size."""
    page.wait_for_function(
        "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))", polling=100
    )


def _screenshot(page, path: Path) -> None:
    """The first screen as a visitor sees it, and the whole page (the app scrolls inside its main area)."""
    _frames(page)
    page.screenshot(path=str(path.with_name(path.stem + "-screen.png")))
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": byo.VIEWPORT["width"], "height": min(max(height, byo.VIEWPORT["height"]), 5000)})
    _frames(page)
    page.wait_for_function(DRAWN, polling=100)
    page.screenshot(path=str(path))
    page.set_viewport_size(byo.VIEWPORT)


def _default_result(page, name: str) -> None:
    """Open page `name` from the navigation, press its button, and wait until its result is drawn."""
    title, button, marker = PAGES[name]
    byo.go_to(page, title)
    page.wait_for_function(
        "t => document.querySelector('[data-testid=stMain] h1')?.innerText.startsWith(t)",
        arg=title,
        timeout=120_000,
        polling=100,
    )
    byo.wait_idle(page)  # the page before's elements are gone: a marker found now is this page's
    _click_and_wait(page, button, marker)
    assert page.locator("[data-testid='stException']").count() == 0, byo.main_text(page)[:2000]
    assert page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']").count() == 0


def _no_silent_empty_chart(page, where: str) -> list[dict]:
    charts = page.evaluate(CHARTS)
    silent = [c for c in charts if c["flat"] and not c["notes"]]
    assert not silent, f"{where}: all-zero or empty charts without a sentence: {[c['title'] for c in silent]}"
    return charts


def _says_what_it_shows(page, where: str) -> str:
    said = page.get_by_text(SAYS).first
    said.wait_for()
    text = said.locator("xpath=..").inner_text()
    assert len(text.split()) >= 8, f"{where}: {text!r}"
    return text


def _titles_clear_of_the_toolbar(page, where: str) -> None:
    """Hovering a chart shows Plotly's toolbar: it must not cover the chart's title or a picture's title."""
    for chart in page.locator("[data-testid='stMain'] .js-plotly-plot").all():
        chart.hover()
        bar = chart.locator(".modebar")
        bar.wait_for(state="visible")
        box = bar.bounding_box()
        for title in chart.locator(".gtitle, .annotation-text").all():
            t = title.bounding_box()
            if not t or not (title.text_content() or "").strip():  # SVG text: no innerText
                continue
            overlap = not (
                t["x"] + t["width"] <= box["x"]
                or box["x"] + box["width"] <= t["x"]
                or t["y"] + t["height"] <= box["y"]
                or box["y"] + box["height"] <= t["y"]
            )
            assert not overlap, f"{where}: the toolbar covers the title {title.text_content()!r}"


def _pick_fashion_mnist(page) -> None:
    byo.rerun_done(page, lambda: byo.choose(page, "White-box model", "fmnist-lenet-0"))
    byo.wait_idle(page)


def _visit(page, world: str, names, shots: Path, checks: dict | None = None) -> dict[str, list[dict]]:
    """Each page's default on this session's world; `checks` (page → function of the page) add what only that
    page must show."""
    found = {}
    for name in names:
        started = time.monotonic()
        _default_result(page, name)
        print(f"{world} {name}: {time.monotonic() - started:.0f} s to the result")  # where the file's time goes
        where = f"{world} {name}"
        found[name] = _no_silent_empty_chart(page, where)
        _says_what_it_shows(page, where)
        if checks and name in checks:
            checks[name](page)
        _screenshot(page, shots / f"{world}-{name}.png")
    return found


def _open(browser, server):
    context = browser.window(viewport=byo.VIEWPORT)
    page = context.new_page()
    page.goto(server + "/guide", wait_until="domcontentloaded")
    page.get_by_text("Bring your own model").first.wait_for(timeout=240_000)
    byo.wait_idle(page)
    return context, page


def _jsma_reaches(page) -> None:
    headline = page.locator("[data-testid='stMain'] h3").first.inner_text()
    assert headline.endswith("reached"), headline  # the default target (the runner-up) is reached


def _jsma_reaches_and_draws_its_curve(page) -> None:
    """On photos the curve once sat near 12 %: most of its photos now reach their target within its Υ."""
    _jsma_reaches(page)
    _click_and_wait(page, "Compute the curve", "JSMA success towards")
    curve = next(c for c in _no_silent_empty_chart(page, "jsma curve") if "JSMA success" in c["title"])
    assert curve["last"] >= 0.5, curve
    assert page.get_by_text(SAYS).count() == 2  # the run's sentence and the curve's


def _click_and_wait(page, button: str, marker: str) -> None:
    """Click `button` and wait for `marker` (confirming a run this machine prices as long), then for the charts."""
    click_to_run(page, page.get_by_role("button", name=button).first)
    anyway = page.get_by_role("button", name="Run anyway")
    page.get_by_text(marker).or_(anyway).first.wait_for(timeout=300_000)
    if anyway.count():
        anyway.first.click()
        page.get_by_text(marker).first.wait_for(timeout=300_000)
    byo.wait_idle(page)
    page.wait_for_function(DRAWN, polling=100)


def _quiz_table_fits(page) -> None:
    """The default quiz taken by clicking (the first question answered, the rest skipped): the score says what it
    means, and its table's every column, "chance" last, is on the screen."""
    total = int(page.get_by_text("Question 1 of").first.inner_text().rsplit(" ", 1)[1])
    page.locator("[data-testid='stForm'] [data-testid='stRadioOption']").first.click()
    page.locator("[class*='-0-Next'] button").click()
    for k in range(1, total):
        # Question k's own Skip (its form is keyed by k): the one before may still be on screen mid-rerun.
        page.locator(f"[class*='-{k}-Skip'] button").click()
    page.get_by_text("Your score").first.wait_for()
    byo.wait_idle(page)
    _says_what_it_shows(page, "quiz score")
    table = page.locator("[data-testid='stMain'] [data-testid='stTable']").first
    chance = table.get_by_text("chance", exact=True).first
    box, screen = chance.bounding_box(), page.viewport_size
    assert box and box["x"] + box["width"] <= screen["width"], box
    assert table.evaluate("t => t.scrollWidth <= t.clientWidth + 1"), "the score table scrolls sideways"
    blank = page.evaluate(BLANK_PICTURES)
    assert blank == [], f"questions whose perturbation is one flat colour: {blank}"


def _transfer_draws_targeted_rates(page) -> None:
    """The photos' default sweep (AA on the default model) finds a target image for every photo, says the few
    photos that count instead of hiding them, and draws its rates on the whole 0-100 % scale."""
    titles = [c["title"] for c in page.evaluate(CHARTS)]
    assert any("tSuc on" in t for t in titles), titles  # Streamlit wraps a title in <b>
    _titles_clear_of_the_toolbar(page, "transfer")
    assert page.get_by_text("could not finish").count() == 0
    assert page.get_by_text("count here").count() == 1
    ranges = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')].map(p => p.layout.yaxis.range)"
    )
    assert ranges and all(r == [-0.02, 1.02] for r in ranges), ranges


def _features_says_why(page) -> None:
    """The gallery has at most two photos of a class: the curve says how little it rests on, and the input-pixel
    line is drawn only where it is defined."""
    assert page.get_by_text("not defined here").count() + page.get_by_text("is a hint, not a measurement").count() == 1


def _anatomy_checks(page) -> None:
    _titles_clear_of_the_toolbar(page, "anatomy")
    # The sweep spans the image, so a mask covering 90 % of it still gives a curve that moves.
    assert page.get_by_text("The mask covers 90% of the image").count() == 1
    assert any("mask area" in c["title"] for c in page.evaluate(CHARTS))


def _patch_draws_its_patch(page) -> None:
    # The view starts where the patch fits: a patch is drawn and the model's answer to it is given.
    assert page.get_by_text("the model now says").count() == 1, byo.main_text(page)[:1500]
    assert page.get_by_text("would leave the image").count() == 0


# The photos' pages in two sessions: each test stays well inside the suite's 10-minute limit on a busy machine.
@pytest.mark.parametrize(
    "names",
    [("transfer", "jsma", "anatomy"), ("patch", "features", "sweeps", "quiz")],
    ids=["transfer-jsma-anatomy", "patch-features-sweeps-quiz"],
)
def test_photo_defaults_show_something(server, browser, shots, names):
    context, page = _open(browser, server)
    try:
        _visit(
            page,
            "photos",
            names,
            shots,
            {
                "transfer": _transfer_draws_targeted_rates,
                "jsma": _jsma_reaches_and_draws_its_curve,
                "anatomy": _anatomy_checks,
                "patch": _patch_draws_its_patch,
                "features": _features_says_why,
            },
        )
    finally:
        context.close()


def _shows(text: str):
    def check(page) -> None:
        assert page.get_by_text(text).count() >= 1, byo.main_text(page)[:1500]

    return check


def _jsma_reaches_and_marks_its_changes(page) -> None:
    _jsma_reaches(page)
    _shows("changed features in red")(page)


# The README's pictures of these pages are this walk's screenshots (UPDATE_SCREENSHOTS=1 writes them).
README_PAGES = ("transfer", "features", "anatomy", "jsma")


def test_fashion_mnist_defaults_show_something(server, browser, shots):
    context, page = _open(browser, server)
    try:
        _pick_fashion_mnist(page)
        _visit(
            page,
            "fmnist",
            ["transfer", "jsma", "anatomy", "patch", "features", "sweeps", "quiz"],
            shots,
            {
                "transfer": _shows("tSuc on fmnist-resnet-1"),
                "jsma": _jsma_reaches_and_marks_its_changes,
                "patch": _patch_draws_its_patch,
                "quiz": _quiz_table_fits,
            },
        )
    finally:
        context.close()
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for name in README_PAGES:
            shutil.copyfile(shots / f"fmnist-{name}.png", ROOT / "docs" / "screenshots" / f"{name}.png")


def test_own_model_transfer_default_says_what_it_shows(server, browser, shots, tmp_path):
    import own_world

    typed = {
        "Mean per channel": ", ".join(map(str, own_world.META["mean"])),
        "Std per channel": ", ".join(map(str, own_world.META["std"])),
        "Class names, one per line": "\n".join(own_world.META["class_names"]),
        "Domain": own_world.META["domain"],
    }
    for which in ("white", "black"):
        (tmp_path / f"{which}.onnx").write_bytes(byo.onnx_bytes(which))
    (tmp_path / "images.zip").write_bytes(own_world.zip_bytes())
    context, page = _open(browser, server)
    try:
        for which in ("white", "black"):
            byo.add_model(page, tmp_path / f"{which}.onnx", typed)
        byo.pick_white_box_and_images(page, "white", tmp_path / "images.zip")
        _visit(page, "own", ["transfer"], shots)
        text = byo.main_text(page)
        assert "Fashion-MNIST" not in text, text[:2000]  # the own world's text is its own
    finally:
        context.close()
