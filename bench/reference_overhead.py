"""Our attacks against torchattacks' on the same model, batch and parameters, and against the cost floor.

For each attack: median seconds of ours and of torchattacks (interleaved repetitions,
spread printed), the ratio ours/theirs, both success rates, and for iterative
attacks the ratio to the floor K × (one forward+backward of the batch), measured
in the same run. "ours" is `attacks.run(..., score=False)` — images only, like
torchattacks; "scored" adds the clean and final forwards that fill predictions and
success. AA has no torchattacks counterpart and is compared with the floor only.

    python bench/reference_overhead.py                       # Fashion-MNIST LeNet, batch 256, and Lite0, batch 8
    python bench/reference_overhead.py --quick --json        # CI smoke mode
    python bench/reference_overhead.py --device cuda         # on a GPU: the same table, plus images/s

torchattacks runs DeepFool one image and one class gradient at a time (a Jacobian
over all classes) and JSMA one image at a time; on EfficientNet-Lite0 (1,000
classes) its DeepFool needs minutes per image, so DeepFool and JSMA are compared
on Fashion-MNIST only, on a slice of the batch for torchattacks (per-image cost
scaled to the batch, which their loop makes exact up to noise).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import peers  # noqa: E402
from bench_common import cell, fooled, ratio, spread, timed, two_cores  # noqa: E402
from bench_common import parser as bench_parser

from engine import attacks, images, models, targets  # noqa: E402
from engine.attacks.base import resolve_params  # noqa: E402
from engine.attacks.params import PGD_ALPHA_FACTOR  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402

EPS = {"fashion-mnist": 0.2, "imagenet": 0.03}


def reference(name: str, model, eps: float, steps: int):
    """The torchattacks object with our parameters (our defaults and α rules spelled out for it)."""
    params = resolve_params(attacks.get(name), model.attack_defaults, PARAMS[name](eps, steps))
    if params.get("alpha", 0) is None:  # ours: ε/K, PGD's 2.5·ε/K
        params["alpha"] = (PGD_ALPHA_FACTOR if name == "pgd" else 1.0) * eps / steps
    return peers.make("torchattacks", name, model, params)


PARAMS = {
    "fgsm": lambda eps, steps: {"eps": eps},
    "bim": lambda eps, steps: {"eps": eps, "steps": steps},
    "pgd": lambda eps, steps: {"eps": eps, "steps": steps},
    "mifgsm": lambda eps, steps: {"eps": eps, "steps": steps},
    "aa": lambda eps, steps: {"eps": eps, "steps": steps},
    "cw": lambda eps, steps: {"steps": steps, "binary_search_steps": 1},
    "deepfool": lambda eps, steps: {"steps": steps, "num_classes": 10},
    "jsma": lambda eps, steps: {"max_distortion": 0.1},
}
# Iterations that each cost one forward+backward of the batch (the floor of the standard iterative attacks).
FLOOR_ITERATIONS = {
    "fgsm": lambda steps: 1,
    "bim": lambda steps: steps,
    "pgd": lambda steps: steps,
    "mifgsm": lambda steps: steps,
    "aa": lambda steps: steps,
}


def ours(name: str, model, x, y, eps: float, steps: int, score: bool, target=None, target_images=None):
    """`score=False` is the like-for-like run (torchattacks returns images only); `score=True` is what
    `attacks.run` does by default: one clean and one final forward more, to report predictions."""
    extra = {"target_images": target_images} if name == "aa" else {}
    return attacks.run(name, model, x, y=y, target=target, score=score, **PARAMS[name](eps, steps), **extra)


def floor_seconds(model, x, y, passes: int) -> float:
    """`passes` forward+backward passes of the batch back to back: the cost floor of a K-step attack."""
    x = x.detach().requires_grad_(True)

    def passes_():
        for _ in range(passes):
            torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)

    return timed(passes_)[0]


def measure(model, x, names, steps, repeats, slice_for_reference) -> tuple[list[dict], float]:
    """Interleaved repetitions of: the floor, ours unscored, ours scored, torchattacks (where it has the attack).

    The floor ratio is the median over repetitions of ours / (K forward+backward passes timed
    just before it), so a machine that speeds up or slows down between repetitions cancels out.

    torchattacks times on a slice are scaled to the batch (its DeepFool and JSMA loop over
    images); success rates are compared on that same slice.
    """
    eps = EPS[model.domain]
    with torch.no_grad():
        y = model(x).argmax(1)  # attack the model's own predictions, as torchattacks does with given labels
    target = targets.runner_up(model, x)
    targeted = {"jsma", "aa"}
    times = {n: {"bare": [], "scored": [], "theirs": []} for n in names}
    success = {n: {} for n in names}
    floors = []
    paired_floors = {n: [] for n in names}
    steps_of = {n: (FLOOR_ITERATIONS[n](steps) if n in FLOOR_ITERATIONS else None) for n in names}
    for rep in range(repeats):
        floors.append(floor_seconds(model, x, y, steps) / steps)
        for name in names:
            tgt = target if name in targeted else None
            goal = None
            if name == "aa":  # AA's target images: the neighbouring image, its class the target where it differs
                goal = x.roll(1, 0)
                tgt = torch.where(y.roll(1, 0) != y, y.roll(1, 0), target)
            labels = tgt if name in targeted else y
            k = slice_for_reference.get(name, x.shape[0])

            def bare():
                if steps_of[name]:  # the floor right before the attack, so drifts in machine speed hit both alike
                    paired_floors[name].append(floor_seconds(model, x, y, steps_of[name]))
                seconds, result = timed(lambda: ours(name, model, x, y, eps, steps, False, tgt, goal))
                times[name]["bare"].append(seconds)
                success[name]["ours"] = float(
                    fooled(model, result.x_adv[:k], labels[:k], name in targeted).float().mean()
                )

            def scored():
                times[name]["scored"].append(timed(lambda: ours(name, model, x, y, eps, steps, True, tgt, goal))[0])

            def theirs():
                if name == "aa":  # torchattacks has no feature-level attack: the floor is its reference
                    return
                atk = reference(name, model, eps, steps)
                seconds, adv = timed(lambda: atk(x[:k], labels[:k]))
                times[name]["theirs"].append(seconds * x.shape[0] / k)
                success[name]["theirs"] = float(fooled(model, adv, labels[:k], name in targeted).float().mean())

            # ABBA order: whoever runs first in one repetition runs last in the next (warm caches, clocks).
            for run in [bare, scored, theirs] if rep % 2 == 0 else [theirs, scored, bare]:
                run()
    floor = statistics.median(floors)
    rows = []
    for name in names:
        bare, scored, theirs = times[name]["bare"], times[name]["scored"], times[name]["theirs"]
        row = {
            "attack": name,
            "batch": int(x.shape[0]),
            "steps": steps,
            "ours": spread(bare),
            "ours_scored": spread(scored),
            "theirs": spread(theirs) if theirs else None,
            "ours_success": success[name]["ours"],
            "theirs_success": success[name].get("theirs"),
            "images_for_success": slice_for_reference.get(name, int(x.shape[0])),
            "over_floor": statistics.median([b / f for b, f in zip(bare, paired_floors[name])])
            if steps_of[name]
            else None,
        }
        row["ours_over_theirs"] = statistics.median(bare) / statistics.median(theirs) if theirs else None
        row["scored_over_theirs"] = statistics.median(scored) / statistics.median(theirs) if theirs else None
        rows.append(row)
    return rows, floor


def precision_agreement(model, x) -> dict:
    """How far the model's autocast precision moves its logits from float32 on this batch."""
    precision = model.precision
    if precision == "fp32":
        return {"precision": precision}
    with torch.no_grad():
        low = model(x)
        full = model.set_precision("fp32")(x)
    model.set_precision(precision)
    return {
        "precision": precision,
        "top1_agreement": float((low.argmax(1) == full.argmax(1)).float().mean()),
        "max_logit_change": float((low - full).abs().max()),
        "max_logit": float(full.abs().max()),
    }


def main(argv=None) -> int:
    parser = bench_parser(__doc__, repeats=3)
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "fp16"],
        help="autocast precision of the models (both libraries attack the same model)",
    )
    args = parser.parse_args(argv)
    two_cores()
    repeats = 1 if args.quick else args.repeats
    steps = 2 if args.quick else 10
    report = []
    fm = models.load("fmnist-lenet-0", device=args.device, precision=args.precision)
    x = fashion_mnist.test_split()[0][: 16 if args.quick else 256].to(fm.device)
    # Quick mode skips torchattacks' JSMA: tens of seconds per image even on 28×28.
    names = (
        ["fgsm", "bim", "aa", "deepfool"]
        if args.quick
        else ["fgsm", "bim", "pgd", "mifgsm", "aa", "cw", "deepfool", "jsma"]
    )
    rows, floor = measure(fm, x, names, steps, repeats, {"deepfool": 2 if args.quick else 32, "jsma": 32})
    report.append(
        {"model": fm.name, "device": str(fm.device), "floor_s": floor, "rows": rows, **precision_agreement(fm, x)}
    )
    if not args.quick:
        lite = models.load("efficientnet-lite0", device=args.device, precision=args.precision)
        x = torch.cat([images.load(p, lite) for p in images.gallery().values()] * 2)[:8].to(lite.device)
        rows, floor = measure(lite, x, ["fgsm", "bim", "pgd", "mifgsm", "aa", "cw"], steps, repeats, {})
        report.append(
            {
                "model": lite.name,
                "device": str(lite.device),
                "floor_s": floor,
                "rows": rows,
                **precision_agreement(lite, x),
            }
        )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for block in report:
        batch = block["rows"][0]["batch"]
        print(
            f"\n{block['model']} on {block['device']} in {block['precision']}, batch {batch}, one forward+backward "
            f"{block['floor_s']:.3f} s (median of K back to back); times: median (min–max) of {repeats}"
        )
        if block["precision"] != "fp32":
            print(
                f"{block['precision']} vs fp32 on this batch: top-1 agreement {block['top1_agreement']:.1%}, "
                f"max |Δlogit| {block['max_logit_change']:.3f} (largest |logit| {block['max_logit']:.1f})"
            )
        print(
            "| attack | ours (s) | ours, scored (s) | torchattacks (s) | ours / theirs | scored / theirs "
            "| success ours / theirs | ours / (K × fwd+bwd, timed just before) | images/s (ours) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in block["rows"]:
            theirs_success = "—" if r["theirs_success"] is None else f"{r['theirs_success']:.0%}"
            print(
                f"| {r['attack']} | {cell(r['ours'])} | {cell(r['ours_scored'])} | {cell(r['theirs'])} | "
                f"{ratio(r['ours_over_theirs'])} | {ratio(r['scored_over_theirs'])} | "
                f"{r['ours_success']:.0%} / {theirs_success} (first {r['images_for_success']}) | "
                f"{ratio(r['over_floor'])} | {batch / r['ours']['median_s']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
