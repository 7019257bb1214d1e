"""What the engine's inference rewrites buy: each model with and without them, interleaved.

engine/models/inference.py folds every batch norm that follows a convolution into it, turns an even "same"
zero-padding in front of a convolution into the convolution's own padding, and runs the convolutions
channels-last. For each model this times one forward + backward to the input (the step every
gradient attack repeats) and PGD-10 end to end, on the model as the engine builds it and as given
(`inference.as_given()`), alternating ABBA, and prints the ratio rewritten / as given with its spread, the
largest logit difference and whether PGD fooled the same images.

    python bench/inference_rewrites.py --repeats 7
    python bench/inference_rewrites.py --quick      # CI smoke mode
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, cell, parser, spread, timed  # noqa: E402

sys.path.insert(0, str(ROOT))
from engine import attacks, images, models  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402
from engine.models import inference  # noqa: E402

# (model, batch): the two domains' attack batches, a photo on its own (the Explorer), and the zoo's other
# convolutional architectures.
CASES = [
    ("efficientnet-lite0", 1),
    ("efficientnet-lite0", 8),
    ("efficientnet-lite2", 8),
    ("fmnist-lenet-0", 256),
    ("fmnist-resnet-0", 256),
    ("fmnist-vgg-0", 256),
    ("fmnist-densenet-0", 256),
    ("fmnist-mobilenet-0", 256),
]
QUICK = [("efficientnet-lite0", 1), ("fmnist-resnet-0", 8)]


def batch(model, n: int) -> torch.Tensor:
    if model.domain == "imagenet":
        photos = list(images.gallery().values())
        return torch.cat([images.load(photos[i % len(photos)], model) for i in range(n)])
    return fashion_mnist.test_split()[0][:n]


def gradient_step(model, x, y):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)[0]


def measure(name: str, n: int, repeats: int, steps: int) -> dict:
    fast = models.load(name)
    with inference.as_given():
        plain = models.load(name)
    x = batch(fast, n)
    with torch.no_grad():
        logits_fast, logits_plain = fast(x), plain(x)
    y = logits_plain.argmax(1)
    eps = 0.0075 if fast.domain == "imagenet" else 0.05
    params = {"eps": eps, "steps": steps, "alpha": 2.5 * eps / steps, "random_start": False}
    jobs = {
        "fwd+bwd": lambda m: gradient_step(m, x, y),
        "pgd": lambda m: attacks.run("pgd", m, x, y=y, score=False, **params).x_adv,
    }
    row = {
        "model": name,
        "batch": n,
        "pgd_steps": steps,
        "folded_batch_norms": fast.folded_batch_norms,
        "folded_paddings": fast.folded_paddings,
        "channels_last": fast.channels_last,
        "max_logit_difference": float((logits_fast - logits_plain).abs().max()),
        "logit_scale": float(logits_plain.abs().max()),
    }
    first = {}
    for job, run in jobs.items():
        # Untimed first runs (allocator growth, oneDNN's first-call kernel choice); PGD's are also the images judged.
        first[job] = {"rewritten": run(fast), "as given": run(plain)}
        times = {"rewritten": [], "as given": []}
        for rep in range(repeats):
            order = [("rewritten", fast), ("as given", plain)]
            for label, m in order if rep % 2 == 0 else order[::-1]:
                times[label].append(timed(lambda: run(m))[0])
        per_rep = [a / b for a, b in zip(times["rewritten"], times["as given"])]
        row[job] = {k: spread(v) for k, v in times.items()}
        row[job]["ratio"] = {"median": statistics.median(per_rep), "min": min(per_rep), "max": max(per_rep)}
    with torch.no_grad():  # the rewritten and the plain model each judge their own PGD images
        fooled = [m(first["pgd"][label]).argmax(1) != y for label, m in (("rewritten", fast), ("as given", plain))]
    row["images_fooled_differently"] = int((fooled[0] != fooled[1]).sum())
    return row


def main(argv=None) -> int:
    args = parser(__doc__, repeats=7, quick_help="two small cases, 1 repetition, PGD-2", device=False).parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if args.quick else 2)  # the machine the figures are for: 2 cores
    try:
        rows = [
            measure(name, n, 1 if args.quick else args.repeats, 2 if args.quick else 10)
            for name, n in (QUICK if args.quick else CASES)
        ]
    finally:
        torch.set_num_threads(threads)
    if args.json:
        print(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2))
        return 0
    print(
        f"torch {torch.__version__}, {2 if not args.quick else 1} threads; seconds: median (min–max); "
        "ratio rewritten / as given per repetition, median (min–max)\n"
    )
    print(
        "| model | batch | batch norms folded | paddings folded | channels-last | fwd+bwd rewritten | as given | ratio "
        "| PGD rewritten | as given | ratio | images fooled differently | largest logit difference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        step, pgd = r["fwd+bwd"], r["pgd"]
        print(
            f"| {r['model']} | {r['batch']} | {r['folded_batch_norms']} | {r['folded_paddings']} "
            f"| {'yes' if r['channels_last'] else 'no'} "
            f"| {cell(step['rewritten'])} | {cell(step['as given'])} | {step['ratio']['median']:.2f} "
            f"({step['ratio']['min']:.2f}–{step['ratio']['max']:.2f}) | {cell(pgd['rewritten'])} "
            f"| {cell(pgd['as given'])} | {pgd['ratio']['median']:.2f} "
            f"({pgd['ratio']['min']:.2f}–{pgd['ratio']['max']:.2f}) "
            f"| {r['images_fooled_differently']} of {r['batch']} | {r['max_logit_difference']:.1e} "
            f"(of {r['logit_scale']:.1f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
