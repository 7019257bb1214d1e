"""k jobs at once: with the compute queue (engine.compute, the default) and without it (PE_COMPUTE_SLOTS=0).

    python bench/concurrency.py                 # 1, 2, 4, 8 jobs; threads, processes and browsers (≈ 25 min)
    python bench/concurrency.py --quick         # 1 and 2 jobs of 3 steps on the Fashion-MNIST LeNet (CI)

A job is C&W L2 with 100 steps on one photo with EfficientNet-Lite0 (the case that took 117 s with three
browser sessions against 13 s alone). "threads": k Python threads of one process, as the app's sessions
are; "processes": k `python -m engine attack` commands started together; "browsers": k browser
sessions opening the same Explorer link at once against one `streamlit run`. Printed per k and mode:
the time until the last job is done (makespan), that time over k × the solo time (1.0 = no overhead;
oversubscription shows as more), and the mean time a job took from its start to its result.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_common import CHROMIUM_FLAGS, ROOT, parser, streamlit_server  # noqa: E402

MODES = {"queue": "1", "no queue": "0"}  # PE_COMPUTE_SLOTS
JOB = ("efficientnet-lite0", "chelsea")
QUICK_JOB = ("fmnist-lenet-0", "fmnist:0")


def _job_args(job: tuple[str, str], steps: int) -> list[str]:
    return ["attack", "--model", job[0], "--image", job[1], "--attack", "cw", "--steps", str(steps), "--json"]


def in_threads(k: int, slots: str, steps: int, job: tuple[str, str] = JOB) -> list[float]:
    """Seconds from the common start to each job's end, k jobs in k threads of this process."""
    from engine import attacks, compute, domains, models

    model = models.load(job[0], device="cpu")
    x = domains.of(model).load(job[1], model)
    done: list[float] = []
    before = os.environ.get("PE_COMPUTE_SLOTS")
    os.environ["PE_COMPUTE_SLOTS"] = slots  # the process's queue follows it; restored below for whoever runs next

    def run():
        with compute.slot():
            attacks.run("cw", model, x, steps=steps, score=False)
        done.append(time.perf_counter() - start)

    try:
        start = time.perf_counter()
        threads = [threading.Thread(target=run) for _ in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        if before is None:
            os.environ.pop("PE_COMPUTE_SLOTS", None)
        else:
            os.environ["PE_COMPUTE_SLOTS"] = before
    return sorted(done)


def in_processes(k: int, slots: str, steps: int, folder: str, job: tuple[str, str] = JOB) -> list[float]:
    env = {**os.environ, "PE_COMPUTE_SLOTS": slots, "PE_COMPUTE_DIR": folder, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "engine", *_job_args(job, steps)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(k)
    ]
    done = []
    for p in procs:
        p.wait()
        done.append(time.perf_counter() - start)
        if p.returncode:
            raise RuntimeError(f"a job failed with exit code {p.returncode}")
    return sorted(done)


def in_browsers(k: int, slots: str, steps: int, timeout_s: int = 900) -> list[float]:
    from playwright.sync_api import sync_playwright

    link = f"/?model=efficientnet-lite0&image=chelsea&attack=cw&p.steps={steps}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        streamlit_server(Path(tmp) / "streamlit.log", env={"PE_COMPUTE_SLOTS": slots, "PE_COMPUTE_DIR": tmp}) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        warm = browser.new_page()  # models and caches loaded once, as for every visitor after the first
        warm.goto(f"{url}/?model=efficientnet-lite0&image=chelsea&attack=fgsm", wait_until="domcontentloaded")
        warm.get_by_text("SSIM").first.wait_for(timeout=timeout_s * 1000)
        warm.close()
        pages = [browser.new_context().new_page() for _ in range(k)]
        start = time.perf_counter()
        for page in pages:
            page.goto(url + link, wait_until="commit")
        done = []
        for page in pages:  # the queue finishes them in order; each is read as soon as it is there
            page.get_by_text("SSIM").first.wait_for(timeout=timeout_s * 1000)
            done.append(time.perf_counter() - start)
        browser.close()
    return sorted(done)


def main(argv=None) -> int:
    cli = parser(__doc__, repeats=1, quick_help="1 and 2 jobs of a few steps, threads and processes", device=False)
    cli.add_argument("--jobs", nargs="+", type=int, default=None, help="default: 1 2 4 8")
    cli.add_argument("--where", nargs="+", choices=["threads", "processes", "browsers"], default=None)
    args = cli.parse_args(argv)
    counts = args.jobs or ([1, 2] if args.quick else [1, 2, 4, 8])
    where = args.where or (["threads", "processes"] if args.quick else ["threads", "processes", "browsers"])
    steps, job = (3, QUICK_JOB) if args.quick else (100, JOB)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for place in where:
            solo = None
            for k in counts:
                for mode, slots in MODES.items():
                    if place == "threads":
                        done = in_threads(k, slots, steps, job)
                    elif place == "processes":
                        done = in_processes(k, slots, steps, folder, job)
                    else:
                        done = in_browsers(k, slots, steps)
                    if k == 1 and mode == "queue":
                        solo = done[0]
                    rows.append(
                        {
                            "where": place,
                            "jobs": k,
                            "mode": mode,
                            "makespan_s": done[-1],
                            "mean_job_s": statistics.mean(done),
                            "over_k_solo": done[-1] / (k * solo),
                        }
                    )
                    print(
                        f"{place:<10} k={k:<2} {mode:<9} makespan {done[-1]:7.1f} s  "
                        f"÷ (k × solo) {rows[-1]['over_k_solo']:5.2f}  mean job {rows[-1]['mean_job_s']:6.1f} s",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
