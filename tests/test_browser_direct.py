"""The Transfer lab's direct attack in a real browser at 1280×720: a label-only attack on a black box shows its
queries (on the bar while it runs, and as a metric), and a Cancel mid-run keeps a partial result and the app."""

from __future__ import annotations

import re

import pytest
from conftest import BROWSER_TIMEOUT_MS
from test_browser import FMNIST, _choose, _no_exception, _past_the_gate, _settle

pytestmark = [pytest.mark.slow]

HEADING = "Attack a black box directly (labels only)"

BLACK = "fmnist-lenet-1"  # the zoo's fastest held-out model: the long run is long in queries, not in waiting
LONG = 100_000  # Boundary's queries at this budget take a minute or more here: Cancel lands mid-run


@pytest.fixture
def page(browser):
    context = browser.window(viewport={"width": 1280, "height": 720})
    yield context.new_page()
    context.close()


def _metric(page, label: str) -> str:
    found = page.locator("[data-testid='stMetric']").filter(has_text=label)
    return found.locator("[data-testid='stMetricValue']").first.inner_text()


def _attack(page) -> None:
    page.get_by_role("button", name="Attack the black box").click()


def test_a_label_only_attack_on_a_black_box_counts_its_queries_and_cancels(server, page, shots):
    page.goto(f"{server}/transfer?{FMNIST}&blacks={BLACK}", wait_until="domcontentloaded")
    _settle(page, HEADING)
    _attack(page)  # HopSkipJump at its default budget: under a second here
    _past_the_gate(page, page.locator("[data-testid='stMetric']").filter(has_text="Queries"))
    _settle(page, "Success")
    _no_exception(page)
    assert _metric(page, "Queries") == "1,000" and _metric(page, "Success") == "yes"
    assert page.get_by_text("Run the sweep above to compare").count() == 1  # no sweep yet: nothing to compare
    # The result at the bottom of the window: the pictures above their metrics.
    page.locator("[data-testid='stMetric']").filter(has_text="Queries").evaluate(
        "e => e.scrollIntoView({block: 'end'})"
    )
    page.screenshot(path=str(shots / "transfer-direct.png"))

    _choose(page, "Label-only attack", "Boundary")
    _settle(page, "Attack the black box")
    page.get_by_label("Query budget", exact=True).fill(str(LONG))
    _attack(page)
    bar = rf"Boundary on {BLACK} \(([\d,]+) of 100,000 queries\)"
    _past_the_gate(page, page.get_by_text(re.compile(bar)))
    page.wait_for_function(
        f"() => {{ const m = /{bar}/.exec(document.body.innerText); return m && +m[1].replace(/,/g, '') >= 500; }}",
        timeout=BROWSER_TIMEOUT_MS,
        polling=100,
    )
    page.get_by_role("button", name="Cancel").click()
    _settle(page, "Cancelled after")
    _no_exception(page)
    note = page.get_by_text("Cancelled after").first.inner_text()
    spent = int(re.search(r"Cancelled after ([\d,]+) of 100,000 queries", note).group(1).replace(",", ""))
    assert 500 <= spent < LONG and _metric(page, "Queries") == f"{spent:,}"
    # The app goes on: the HopSkipJump result is still this session's, shown again without a run.
    _choose(page, "Label-only attack", "HopSkipJump")
    _settle(page, "Success")
    _no_exception(page)
    assert _metric(page, "Queries") == "1,000" and page.get_by_text("Cancelled after").count() == 0
