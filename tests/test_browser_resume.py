"""Cancel, then "Run it to the end", as a person does it in a real browser at 1280×720.

The continued run starts where the cancelled one stopped (its bar shows that step at once, without asking to
confirm again), the partial result stays on screen until the finished one replaces it, and the finished result
has the iterations asked for. One counter throughout: the bar's step, the note and the metric agree.
"""

from __future__ import annotations

import re

import pytest
from test_browser import FMNIST, _choose, _headline, _no_exception, _open, _settle, _start

pytestmark = [pytest.mark.slow]

STEPS, SEARCHES = 300, 6  # ~10 s uninterrupted on 2 cores: the cancel at a third still lands mid-run
TOTAL = STEPS * SEARCHES


def _bar_step(page, word: str) -> int | None:
    # One read in the page: a count, then a wait for the bar, would hang when the run ends between the two.
    text = page.evaluate("() => document.querySelector(\"[data-testid='stProgress']\")?.innerText ?? ''")
    found = re.search(rf"{word} C&W L2: step (\d+) of (\d+)", text)
    if found is None:
        return None
    assert int(found.group(2)) == TOTAL, text
    return int(found.group(1))


def _metric(page, label: str) -> str:
    return (
        page.locator("[data-testid='stMetric']")
        .filter(has_text=label)
        .locator("[data-testid='stMetricValue']")
        .inner_text()
    )


def test_cancel_then_run_it_to_the_end_continues_with_the_partial_result_on_screen(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    _open(page, f"{server}/?{FMNIST}")
    assert _headline(page).startswith("PGD")  # the default's result, which the cancelled C&W one must replace
    page.locator("summary").filter(has_text="Attack settings").click()  # folded away by default: results first
    _choose(page, "Attack", "C&W L2")
    _settle(page, "binary_search_steps")
    form = page.locator("[data-testid='stForm']").filter(has=page.get_by_label("binary_search_steps"))
    form.get_by_label("steps", exact=True).fill(str(STEPS))
    form.get_by_label("binary_search_steps", exact=True).fill(str(SEARCHES))
    _start(page, "Run attack", "Running C&W L2: step ")
    page.wait_for_function(
        "() => { const m = /Running C&W L2: step (\\d+)/.exec(document.body.innerText); "
        f"return m && +m[1] >= {TOTAL * 0.3}; }}",
        timeout=300_000,
        polling=100,
    )
    seen = _bar_step(page, "Running")
    page.get_by_role("button", name="Cancel").click()
    _settle(page, "Cancelled after")
    _no_exception(page)
    note = page.get_by_text("Cancelled after").first.inner_text()
    done = int(re.search(r"Cancelled after ([\d,]+) of ([\d,]+) iterations", note).group(1).replace(",", ""))
    assert seen is not None and seen <= done < TOTAL, (seen, note)
    assert int(_metric(page, "Iterations").replace(",", "")) == done  # the metric counts as the note does
    assert _headline(page).startswith("C&W L2")

    page.get_by_role("button", name="Run it to the end").click()
    page.get_by_text("Continuing C&W L2: step").first.wait_for()
    first = _bar_step(page, "Continuing")
    assert first is None or first >= done, (first, done)  # from where it stopped, not from step 0
    assert page.get_by_role("button", name="Run anyway").count() == 0  # never asked to confirm again
    # While it runs, the partial result stays: headline and pictures, never an empty result area.
    while page.get_by_text("Continuing C&W L2").count():
        assert page.locator(".st-key-headline h3").count() == 1
        # ≥ 1: when the finished result arrives, Plotly mounts its chart before the partial one leaves
        assert page.locator(".st-key-pictures .js-plotly-plot").count() >= 1
        step = _bar_step(page, "Continuing")
        assert step is None or step >= done, (step, done)
        page.wait_for_timeout(500)
    _settle(page, "SSIM")
    _no_exception(page)
    assert page.get_by_text("Cancelled after").count() == 0
    assert int(_metric(page, "Iterations").replace(",", "")) == TOTAL
    assert _headline(page).startswith("C&W L2")
    # The finished result is kept: running the same settings again shows it at once, without a prompt.
    page.get_by_role("button", name="Run attack").click()
    _settle(page, "SSIM")
    assert page.get_by_role("button", name="Run anyway").count() == 0
    assert page.locator("[data-testid='stProgress']").count() == 0
    page.close()
