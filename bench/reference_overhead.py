"""Our attacks against torchattacks' on the same model, batch and parameters, and against the cost floor (issue 8).

For each attack: median seconds of ours and of torchattacks (interleaved repetitions,
spread printed), the ratio ours/theirs, both success rates, and for iterative
attacks the ratio to the floor K × (one forward+backward of the batch), measured
in the same run.

    python bench/reference_overhead.py                       # Fashion-MNIST LeNet, batch 256, and Lite0, batch 8
    python bench/reference_overhead.py --quick --json        # CI smoke mode

torchattacks runs DeepFool one image and one class gradient at a time (a Jacobian
over all classes) and JSMA one image at a time; on EfficientNet-Lite0 (1,000
classes) its DeepFool needs minutes per image, so DeepFool and JSMA are compared
on Fashion-MNIST only, on a slice of the batch for torchattacks (per-image cost
scaled to the batch, which their loop makes exact up to noise).
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

EPS = {"fashion-mnist": 0.2, "imagenet": 0.03}


def reference(name: str, model, eps: float, steps: int):
    """The torchattacks object with our parameters (same α rules, no random start unless PGD's)."""
    import torchattacks

    alpha = eps / steps
    return {
        "fgsm": lambda: torchattacks.FGSM(model, eps=eps),
        "bim": lambda: torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps),
        "pgd": lambda: torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True),
        "mifgsm": lambda: torchattacks.MIFGSM(model, eps=eps, alpha=alpha, steps=steps, decay=1.0),
        "cw": lambda: torchattacks.CW(model, c=1.0, kappa=0.0, steps=steps, lr=0.01),
        "deepfool": lambda: torchattacks.DeepFool(model, steps=steps, overshoot=0.02),
        "jsma": lambda: torchattacks.JSMA(model, theta=1.0, gamma=0.1),
    }[name]()


def ours(name: str, model, x, y, eps: float, steps: int, target=None):
    params = {"fgsm": {"eps": eps}, "bim": {"eps": eps, "steps": steps}, "pgd": {"eps": eps, "steps": steps},
              "mifgsm": {"eps": eps, "steps": steps}, "cw": {"steps": steps, "binary_search_steps": 1},
              "deepfool": {"steps": steps, "num_classes": 10}, "jsma": {"max_distortion": 0.1}}[name]
    return attacks.run(name, model, x, y=y, target=target, **params)


def floor_seconds(model, x, y) -> float:
    x = x.detach().requires_grad_(True)
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    torch.autograd.grad(loss, x)
    return time.perf_counter() - start


def measure(model, x, y, names, steps, repeats, slice_for_reference) -> list[dict]:
    eps = EPS[model.domain]
    with torch.no_grad():
        y = model(x).argmax(1)  # attack the model's own predictions, as torchattacks does with given labels
    target = attacks.runner_up(model, x)
    times = {n: {"ours": [], "theirs": []} for n in names}
    success = {n: {} for n in names}
    floors = []
    for _ in range(repeats):
        floors.append(floor_seconds(model, x, y))
        for name in names:
            start = time.perf_counter()
            result = ours(name, model, x, y, eps, steps, target=target if name == "jsma" else None)
            times[name]["ours"].append(time.perf_counter() - start)
            success[name]["ours"] = result.success_rate
            k = slice_for_reference.get(name, x.shape[0])
            atk = reference(name, model, eps, steps)
            if name == "jsma":
                atk.set_mode_targeted_by_label(quiet=True)
            labels = target[:k] if name == "jsma" else y[:k]
            start = time.perf_counter()
            adv = atk(x[:k], labels)
            theirs = (time.perf_counter() - start) * x.shape[0] / k
            times[name]["theirs"].append(theirs)
            with torch.no_grad():
                pred = model(adv).argmax(1)
            success[name]["theirs"] = float((pred == labels).float().mean() if name == "jsma" else (pred != labels).float().mean())
    floor = statistics.median(floors)
    rows = []
    for name in names:
        o, t = times[name]["ours"], times[name]["theirs"]
        iterations = {"fgsm": 1, "bim": steps, "pgd": steps, "mifgsm": steps}.get(name)
        rows.append({
            "attack": name, "batch": int(x.shape[0]), "steps": steps,
            "ours_median_s": statistics.median(o), "ours_min_s": min(o), "ours_max_s": max(o),
            "theirs_median_s": statistics.median(t), "theirs_min_s": min(t), "theirs_max_s": max(t),
            "ours_over_theirs": statistics.median(o) / statistics.median(t),
            "ours_success": success[name]["ours"], "theirs_success": success[name]["theirs"],
            "theirs_images_timed": slice_for_reference.get(name, int(x.shape[0])),
            "over_floor": statistics.median(o) / (iterations * floor) if iterations else None,
        })
    return rows, floor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    repeats = 1 if args.quick else args.repeats
    steps = 2 if args.quick else 10
    report = []
    fm = models.load("fmnist-lenet-0", device=args.device)
    x = data.test_split()[0][: 16 if args.quick else 256].to(fm.device)
    # Quick mode skips torchattacks' JSMA: tens of seconds per image even on 28×28.
    names = ["fgsm", "bim", "deepfool"] if args.quick else ["fgsm", "bim", "pgd", "mifgsm", "cw", "deepfool", "jsma"]
    rows, floor = measure(fm, x, None, names, steps, repeats, {"deepfool": 2 if args.quick else 32, "jsma": 2})
    report.append({"model": fm.name, "floor_s": floor, "rows": rows})
    if not args.quick:
        lite = models.load("efficientnet-lite0", device=args.device)
        x = torch.cat([images.load(p, lite) for p in images.gallery().values()] * 2)[:8]
        rows, floor = measure(lite, x, None, ["fgsm", "bim", "pgd", "mifgsm", "cw"], steps, repeats, {})
        report.append({"model": lite.name, "floor_s": floor, "rows": rows})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for block in report:
        print(f"\n{block['model']}, batch {block['rows'][0]['batch']}, one forward+backward {block['floor_s']:.3f} s")
        print("| attack | ours (s) | torchattacks (s) | ours / theirs | success ours / theirs | ours / (K × fwd+bwd) |")
        print("|---|---|---|---|---|---|")
        for r in block["rows"]:
            floor = "—" if r["over_floor"] is None else f"{r['over_floor']:.2f}"
            print(f"| {r['attack']} | {r['ours_median_s']:.3f} ({r['ours_min_s']:.3f}–{r['ours_max_s']:.3f}) | "
                  f"{r['theirs_median_s']:.3f} ({r['theirs_min_s']:.3f}–{r['theirs_max_s']:.3f}) | {r['ours_over_theirs']:.2f} | "
                  f"{r['ours_success']:.0%} / {r['theirs_success']:.0%} | {floor} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
