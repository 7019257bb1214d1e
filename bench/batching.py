"""Batching, measured side by side.

1. Noisy multi-model averaging of one image (the interactive case): one batched call of
   `averaged` over m models × n copies vs a loop of m·n single-copy calls with the same
   noise; the results must agree.
2. Many images: BIM-10 on a batch of Fashion-MNIST images in one call vs one call per image
   (on 2 CPU cores a big batch already keeps both busy, so the gain is small; on a GPU it is not).
3. DeepFool on efficientnet-lite0: the top-10 candidate classes vs all 1,000, one iteration.
4. FGSM at many ε (the Explorer's ε slider: 22 budgets, one photo, three models; a sweep: 10 budgets,
   256 Fashion-MNIST images, scored on two models): one gradient for every ε (`attacks.fgsm_many`)
   vs one FGSM run per ε, each followed by the same forwards.

    python bench/batching.py [--repeats 3] [--quick] [--json] [--device cuda]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_common import parser as bench_parser  # noqa: E402
from bench_common import timed, two_cores

from engine import attacks, images, models  # noqa: E402
from engine.attacks.averaging import averaged  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402

DEVICE = "cpu"


def _side_by_side(batched, loop, repeats: int) -> dict:
    """Interleaved timings of the batched call and the loop, and how far their outputs differ."""
    b_times, l_times = [], []
    for _ in range(repeats):
        t, b = timed(batched)
        b_times.append(t)
        t, ref = timed(loop)
        l_times.append(t)
    return {
        "batched_s": statistics.median(b_times),
        "loop_s": statistics.median(l_times),
        "speed-up": statistics.median(l_times) / statistics.median(b_times),
        "max_abs_difference": float((b - ref).abs().max()),
        "spread_batched": [min(b_times), max(b_times)],
        "spread_loop": [min(l_times), max(l_times)],
    }


def averaging_case(names: list[str], x: torch.Tensor, copies: int, sigma: float, repeats: int, **params) -> dict:
    ms = [models.load(n, device=DEVICE) for n in names]
    x = x.to(ms[0].device)
    noise = torch.randn(len(ms), copies, *x.shape, generator=torch.Generator().manual_seed(0)).to(x.device) * sigma

    def batched():
        return averaged("bim", ms, x, copies=copies, noise=noise, **params).delta

    def loop():
        parts = [
            averaged("bim", [ms[i]], x, copies=1, noise=noise[i, j][None, None], **params).delta
            for i in range(len(ms))
            for j in range(copies)
        ]
        return torch.stack(parts).mean(0)

    return {"models": names, "m": len(ms), "n": copies, **_side_by_side(batched, loop, repeats)}


def many_images_case(count: int, repeats: int, steps: int) -> dict:
    """One BIM call on `count` images vs `count` calls of one image (same labels, same δ)."""
    model = models.load("fmnist-lenet-0", device=DEVICE)
    x = fashion_mnist.test_split()[0][:count].to(model.device)
    with torch.no_grad():
        y = model(x).argmax(1)

    def batched():
        return attacks.run("bim", model, x, y=y, eps=0.2, steps=steps, score=False).x_adv

    def loop():
        return torch.cat(
            [
                attacks.run("bim", model, x[i : i + 1], y=y[i : i + 1], eps=0.2, steps=steps, score=False).x_adv
                for i in range(count)
            ]
        )

    row = _side_by_side(batched, loop, repeats)
    return {
        "model": model.name,
        "images": count,
        "steps": steps,
        **row,
        "images_per_s_batched": count / row["batched_s"],
    }


def deepfool_case(repeats: int, quick: bool) -> dict:
    model = models.load("efficientnet-lite0", device=DEVICE)
    x = images.load(images.gallery()["coffee"], model).to(model.device)
    classes = 30 if quick else 1000
    top, full = [], []
    for _ in range(repeats):
        top.append(timed(lambda: attacks.run("deepfool", model, x, steps=1, num_classes=10))[0])
        full.append(timed(lambda: attacks.run("deepfool", model, x, steps=1, num_classes=classes))[0])
    return {
        "model": model.name,
        "iterations": 1,
        "top10_s": statistics.median(top),
        "all_s": statistics.median(full),
        "all_classes": classes,
        "speed-up": statistics.median(full) / statistics.median(top),
    }


def many_eps_case(names: list[str], x: torch.Tensor, eps: list[float], repeats: int) -> dict:
    """`fgsm_many` on every model vs, per ε, an FGSM run on the first and a forward of each (the logits compared)."""
    ms = [models.load(n, device=DEVICE) for n in names]
    x = x.to(ms[0].device)

    def batched():
        return torch.cat([v.flatten(0, 1) for v in attacks.fgsm_many(ms, x, eps)["logits"].values()])

    def loop():
        out = {m.name: [] for m in ms}
        for e in eps:
            adv = attacks.run("fgsm", ms[0], x, eps=e, score=False).x_adv
            with torch.no_grad():
                for m in ms:
                    out[m.name].append(m(adv))
        return torch.cat([torch.cat(v) for v in out.values()])

    return {"models": names, "images": int(x.shape[0]), "eps_count": len(eps), **_side_by_side(batched, loop, repeats)}


def main(argv=None) -> int:
    parser = bench_parser(__doc__, repeats=3)
    parser.add_argument(
        "--deepfool-repeats",
        type=int,
        default=1,
        help="all 1,000 classes take minutes per run on 2 cores; the ratio is ~100×, so one run is enough",
    )
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    two_cores()
    repeats = 1 if args.quick else args.repeats
    fm = ["fmnist-lenet-0", "fmnist-vgg-0", "fmnist-resnet-0", "fmnist-mobilenet-0"]
    x = fashion_mnist.test_split()[0][:1]
    report = {
        "averaging": [
            averaging_case(
                fm[:2] if args.quick else fm,
                x,
                4 if args.quick else 100,
                0.2,
                repeats,
                eps=0.2,
                steps=2 if args.quick else 10,
            )
        ]
    }
    if not args.quick:
        lite = models.load("efficientnet-lite0", device=DEVICE)
        xl = images.load(images.gallery()["coffee"], lite)
        report["averaging"].append(
            averaging_case(["efficientnet-lite0", "efficientnet-lite1"], xl, 10, 0.05, repeats, eps=0.02, steps=5)
        )
    report["many_images"] = many_images_case(8 if args.quick else 256, repeats, 2 if args.quick else 10)
    report["deepfool"] = deepfool_case(1 if args.quick else args.deepfool_repeats, args.quick)
    photo = images.load(images.gallery()["coffee"], models.load("efficientnet-lite0", device=DEVICE))
    slider = [round(0.04 * i / 21, 4) for i in range(22)]  # the Explorer's grid at its default ε 0.01 (eps_panels)
    report["many_eps"] = [
        many_eps_case(
            ["efficientnet-lite0"]
            if args.quick
            else ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"],
            photo,
            slider[: 3 if args.quick else None],
            repeats,
        ),
        many_eps_case(
            fm[:2],
            fashion_mnist.test_split()[0][: 8 if args.quick else 256],
            [round(0.03 * i, 2) for i in range(1, 4 if args.quick else 11)],
            repeats,
        ),
    ]
    report["device"] = DEVICE
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"device: {report['device']}")
    print("| averaging (BIM) | m × n | batched (s) | loop (s) | speed-up | max |Δδ| |")
    print("|---|---|---|---|---|---|")
    for r in report["averaging"]:
        print(
            f"| {', '.join(r['models'])} | {r['m']} × {r['n']} | {r['batched_s']:.2f} | {r['loop_s']:.2f} | "
            f"{r['speed-up']:.1f}× | {r['max_abs_difference']:.1e} |"
        )
    r = report["many_images"]
    print(
        f"\nMany images, {r['model']}, BIM-{r['steps']} on {r['images']} images: one batched call "
        f"{r['batched_s']:.2f} s "
        f"({r['images_per_s_batched']:.0f} images/s) vs one call per image {r['loop_s']:.2f} s: "
        f"{r['speed-up']:.1f}× (max |Δx_adv| {r['max_abs_difference']:.1e})"
    )
    d = report["deepfool"]
    print(
        f"\nDeepFool, {d['model']}, one iteration: top-10 {d['top10_s']:.2f} s, all {d['all_classes']} classes "
        f"{d['all_s']:.2f} s: {d['speed-up']:.0f}× faster"
    )
    print("\n| FGSM at many ε | images × ε | one gradient (s) | one run per ε (s) | speed-up | max |Δlogit| |")
    print("|---|---|---|---|---|---|")
    for r in report["many_eps"]:
        print(
            f"| {', '.join(r['models'])} | {r['images']} × {r['eps_count']} | {r['batched_s']:.2f} | "
            f"{r['loop_s']:.2f} | "
            f"{r['speed-up']:.1f}× | {r['max_abs_difference']:.1e} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
