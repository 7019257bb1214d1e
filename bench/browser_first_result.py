"""First result of every page's default, measured in a real browser (headless Chromium against `streamlit run`).

    python bench/browser_first_result.py            # both domains, 3 fresh sessions each
    python bench/browser_first_result.py --quick    # one session, the Fashion-MNIST model only (CI)

For the Explorer the clock runs from opening the link (a fresh browser context: a new session) to the
headline's metrics; for a lab page from the click on its button, with its default settings, to its
first result. The server is warm (one untimed visit first), as it is for every visitor after the first.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import CHROMIUM_FLAGS, parser, streamlit_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# page, button (None: the result comes without a click), text that marks the result
PAGES = [
    ("", None, "SSIM"),
    ("transfer", "Run sweep", "tSuc on"),
    ("features", "Compute", "Plane distance to target"),
    ("anatomy", "Average", "Contour vs background"),
    ("jsma", "Run JSMA", "changed features in red"),
]
MODELS = {"imagenet": "model=efficientnet-lite0", "fashion-mnist": "model=fmnist-lenet-0&image=fmnist:0"}
# The Explorer with another attack's defaults: (what the row says, the link's extra query).
ATTACKS = {
    "imagenet": [
        ("jsma", "attack=jsma"),
        ("jsma, camera", "attack=jsma&image=camera"),
        ("deepfool, camera", "attack=deepfool&image=camera"),
    ],
    "fashion-mnist": [("jsma", "attack=jsma")],
}


def _idle(page, timeout_ms: int) -> None:
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms, polling=100
    )


def first_result(browser, link: str, button: str | None, marker: str, timeout_s: int = 600) -> tuple[float, bool]:
    """(seconds to the result or inf where it did not come within `timeout_s`, whether the app first asked
    to confirm a long run: a default priced above its threshold on this machine)."""
    from playwright.sync_api import TimeoutError as Timeout

    try:
        return _first_result(browser, link, button, marker, timeout_s)
    except Timeout:
        return float("inf"), False


def _first_result(browser, link: str, button: str | None, marker: str, timeout_s: int) -> tuple[float, bool]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(link, wait_until="domcontentloaded")
        if button is not None:
            page.get_by_role("button", name=button).first.wait_for(timeout=timeout_s * 1000)
            _idle(page, timeout_s * 1000)
            start = time.perf_counter()
            page.get_by_role("button", name=button).first.click()
        anyway = page.get_by_role("button", name="Run anyway")
        page.get_by_text(marker).or_(anyway).first.wait_for(timeout=timeout_s * 1000)
        asked = anyway.count() > 0
        if asked:
            anyway.click()
        page.get_by_text(marker).first.wait_for(timeout=timeout_s * 1000)
        _idle(page, timeout_s * 1000)
        return time.perf_counter() - start, asked
    finally:
        context.close()


def main(argv=None) -> int:
    cli = parser(__doc__, repeats=3, quick_help="one session, Fashion-MNIST only", device=False)
    cli.add_argument("--domain", nargs="+", choices=list(MODELS), help="default: both")
    cli.add_argument("--timeout", type=int, default=300, help="seconds before a page counts as not finished")
    cli.add_argument("--only", nargs="+", default=None, help="rows by their page column, e.g. 'explorer, jsma'")
    cli.add_argument("--url", default=None, help="time an app already running there instead of starting one")
    args = cli.parse_args(argv)
    from playwright.sync_api import sync_playwright

    domains = ["fashion-mnist"] if args.quick else (args.domain or list(MODELS))
    repeats = 1 if args.quick else args.repeats
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.nullcontext(args.url) if args.url else streamlit_server(Path(tmp) / "streamlit.log") as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        first_result(browser, f"{url}/?{MODELS[domains[0]]}", None, "SSIM")  # warm the server: models, caches
        for domain in domains:
            visits = [(path, path or "explorer", "", button, marker) for path, button, marker in PAGES]
            visits += [("", f"explorer, {what}", f"&{query}", None, "SSIM") for what, query in ATTACKS[domain]]
            visits = [v for v in visits if args.only is None or v[1] in args.only]
            for path, name, query, button, marker in visits:
                link = f"{url}/{path}?{MODELS[domain]}{query}"
                runs = [first_result(browser, link, button, marker, args.timeout) for _ in range(repeats)]
                times = [seconds for seconds, _ in runs]
                rows.append(
                    {
                        "domain": domain,
                        "page": name,
                        "action": button or "open the link",
                        "asked_to_confirm": any(asked for _, asked in runs),
                        "median_s": round(statistics.median(times), 2),
                        "min_s": round(min(times), 2),
                        "max_s": round(max(times), 2),
                        "n": len(times),
                    }
                )
        browser.close()
    if args.json:
        print(json.dumps({"repeats": repeats, "rows": rows}, indent=2))
        return 0
    print(f"First result of each page's default in headless Chromium (warm server, fresh session each; {repeats} runs)")
    print("| domain | page | from | median s | min–max s | asked to confirm |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        spread = "—" if r["n"] == 1 else f"{r['min_s']:.2f}–{r['max_s']:.2f}"
        median = f"> {args.timeout} (not finished)" if r["median_s"] == float("inf") else f"{r['median_s']:.2f}"
        asked = "yes" if r["asked_to_confirm"] else "no"
        print(f"| {r['domain']} | {r['page']} | {r['action']} | {median} | {spread} | {asked} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
