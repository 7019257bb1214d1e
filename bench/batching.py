"""Batching, measured side by side (issue 8 §3).

1. Noisy multi-model averaging of one image (the interactive case): one batched call of
   `averaged` over m models × n copies vs a loop of m·n single-copy calls with the same
   noise; the results must agree.
2. DeepFool on efficientnet-lite0: the top-10 candidate classes vs all 1,000, one iteration.

    python bench/batching.py [--repeats 3] [--quick] [--json]
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
from engine import attacks, data, images, models  # noqa: E402
from engine.attacks.averaging import averaged  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def averaging_case(names: list[str], x: torch.Tensor, copies: int, sigma: float, repeats: int, **params) -> dict:
    ms = [models.load(n, device="cpu") for n in names]
    noise = torch.randn(len(ms), copies, *x.shape, generator=torch.Generator().manual_seed(0)) * sigma

    def batched():
        return averaged("bim", ms, x, copies=copies, noise=noise, **params).delta

    def loop():
        parts = [averaged("bim", [ms[i]], x, copies=1, noise=noise[i, j][None, None], **params).delta
                 for i in range(len(ms)) for j in range(copies)]
        return torch.stack(parts).mean(0)

    b_times, l_times = [], []
    for _ in range(repeats):
        t, b = _timed(batched)
        b_times.append(t)
        t, ref = _timed(loop)
        l_times.append(t)
    return {"models": names, "m": len(ms), "n": copies, "batched_s": statistics.median(b_times),
            "loop_s": statistics.median(l_times), "speed-up": statistics.median(l_times) / statistics.median(b_times),
            "max_abs_difference": float((b - ref).abs().max()), "spread_batched": [min(b_times), max(b_times)],
            "spread_loop": [min(l_times), max(l_times)]}


def deepfool_case(repeats: int, quick: bool) -> dict:
    model = models.load("efficientnet-lite0", device="cpu")
    x = images.load(images.gallery()["coffee"], model)
    classes = 30 if quick else 1000
    top, full = [], []
    for _ in range(repeats):
        top.append(_timed(lambda: attacks.run("deepfool", model, x, steps=1, num_classes=10))[0])
        full.append(_timed(lambda: attacks.run("deepfool", model, x, steps=1, num_classes=classes))[0])
    return {"model": model.name, "iterations": 1, "top10_s": statistics.median(top), "all_s": statistics.median(full),
            "all_classes": classes, "speed-up": statistics.median(full) / statistics.median(top)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    repeats = 1 if args.quick else args.repeats
    fm = ["fmnist-lenet-0", "fmnist-vgg-0", "fmnist-resnet-0", "fmnist-mobilenet-0"]
    x = data.test_split()[0][:1]
    report = {"averaging": [averaging_case(fm[:2] if args.quick else fm, x, 4 if args.quick else 100, 0.2, repeats,
                                           eps=0.2, steps=2 if args.quick else 10)]}
    if not args.quick:
        lite = models.load("efficientnet-lite0")
        xl = images.load(images.gallery()["coffee"], lite)
        report["averaging"].append(averaging_case(["efficientnet-lite0", "efficientnet-lite1"], xl, 10, 0.05, repeats,
                                                  eps=0.02, steps=5))
    report["deepfool"] = deepfool_case(repeats, args.quick)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("| averaging (BIM) | m × n | batched (s) | loop (s) | speed-up | max |Δδ| |")
    print("|---|---|---|---|---|---|")
    for r in report["averaging"]:
        print(f"| {', '.join(r['models'])} | {r['m']} × {r['n']} | {r['batched_s']:.2f} | {r['loop_s']:.2f} | "
              f"{r['speed-up']:.1f}× | {r['max_abs_difference']:.1e} |")
    d = report["deepfool"]
    print(f"\nDeepFool, {d['model']}, one iteration: top-10 {d['top10_s']:.2f} s, all {d['all_classes']} classes "
          f"{d['all_s']:.2f} s: {d['speed-up']:.0f}× faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
