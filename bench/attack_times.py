"""Per-attack wall time on one model, measured side by side in one run.

    python bench/attack_times.py                      # efficientnet-lite0, chelsea, CPU
    python bench/attack_times.py --repeats 5 --batch 8
    python bench/attack_times.py --quick              # CI smoke mode: tiny budgets, 1 repeat

Repetitions are interleaved (attack A, B, C, A, B, C, ...) so machine noise hits
every attack alike; the median and the spread (min–max) are printed, plus the
cost of one forward+backward pass as the unit every iterative attack is made of,
and beside each the time the app expects before it starts (engine.cost; "≤" where
that is a cap because the attack stops once it succeeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine import attacks, cost, images, models  # noqa: E402

DEFAULTS = {
    "fgsm": {},
    "bim": {"steps": 10},
    "pgd": {"steps": 10},
    "mifgsm": {"steps": 10},
    "cw": {"steps": 100},
    "deepfool": {},
    "square": {"n_queries": 1000},
}
QUICK = {
    "bim": {"steps": 2},
    "pgd": {"steps": 2},
    "mifgsm": {"steps": 2},
    "cw": {"steps": 3},
    "deepfool": {"steps": 2},
    "square": {"n_queries": 5},
}


def forward_backward_seconds(model, x) -> float:
    x = x.detach().requires_grad_(True)
    start = time.perf_counter()
    loss = model(x).logsumexp(1).sum()
    torch.autograd.grad(loss, x)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--image", default="chelsea")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    model = models.load(args.model, device=args.device)
    x = images.load(images.gallery()[args.image], model).repeat(args.batch, 1, 1, 1)
    budgets = {name: {**kw, **(QUICK.get(name, {}) if args.quick else {})} for name, kw in DEFAULTS.items()}
    repeats = 1 if args.quick else args.repeats

    attacks.run("fgsm", model, x)  # warm-up: first call pays for allocation and kernel selection
    samples: dict[str, list[float]] = {name: [] for name in [*budgets, "forward+backward"]}
    outcome: dict[str, dict] = {}
    for _ in range(repeats):
        samples["forward+backward"].append(forward_backward_seconds(model, x))
        for name, kw in budgets.items():
            result = attacks.run(name, model, x, **kw)
            samples[name].append(result.seconds)
            outcome[name] = {
                "success_rate": result.success_rate,
                "iterations": float(result.iterations.float().mean()),
                "queries": None if result.queries is None else float(result.queries.float().mean()),
            }

    unit = statistics.median(samples["forward+backward"])
    rows = []
    for name, values in samples.items():
        med = statistics.median(values)
        row = {
            "attack": name,
            "params": budgets.get(name, {}),
            "median_s": round(med, 4),
            "min_s": round(min(values), 4),
            "max_s": round(max(values), 4),
            "in_forward_backward_units": round(med / unit, 1),
            **(
                {}
                if name not in budgets
                else {
                    "expected_s": round(cost.attack_seconds(model, name, args.batch, budgets[name]), 4),
                    "expected_is_cap": cost.stops_early(name),
                }
            ),
            **outcome.get(name, {}),
        }
        rows.append(row)
    header = {
        "model": args.model,
        "image": args.image,
        "batch": args.batch,
        "device": args.device,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps({**header, "rows": rows}, indent=2))
        return 0
    print(" ".join(f"{k}={v}" for k, v in header.items()))
    print(
        f"{'attack':<18}{'params':<22}{'median s':>10}{'min–max s':>18}{'× fwd+bwd':>11}"
        f"{'success':>9}{'iters':>7}{'expected s':>13}"
    )
    for r in rows:
        params = ",".join(f"{k}={v}" for k, v in r["params"].items())
        spread = f"{r['min_s']:.3f}–{r['max_s']:.3f}"
        success = "" if "success_rate" not in r else f"{r['success_rate']:.0%}"
        iters = "" if "iterations" not in r else f"{r['iterations']:.0f}"
        expected = "" if "expected_s" not in r else f"{'≤ ' if r['expected_is_cap'] else ''}{r['expected_s']:.3f}"
        print(
            f"{r['attack']:<18}{params:<22}{r['median_s']:>10.3f}{spread:>18}{r['in_forward_backward_units']:>11}"
            f"{success:>9}{iters:>7}{expected:>13}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
