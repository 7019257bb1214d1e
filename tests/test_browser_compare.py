"""The Explorer's one-click side by side of FGSM, DeepFool and Mask-FGSM, in a real browser at 1280×720."""

from __future__ import annotations

import re

import pytest
from test_browser import FMNIST, _click_until, _no_exception, _open
from test_browser_universal import SCROLL_UNDER_HEADER

from app.compare_section import BUTTON, numbers_line
from engine import models
from engine.analysis.sparsity import side_by_side
from engine.datasets import fashion_mnist

pytestmark = [pytest.mark.slow]
METHODS = {"fgsm": "FGSM", "deepfool": "DeepFool", "maskfgsm": "Mask-FGSM"}


def test_the_compare_button_shows_three_columns_with_their_numbers(server, browser, shots):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    _open(page, f"{server}/?{FMNIST}&attack=fgsm", BUTTON)
    assert page.locator(".st-key-side-by-side-fgsm").count() == 0  # nothing runs before the click
    columns = [page.locator(f".st-key-side-by-side-{name}") for name in METHODS]
    _click_until(page, BUTTON, columns[-1].get_by_text("success"))
    _no_exception(page)
    # The engine's own numbers for the same image (fmnist:0) and model: the page shows exactly these.
    expected = side_by_side(models.load("fmnist-lenet-0", device="cpu"), fashion_mnist.test_view()[0][0:1])["rows"]
    lefts = []
    for column, title, row in zip(columns, METHODS.values(), expected):
        assert column.locator("strong").first.inner_text().startswith(title)
        assert column.locator("[data-testid='stImage'] img").count() == 2  # adversarial image, perturbation
        shown = column.inner_text()
        assert re.search(r"L0 \d+\.\d % · SSIM [01]\.\d{3} · success (yes|no)", shown), shown
        assert numbers_line(row).replace("**", "") in shown, (numbers_line(row), shown)
        lefts.append(column.bounding_box()["x"])
    assert lefts == sorted(lefts) and lefts[1] - lefts[0] > 200  # side by side, not stacked
    assert page.get_by_text("Mask-FGSM changes").count() == 1
    page.get_by_text("Three attacks side by side").evaluate(SCROLL_UNDER_HEADER)
    page.screenshot(path=str(shots / "explorer-side-by-side.png"))
