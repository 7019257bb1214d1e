"""Cancel at about 30 %, then "Run it to the end", in a real browser (headless Chromium against `streamlit run`),
side by side with the same run left alone: the time to the finished result either way.

    python bench/browser_resume.py            # C&W 1000 steps × 9 searches on the Fashion-MNIST LeNet, and PGD
                                              # 400 steps on EfficientNet-Lite0 (about 4 minutes on 2 cores)
    python bench/browser_resume.py --quick    # C&W only

Each run is a fresh browser session at 1280×720. "Alone" is from the click on Run attack (or Run anyway) to the
finished metrics; "cancelled" is the time until the Cancel click plus the time from the click on Run it to the end
to the finished metrics: what a person waits in all. The continued run starts at the step the cancelled one reached.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CHROMIUM_FLAGS, parser, streamlit_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 720}
# (label, link, attack title in the form and on the bar, {parameter: value}, total iterations)
RUNS = [
    (
        "C&W L2 1000×9, LeNet",
        "model=fmnist-lenet-0&image=fmnist:0",
        "C&W L2",
        {"steps": 1000, "binary_search_steps": 9},
        9000,
    ),
    ("PGD 400 steps, Lite0", "", "PGD (TPGD when targeted)", {"steps": 400}, 400),
]


def _idle(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=600_000)
    for pause in (1500, 1000):
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=600_000, polling=100
        )
        page.wait_for_timeout(pause)


def _prepare(browser, url: str, link: str, attack: str, params: dict):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/?{link}", wait_until="domcontentloaded")
    _idle(page, "SSIM")
    page.locator("summary").filter(has_text="Attack settings").click()
    page.get_by_label("Attack", exact=True).first.click()
    page.keyboard.type(attack[:6])
    page.get_by_role("option", name=attack, exact=True).first.click()
    _idle(page, "Run attack")
    form = page.locator("[data-testid='stForm']").filter(has=page.get_by_role("button", name="Run attack"))
    for name, value in params.items():
        form.get_by_label(name, exact=True).fill(str(value))
    return page


def _start(page) -> float:
    page.get_by_role("button", name="Run attack").first.click()
    anyway = page.get_by_role("button", name="Run anyway")
    page.locator("[data-testid='stProgress']").or_(anyway).first.wait_for(timeout=60_000)
    if anyway.count():
        anyway.click()
    return time.perf_counter()


def _finished(page, started: float) -> float:
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stProgress\"]') && "
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=600_000,
        polling=100,
    )
    page.get_by_text("SSIM").first.wait_for()
    return time.perf_counter() - started


def _iterations(page) -> int:
    value = (
        page.locator("[data-testid='stMetric']")
        .filter(has_text="Iterations")
        .locator("[data-testid='stMetricValue']")
        .inner_text()
    )
    return int(value.replace(",", ""))


def main() -> None:
    args = parser(__doc__, repeats=1, quick_help="C&W only", device=False).parse_args()
    from playwright.sync_api import sync_playwright

    runs = RUNS[:1] if args.quick else RUNS
    rows = []
    with streamlit_server(Path("/tmp/browser_resume.log")) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for label, link, attack, params, total in runs:
            page = _prepare(browser, url, link, attack, params)
            alone = _finished(page, _start(page))
            assert _iterations(page) == total, (label, _iterations(page))
            page.close()

            page = _prepare(browser, url, link, attack, params)
            started = _start(page)
            page.wait_for_function(
                "(least) => { const m = /step (\\d+) of/.exec(document.querySelector('[data-testid=\"stProgress\"]')"
                "?.innerText || ''); return m && +m[1] >= least; }",
                arg=int(0.3 * total),
                timeout=600_000,
                polling=100,
            )
            page.get_by_role("button", name="Cancel").click()
            before = time.perf_counter() - started
            _idle(page, "Cancelled after")
            note = page.get_by_text("Cancelled after").first.inner_text()
            reached = int(re.search(r"Cancelled after ([\d,]+)", note).group(1).replace(",", ""))
            clicked = time.perf_counter()
            page.get_by_role("button", name="Run it to the end").click()
            page.get_by_text("Continuing").first.wait_for(timeout=60_000)
            shown = time.perf_counter() - clicked
            after = _finished(page, clicked)
            assert _iterations(page) == total and page.get_by_text("Cancelled after").count() == 0, label
            page.close()
            rows.append((label, alone, reached / total, before, shown, after, before + after))
        browser.close()
    print(
        f"{'run':28s} {'alone':>8s} {'cancel at':>10s} {'before':>8s} {'bar after':>10s} {'rest':>8s} "
        f"{'in all':>8s} {'in all/alone':>13s} {'rest/(alone×left)':>18s}"
    )
    for label, alone, share, before, shown, after, total in rows:
        print(
            f"{label:28s} {alone:7.1f}s {share:9.0%} {before:7.1f}s {shown:9.1f}s {after:7.1f}s {total:7.1f}s "
            f"{total / alone:12.2f}× {after / (alone * (1 - share)):17.2f}×"
        )


if __name__ == "__main__":
    main()
