"""The Anatomy page's universal perturbation: fitted and judged in a real browser at 1280×720, and the note a
user's model without images gets instead (Streamlit AppTest)."""

from __future__ import annotations

import re

import pytest
from test_browser import FMNIST, _no_exception, _open, _result

pytestmark = [pytest.mark.slow]

HEADING = "One perturbation for every image (universal)"
BUTTON = "Fit one perturbation for every image"
SCROLL_UNDER_HEADER = """e => {
    e.scrollIntoView({block: 'start'});
    let box = e.parentElement;
    while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowY)) box = box.parentElement;
    (box || document.scrollingElement).scrollBy(0, -70);
}"""


def _metric(page, label: str) -> str:
    shown = page.locator("[data-testid='stMetric']").filter(has_text=label)
    return shown.locator("[data-testid='stMetricValue']").inner_text()


def test_the_universal_section_fits_v_and_judges_it_on_held_out_images(server, browser, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    _open(page, f"{server}/anatomy?{FMNIST}", BUTTON)
    form = page.locator("[data-testid='stForm']").filter(has=page.get_by_label("Images fitted on"))
    assert form.get_by_label("Images fitted on").input_value() == "128"  # the domain's default
    # Fewer images and passes than the default: the same page path in a second or two.
    form.get_by_label("Images fitted on").fill("64")
    form.get_by_label("Passes over the images at most").fill("2")
    page.get_by_role("button", name=BUTTON).click()
    held = page.locator("[data-testid='stMetric']").filter(has_text="Fooled, held out")
    _result(page, held)
    _no_exception(page)
    rates = [_metric(page, label) for label in ("Fooled, held out", "Noise of its size", "Fooled, fitted")]
    assert all(re.fullmatch(r"\d+%", r) for r in rates), rates
    picture = page.locator("[data-testid='stImage']").filter(has_text="v: mid-grey is no change")
    assert picture.count() == 1 and picture.locator("img").first.bounding_box()["width"] >= 150  # enlarged
    bars = page.locator(".js-plotly-plot").filter(has_text="where the flipped held-out images land")
    assert bars.count() == 1
    assert page.get_by_text("Fitted on the first 64 Fashion-MNIST test images, judged on the next 512.").count()
    # The result on screen, just clear of the app's 60 px header: it fills the 720 px screen.
    picture.evaluate(SCROLL_UNDER_HEADER)
    page.screenshot(path=str(shots / "anatomy-universal.png"))


def test_a_model_without_images_gets_a_note_not_a_traceback():
    import own_world
    from test_app_own_world import clean, session

    at = session({"own-white": own_world.classifier("white")}, False)
    at.switch_page("views/anatomy.py").run()
    clean(at)
    assert HEADING in [h.value for h in at.header]
    notes = " ".join(i.value for i in at.info)
    assert "The universal perturbation needs labelled images of own-white's classes" in notes, notes
