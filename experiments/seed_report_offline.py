"""Open seed reports in Chromium from file:// with every other request refused, and say whether each figure drew.

    python experiments/seed_report_offline.py experiments/results/report_fmnist-lenet-0.html ...

Per file: the requests the page tried beyond itself (refused: the count must be 0), its pictures that did not
decode (naturalWidth 0), its inline charts and sections; a full-page screenshot goes to out/<file stem>.png.
Exits 1 if any page asked the network for anything or has a broken picture.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_common import CHROMIUM_FLAGS  # noqa: E402

COUNT = """() => ({
  images: document.images.length,
  broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
  charts: document.querySelectorAll('svg').length,
  sections: document.querySelectorAll('section.check').length,
  partial: document.title.includes('PARTIAL'),
})"""


def check(page, path: Path, shots: Path) -> bool:
    asked: list[str] = []

    def route(r):
        if r.request.url.startswith("file://") and Path(r.request.url[7:]) == path:
            return r.continue_()
        asked.append(r.request.url[:80])
        return r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri(), wait_until="load")
    found = page.evaluate(COUNT)
    shot = shots / f"{path.stem}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.unroute("**/*")
    print(f"{path.name}: {found}; requests refused: {len(asked)} {asked[:3]}; screenshot {shot}")
    return not asked and found["broken"] == 0


def main(paths: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    shots = ROOT / "out"
    shots.mkdir(exist_ok=True)
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    ok = True
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        # Offline as well as routed: a request the route missed (a worker, a prefetch) still reaches nothing.
        page = browser.new_context(offline=True, viewport={"width": 1200, "height": 900}).new_page()
        for name in paths:
            ok &= check(page, Path(name).resolve(), shots)
        browser.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
