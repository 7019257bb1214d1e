"""The app's latency and memory, measured headless with Streamlit's AppTest.

- click-to-result: submitting PGD-10 in the Explorer form until the page has rendered
  every panel, next to the engine's own `attacks.run` time for the same attack in the
  same run (the ratio is the app's overhead: heat maps, black-box model, figures);
- a display-only control (the perturbation view) redrawing without re-running the attack;
- each page's first render in a fresh session (models already cached, as on a warm server),
  and the Explorer's very first render in this process (models loaded from disk);
- the process's peak resident memory after every offline model is loaded and used.

    python bench/app_latency.py [--repeats 5] [--quick] [--json]

Repetitions interleave the measured operations; medians and (min–max) spreads are printed.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from bench_common import parser as bench_parser  # noqa: E402
from bench_common import spread, timed, two_cores
from streamlit.testing.v1 import AppTest  # noqa: E402

from engine import attacks, images, models  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402

MAIN = str(ROOT / "app" / "main.py")
PAGES = ["transfer", "features", "anatomy", "jsma"]


def _session(query: dict) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=600)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def _timed(fn) -> float:
    return timed(fn)[0]


def click_to_result(model: str, image: str, seed: int) -> tuple[float, float]:
    """(seconds from the form submit to the rendered result, seconds of a display-only change)."""
    at = _session({"model": model, "image": image})
    at.run()
    at.number_input(key="pgd.seed").set_value(seed)  # a new seed: a run the session has not cached
    at.number_input(key=f"{models.load(model).domain}.pgd.steps").set_value(10)
    click = _timed(lambda: at.button(key="FormSubmitter:attack-form-pgd-Run attack").click().run())
    assert not at.exception and at.session_state["last_run_key"].seed == seed
    redraw = _timed(lambda: at.radio(key="delta_view").set_value("amplified |δ|").run())
    return click, redraw


def engine_pgd(model_name: str, image: str, seed: int) -> float:
    model = models.load(model_name)
    if image.startswith("fmnist:"):
        x = fashion_mnist.test_split()[0][int(image.split(":")[1])][None].to(model.device)
    else:
        x = images.load(images.gallery()[image], model)
    return _timed(lambda: attacks.run("pgd", model, x, steps=10, seed=seed))


def first_render(page: str | None, query: dict) -> float:
    at = _session(query)
    if page is None:
        return _timed(at.run)
    at.run()  # the session starts on the Explorer; the page switch is what a click on the sidebar costs
    return _timed(lambda: at.switch_page(f"views/{page}.py").run())


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, repeats=5, quick_help="Fashion-MNIST only, one repetition (CI)", device=False)
    args = parser.parse_args(argv)
    two_cores()
    repeats = 1 if args.quick else args.repeats
    cases = [("fmnist-lenet-0", "fmnist:0")] + ([] if args.quick else [("efficientnet-lite0", "chelsea")])

    cold = first_render(None, {"model": cases[-1][0], "image": cases[-1][1]})  # loads models from disk
    rows = []
    for model, image in cases:
        engine_pgd(model, image, seed=99)  # warm-up: first-call set-up is not what a click costs
        clicks, redraws, engine = [], [], []
        for r in range(repeats):
            engine.append(engine_pgd(model, image, seed=100 + r))
            click, redraw = click_to_result(model, image, seed=100 + r)
            clicks.append(click)
            redraws.append(redraw)
        rows.append(
            {
                "model": model,
                "click_to_result": spread(clicks),
                "engine_pgd10": spread(engine),
                "overhead_ratio": statistics.median(clicks) / statistics.median(engine),
                "display_redraw": spread(redraws),
            }
        )
    renders = {}
    query = {"model": "fmnist-lenet-0", "image": "fmnist:0"}
    for _ in range(repeats):
        for page in [None, *PAGES]:
            renders.setdefault(page or "explorer", []).append(first_render(page, query))
    for name in models.available():
        if name["available"]:
            with torch.no_grad():
                m = models.load(name["name"])
                m(torch.rand(1, *m.input_size, device=m.device))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "explorer_cold_first_render_s": cold,
        "attacks": rows,
        "first_render_warm": {k: spread(v) for k, v in renders.items()},
        "peak_rss_mb_all_offline_models": peak_mb,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Explorer first render, cold process (models from disk): {cold:.2f} s")
    print("| model | click-to-result PGD-10 (s) | engine PGD-10 (s) | app / engine | display-only redraw (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        c, e, d = r["click_to_result"], r["engine_pgd10"], r["display_redraw"]
        print(
            f"| {r['model']} | {c['median_s']:.2f} ({c['min_s']:.2f}–{c['max_s']:.2f}) | {e['median_s']:.2f} "
            f"({e['min_s']:.2f}–{e['max_s']:.2f}) | {r['overhead_ratio']:.2f} | {d['median_s']:.2f} "
            f"({d['min_s']:.2f}–{d['max_s']:.2f}) |"
        )
    print()
    print("| page | first render in a new session, warm server (s) |")
    print("|---|---|")
    for page, s in report["first_render_warm"].items():
        print(f"| {page} | {s['median_s']:.2f} ({s['min_s']:.2f}–{s['max_s']:.2f}) |")
    print()
    print(f"Peak resident memory with every offline model loaded and used: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
