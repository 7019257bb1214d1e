"""What a cancelled attack costs when it is resumed: uninterrupted run vs cancel at ~30 % + `attacks.resume`.

    python bench/resume.py              # C&W and PGD on fmnist-lenet-0 and efficientnet-lite0 (gallery photos)
    python bench/resume.py --quick      # a few steps each: checks that the script works
    python bench/resume.py --attack cw  # C&W's cases only

Per case and repetition, the uninterrupted run and the cancel + resume pair alternate (ABBA over repetitions);
medians of each are printed with their spread, and the ratio (cancel + resume) / uninterrupted: of the medians,
of the fastest runs (other jobs on a shared machine only ever slow a run down), and of this process's median CPU
seconds.
Both parts run as the app runs them (`score=True`): each pays its own clean and final forwards, and the resume
one more forward to check the model. "same" says whether the resumed images equal the uninterrupted ones.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import cell, parser, spread, timed, two_cores  # noqa: E402

from engine import attacks, images, models  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402

FRACTION = 0.3
# (attack, model, batch, parameters): C&W with its binary search, PGD with its random start. Sized for about
# 2 minutes on 2 cores: C&W's early abort leaves ~80 of Lite0's 300 scheduled steps on 2 photos, ~300 on 4.
CASES = [
    ("cw", "fmnist-lenet-0", 64, {"steps": 100, "binary_search_steps": 3}),
    ("cw", "efficientnet-lite0", 2, {"steps": 100, "binary_search_steps": 3}),
    ("pgd", "fmnist-lenet-0", 256, {"steps": 100}),
    ("pgd", "efficientnet-lite0", 4, {"steps": 20}),
]
QUICK = {"cw": {"steps": 5, "binary_search_steps": 2}, "pgd": {"steps": 4}}


class Cancel:
    """Stops the run once, at the first step at or past `at`; records the steps it saw."""

    def __init__(self, at: float | None = None):
        self.at, self.seen = at, []

    def __call__(self, step, total, state):
        self.seen.append((step, total))
        if self.at is not None and step >= self.at:
            self.at = None
            return False
        return True


def batch(model, size: int) -> torch.Tensor:
    if model.domain == "fashion-mnist":
        return fashion_mnist.test_split()[0][:size]
    return torch.cat([images.load(p, model) for p in list(images.gallery().values())[:size]])


def timed_cpu(fn, cpu: list, wall: list):
    """`fn()`, appending its wall-clock and CPU seconds."""
    start = time.process_time()
    seconds, out = timed(fn)
    cpu.append(time.process_time() - start)
    wall.append(seconds)
    return out


def measure(name: str, model, x, y, params: dict, repeats: int) -> dict:
    total = params["steps"] * params.get("binary_search_steps", 1)
    # Warm-up, the whole batch: a network's first calls at a batch size cost seconds (Lite0: ~10 s for 4 photos).
    warm = {**params, "steps": 2}
    attacks.resume(attacks.run(name, model, x, y=y, callback=Cancel(1), **warm), model)
    whole, cancelled, resumed = [], [], []
    cpu = {"uninterrupted": [], "cancel": [], "resume": []}
    for rep in range(repeats):

        def uninterrupted():
            return timed_cpu(lambda: attacks.run(name, model, x, y=y, **params), cpu["uninterrupted"], whole)

        def cancel_and_resume():
            stop, go_on = Cancel(FRACTION * total), Cancel()
            part = timed_cpu(
                lambda: attacks.run(name, model, x, y=y, callback=stop, **params), cpu["cancel"], cancelled
            )
            result = timed_cpu(lambda: attacks.resume(part, model, callback=go_on), cpu["resume"], resumed)
            return part, stop.seen[-1], (go_on.seen[0] if go_on.seen else None), result

        if rep % 2 == 0:
            a = uninterrupted()
            part, stopped_at, first_after, b = cancel_and_resume()
        else:
            part, stopped_at, first_after, b = cancel_and_resume()
            a = uninterrupted()
    both = [c + r for c, r in zip(cancelled, resumed)]
    cpu_both = [c + r for c, r in zip(cpu["cancel"], cpu["resume"])]
    return {
        "attack": name,
        "model": model.name,
        "batch": x.shape[0],
        "params": params,
        "stopped_at": list(stopped_at),
        "resumed_first_step": None if first_after is None else list(first_after),
        "uninterrupted": spread(whole),
        "cancel": spread(cancelled),
        "resume": spread(resumed),
        "cancel_plus_resume": spread(both),
        "ratio": statistics.median(both) / statistics.median(whole),
        "ratio_fastest": min(both) / min(whole),
        "cpu_s": {k: statistics.median(v) for k, v in {**cpu, "cancel_plus_resume": cpu_both}.items()},
        "cpu_ratio": statistics.median(cpu_both) / statistics.median(cpu["uninterrupted"]),
        "seconds_reported": {"uninterrupted": a.seconds, "resumed_total": b.seconds},
        "same_images": bool(torch.equal(a.x_adv, b.x_adv)),
        "same_iterations": bool(torch.equal(a.iterations, b.iterations)),
        "iterations_at_cancel": int(part.iterations.max()),
    }


def main(argv=None) -> int:
    cli = parser(__doc__, repeats=4, quick_help="a few steps per attack")
    cli.add_argument("--attack", choices=sorted({c[0] for c in CASES}), help="only this attack's cases")
    args = cli.parse_args(argv)
    two_cores()
    loaded, rows = {}, []
    for name, model_name, size, params in [c for c in CASES if args.attack in (None, c[0])]:
        if model_name not in loaded:
            loaded[model_name] = models.load(model_name, device=args.device)
        model = loaded[model_name]
        x = batch(model, size).to(args.device)
        with torch.no_grad():
            y = model(x).argmax(1)
        rows.append(measure(name, model, x, y, {**params, **(QUICK[name] if args.quick else {})}, args.repeats))
    if args.json:
        print(json.dumps({"device": args.device, "repeats": args.repeats, "rows": rows}, indent=2))
        return 0
    # Other jobs on a shared machine stretch single runs: the load says how far to trust a spread.
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"device {args.device}, {torch.get_num_threads()} threads, {args.repeats} repetitions, load average at the "
        f"end {load}; cancel at the first step ≥ {FRACTION:.0%} of the total; seconds as median (min–max)"
    )
    print(
        "| attack | model, batch | schedule | stopped at | resumed from | uninterrupted | cancel | resume "
        "| cancel + resume | ratio | ratio, fastest | ratio, CPU s | same images, iterations |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["params"]
        searches = f" × {p['binary_search_steps']} searches" if "binary_search_steps" in p else ""
        first = "—" if r["resumed_first_step"] is None else f"step {r['resumed_first_step'][0]:g}"
        print(
            f"| {r['attack']} | {r['model']}, {r['batch']} | {p['steps']} steps{searches} "
            f"| step {r['stopped_at'][0]:g} of {r['stopped_at'][1]} ({r['iterations_at_cancel']} iterations) "
            f"| {first} | {cell(r['uninterrupted'])} "
            f"| {cell(r['cancel'])} | {cell(r['resume'])} | {cell(r['cancel_plus_resume'])} | {r['ratio']:.2f} "
            f"| {r['ratio_fastest']:.2f} | {r['cpu_ratio']:.2f} "
            f"| {'yes' if r['same_images'] else 'NO'}, {'yes' if r['same_iterations'] else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
