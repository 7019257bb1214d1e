"""PGD-10 on 8 gallery photos (EfficientNet-Lite0): a bare hand-written loop, ours and torchattacks, interleaved.

The bare loop has nothing to cut, so where ours and a peer both sit within its spread, a ratio of a few per
cent between them is the machine's noise, not work of ours (bench/README.md §7).

    python bench/check_pgd_floor.py --repeats 6
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, cell, parser, spread, timed  # noqa: E402

sys.path.insert(0, str(ROOT))
import peers  # noqa: E402

from engine import attacks, images, models  # noqa: E402


def bare_pgd(model, x, y, eps, alpha, steps):
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = (x + (x_adv - x).clamp(-eps, eps)).clamp(0.0, 1.0).detach()
    return x_adv


def main(argv=None) -> int:
    args = parser(__doc__, repeats=6, quick_help="2 photos, 2 steps, 1 repetition", device=False).parse_args(argv)
    peers.import_peers()
    model = models.load("efficientnet-lite0")
    gallery = images.gallery()
    x = torch.cat([images.load(gallery[name], model) for name in sorted(gallery)[: 2 if args.quick else 8]])
    with torch.no_grad():
        y = model(x).argmax(1)
    steps, eps = (2 if args.quick else 10), 0.005
    params = {"eps": eps, "steps": steps, "alpha": 2.5 * eps / steps, "random_start": False}
    theirs = peers.make("torchattacks", "pgd", model, params)
    runs = {
        "bare loop": lambda: bare_pgd(model, x, y, eps, params["alpha"], steps),
        "ours": lambda: attacks.run("pgd", model, x, y=y, score=False, **params).x_adv,
        "torchattacks": lambda: theirs(x, y),
    }
    outputs = {name: run() for name, run in runs.items()}  # warm-up, and the check that all three agree
    same = all(bool((out == outputs["ours"]).all()) for out in outputs.values())
    times = {name: [] for name in runs}
    names = list(runs)
    for rep in range(1 if args.quick else args.repeats):
        order = names[rep % 3 :] + names[: rep % 3]
        for name in order if rep % 2 else order[::-1]:
            times[name].append(timed(runs[name])[0])
    report = {
        "images": x.shape[0],
        "steps": steps,
        "identical_images": same,
        "times": {name: spread(values) for name, values in times.items()},
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"PGD-{steps}, {x.shape[0]} photos, Lite0; identical images from all three: {same}")
        for name, s in report["times"].items():
            print(f"  {name:13s} {cell(s)} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
