"""The Explorer's one-click side by side of FGSM, DeepFool and Mask-FGSM, in a real browser at 1280×720."""

from __future__ import annotations

import re

import pytest
from test_browser import FMNIST, _click_until, _no_exception, _open
from test_browser_universal import SCROLL_UNDER_HEADER

from app.compare_section import BUTTON

pytestmark = [pytest.mark.slow]
METHODS = {"fgsm": "FGSM", "deepfool": "DeepFool", "maskfgsm": "Mask-FGSM"}


def test_the_compare_button_shows_three_columns_with_their_numbers(server, browser, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    _open(page, f"{server}/?{FMNIST}&attack=fgsm", BUTTON)
    assert page.locator(".st-key-side-by-side-fgsm").count() == 0  # nothing runs before the click
    columns = [page.locator(f".st-key-side-by-side-{name}") for name in METHODS]
    _click_until(page, BUTTON, columns[-1].get_by_text("Success"))
    _no_exception(page)
    lefts = []
    for column, title in zip(columns, METHODS.values()):
        assert column.locator("strong").first.inner_text().startswith(title)
        assert column.locator("[data-testid='stImage'] img").count() == 2  # adversarial image, perturbation
        values = dict(
            zip(
                column.locator("[data-testid='stMetricLabel']").all_inner_texts(),
                column.locator("[data-testid='stMetricValue']").all_inner_texts(),
            )
        )
        assert re.fullmatch(r"\d+\.\d %", values["L0"]) and re.fullmatch(r"[01]\.\d{3}", values["SSIM"]), values
        assert values["Success"] in ("yes", "no"), values
        lefts.append(column.bounding_box()["x"])
    assert lefts == sorted(lefts) and lefts[1] - lefts[0] > 200  # side by side, not stacked
    assert page.get_by_text("Mask-FGSM changes").count() == 1
    columns[0].evaluate(SCROLL_UNDER_HEADER)
    page.screenshot(path=str(shots / "explorer-side-by-side.png"))
