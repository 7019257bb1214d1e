"""The teacher's deck and the booth's first screen, in a real browser at a projector's sizes.

Every slide must end inside the screen (no scrolling) with no text under 16 px; the deck opens with the
sidebar folded and pages with ← and →; the Explorer's first screen at 1280×720 shows the headline and
the three pictures. Screenshots of every slide go to the screenshot folder (docs/screenshots/deck/ with
UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_browser import FMNIST, IDLE, _headline, _no_exception, _open, _settle

pytestmark = [pytest.mark.slow]

# Every element of the page's main column: its bottom edge and its smallest text, in CSS pixels.
MEASURE = """() => {
  const main = document.querySelector('.stMainBlockContainer');
  let bottom = 0, small = [];
  for (const el of main.querySelectorAll('[data-testid="stElementContainer"], .stPlotlyChart')) {
    const r = el.getBoundingClientRect();
    if (r.height > 0) bottom = Math.max(bottom, r.bottom);
  }
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const t = walker.currentNode, el = t.parentElement;
    if (!t.textContent.trim() || el.getBoundingClientRect().width === 0) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < 16) small.push(`${size}px: ${t.textContent.trim().slice(0, 30)}`);
  }
  const scroller = document.querySelector('.stMain');
  return {bottom, small, height: innerHeight, scrolls: scroller.scrollHeight > scroller.clientHeight + 1};
}"""

SLIDE_FIGURES = ("deck-pictures", "deck-views", "deck-heat", "deck-spectrum", "deck-models")


def _press(page, key: str, slide: int) -> None:
    """Press `key` until the link names `slide` (from 1). A press that reaches the page while Streamlit redraws
    the slide bar is lost: the app then comes to rest on the old slide, and only then is the key pressed again."""
    for _ in range(3):
        page.keyboard.press(key)
        try:
            page.wait_for_function(f"() => location.search.includes('slide={slide}')", timeout=20_000, polling=100)
            return
        except PlaywrightTimeout:
            page.wait_for_function(IDLE, timeout=240_000, polling=100)
            if f"slide={slide}" in page.url:
                return
    raise AssertionError(f"{key} never took the deck to slide {slide}")


def _slide(page, index: int) -> None:
    """Wait until slide `index` (from 0) shows its figure and the run has finished."""
    page.locator(f".st-key-{SLIDE_FIGURES[index]} .js-plotly-plot").wait_for(timeout=120_000)
    _settle(page, "Next ▶")


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)])
def test_every_slide_fits_the_screen_in_large_type_and_the_arrow_keys_page(server, browser, shots, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    _open(page, f"{server}/?present=1", "Next ▶")
    for index in range(len(SLIDE_FIGURES)):
        _slide(page, index)
        _no_exception(page)
        m = page.evaluate(MEASURE)
        assert m["bottom"] <= m["height"], f"slide {index + 1} ends at {m['bottom']:.0f} px of {m['height']}"
        assert not m["scrolls"], f"slide {index + 1} scrolls"
        assert not m["small"], f"slide {index + 1} has text under 16 px: {m['small'][:5]}"
        sizes = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot text')].filter(t => t.textContent"
            ".trim()).map(t => parseFloat(t.style.fontSize || getComputedStyle(t).fontSize))"
        )
        assert sizes and min(sizes) >= 16, f"slide {index + 1}: chart text at {min(sizes)} px"
        assert _headline(page).startswith("PGD")  # every slide keeps the result it is about
        page.screenshot(path=str(shots / f"deck-{width}x{height}-{index + 1}.png"))
        if index < len(SLIDE_FIGURES) - 1:
            _press(page, "ArrowRight", index + 2)
    _press(page, "ArrowLeft", 4)
    _slide(page, 3)
    link = page.url
    page.close()
    context = browser.window(viewport={"width": width, "height": height})  # no session: the link alone
    again = context.new_page()
    _open(again, link, "Next ▶")  # the link reruns its attack: past the gate where this machine prices it long
    _slide(again, 3)
    assert (
        again.locator(".st-key-deck-nav [aria-checked='true'], .st-key-deck-nav [aria-pressed='true']")
        .first.inner_text()
        .startswith("4 ·")
    )
    context.close()


def test_turning_the_deck_on_folds_the_sidebar_and_its_controls_stay_whole(server, browser, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    _open(page, f"{server}/?{FMNIST}")
    sidebar = page.locator("[data-testid='stSidebar']")
    assert sidebar.bounding_box()["x"] >= 0  # open on a desktop-sized screen
    page.get_by_text("Presentation mode").click()
    _slide(page, 0)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stSidebar\"]').getBoundingClientRect().right <= 0", polling=100
    )
    # With the sidebar opened again the slide bar's buttons keep their whole words.
    page.locator("[data-testid='stExpandSidebarButton']").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stSidebar\"]').getBoundingClientRect().right > 0", polling=100
    )
    for name in ("◀ Back", "Next ▶"):
        button = page.get_by_role("button", name=name)
        assert button.evaluate("b => b.scrollWidth <= b.clientWidth + 1"), f"{name} is cut"
    # Attack settings live in the sidebar while presenting, never under the app's header.
    settings = page.locator("[data-testid='stSidebar'] summary").filter(has_text="Attack settings")
    assert settings.count() == 1
    header = page.locator("[data-testid='stHeader']").bounding_box()
    nav = page.locator(".st-key-deck-nav").bounding_box()
    assert nav["y"] >= header["y"] + header["height"] - 1, (nav, header)
    page.screenshot(path=str(shots / "deck-sidebar-open.png"))
    page.close()


def test_the_first_screen_shows_the_headline_and_the_three_pictures(server, browser, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    _open(page, f"{server}/")
    _no_exception(page)
    headline = page.locator(".st-key-headline h3")
    box = headline.bounding_box()
    assert box["y"] + box["height"] <= 720
    lines = page.evaluate(
        "() => { const r = document.createRange(); r.selectNodeContents(document.querySelector("
        "'.st-key-headline h3').firstChild); return new Set([...r.getClientRects()].map(b => "
        "Math.round(b.top))).size; }"
    )
    assert lines == 1, f"the headline takes {lines} lines"
    pictures = page.locator(".st-key-pictures .js-plotly-plot").bounding_box()
    assert pictures["y"] + pictures["height"] <= 720, pictures
    images = page.locator(
        ".st-key-pictures .js-plotly-plot .layer-subplot image, .st-key-pictures .js-plotly-plot image"
    )
    assert images.count() >= 3
    page.screenshot(path=str(shots / "first-screen-1280x720.png"))
    page.close()
