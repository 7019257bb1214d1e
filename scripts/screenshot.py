"""Take a screenshot of the running app with Debian's chromium (README image; dev tool).

    bash scripts/app.sh &            # serve on :8501
    .venv/bin/pip install -r requirements-dev.txt && apt-get install chromium
    .venv/bin/python scripts/screenshot.py docs/screenshot.png
"""
from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

URL = "http://localhost:8501/"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(out: str = "docs/screenshot.png", url: str = URL) -> int:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1500})
        page.goto(url, wait_until="networkidle")
        # A cold server's first paint is blank: wait for the attack result's metrics.
        page.get_by_text("SSIM").first.wait_for(timeout=120_000)
        page.wait_for_timeout(2500)  # let Plotly finish drawing
        page.screenshot(path=out, full_page=True)
        browser.close()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
