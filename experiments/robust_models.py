"""Adversarially robust Fashion-MNIST models beside their plain twins and beside noisy multi-model averaging.

Writes experiments/results/robust_models.json (every number), .md (the tables) and .png
(the display-normalised perturbations, one row per setting).

    .venv/bin/python experiments/robust_models.py            # ~15 min on 2 CPU cores
    .venv/bin/python experiments/robust_models.py --quick    # seconds, to check it runs

1. Clean and PGD-20 accuracy at ε 0.1 and 0.2 of every robust model and its plain twin.
2. Machine recognisability (the display-normalised δ alone, classified by the held-out
   judges as the image's class) and contour vs background (δ' = ε·sign(δ) only inside the
   object or only outside, with random ±ε controls), for the single-model BIM perturbation of
   each robust model and of its plain twin, beside noisy multi-model averaging of the plain
   source models (the thesis' route to object-like perturbations).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recognisable_perturbations import picture  # noqa: E402  (this folder: the same grid of images)

from engine import domains, models  # noqa: E402
from engine.analysis import masking, recognisable, robust  # noqa: E402
from engine.analysis.target_images import evaluation_split  # noqa: E402
from engine.report import environment  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BIM = {"eps": 0.2, "alpha": 0.008, "steps": 50}  # the Fashion-MNIST row of the recognisability experiment
NOISY = "noisy multi-model (plain sources)"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    domain = domains.get(domains.FASHION_MNIST_NAME)
    if not domain.twins:
        print(
            "error: the zoo has no robust models; train them: python -m engine.zoo.train --model "
            "fmnist-lenet-robust-0 fmnist-vgg-robust-0",
            file=sys.stderr,
        )
        return 2
    n, pgd_n = (20, 50) if args.quick else (200, 1000)
    bim = {**BIM, "steps": 2} if args.quick else BIM
    copies = 2 if args.quick else domain.averaging["copies"]
    eps = domain.averaging["eps"]
    pairs = [(models.load(p, device="cpu"), models.load(r, device="cpu")) for p, r in domain.twins]
    sources = [models.load(s, device="cpu") for s in domain.sources]
    judges = [models.load(j, device="cpu") for j in domain.judges]

    (x, y), _ = evaluation_split(pairs[0][0], pgd_n)
    accuracy = []
    for plain, tough in pairs:
        for m in (plain, tough):
            accuracy += [
                {**r, "robust": m is tough, "twin": (tough if m is plain else plain).name}
                for r in robust.pgd_accuracy(m, x, y, (0.1, 0.2), steps=2 if args.quick else 20)
            ]
            log(f"PGD accuracy of {m.name} done")

    # Images every judge gets right, so a judge's answer on the perturbation is not just its clean mistake.
    xs, ys = x[: 4 * n], y[: 4 * n]
    with torch.no_grad():
        ok = torch.stack([j(xs).argmax(1) == ys for j in judges]).all(0)
    xs, ys = xs[ok][:n], ys[ok][:n]
    masks = domain.object_masks(judges[0], xs)
    deltas = {}
    for plain, tough in pairs:
        for m in (plain, tough):
            got = recognisable.perturbations([m], xs, ys, {"bim": bim}, copies=1, sigma=0.0, settings=["single-model"])
            deltas[("bim", f"single-model: {m.name}")] = got[("bim", "single-model")]
            log(f"single-model δ of {m.name} done")
    noisy = recognisable.perturbations(
        sources, xs, ys, {"bim": bim}, copies=copies, sigma=domain.averaging["sigma"], settings=["noisy multi-model"]
    )
    deltas[("bim", NOISY)] = noisy[("bim", "noisy multi-model")]
    log("noisy multi-model δ done")

    out = {
        "config": {
            "bim": bim,
            "quantise_eps": eps,
            "copies": copies,
            "sigma": domain.averaging["sigma"],
            "sources": list(domain.sources),
            "judges": list(domain.judges),
            "twins": [list(t) for t in domain.twins],
            "pgd_images": int(x.shape[0]),
            "images": int(xs.shape[0]),
        },
        "pgd accuracy": accuracy,
        "recognisability": recognisable.recognisability_table(judges, ys, deltas, domain.name),
        "contour": {
            setting: masking.contour_vs_background(judges, xs, ys, d, masks, eps) for (_, setting), d in deltas.items()
        },
        "strength": recognisable.strength_table(judges, xs, ys, deltas, eps),
    }
    out["seconds"] = time.perf_counter() - started
    out["environment"] = environment(xs.device)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "robust_models" + ("_quick" if args.quick else "")
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=1))
    shown = min(8, xs.shape[0])
    rows = [xs[:shown]] + [recognisable.display_normalise(d[:shown], domain.name) for d in deltas.values()]
    picture(rows, args.out / f"{stem}.png", 3)
    (args.out / f"{stem}.md").write_text(markdown(out, list(deltas)))
    log(f"wrote {args.out / stem}.* in {out['seconds']:.0f} s")
    return 0


def _mean(rows: list[dict], value: str, **where) -> float:
    picked = [r[value] for r in rows if all(r[k] == v for k, v in where.items())]
    return float(np.mean(picked))


def markdown(out: dict, keys: list) -> str:
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    cfg = out["config"]
    se = lambda p, k: f"± {100 * (p * (1 - p) / k) ** 0.5:.1f}"  # noqa: E731
    lines = [
        "# Robust models beside plain twins and noisy multi-model averaging (Fashion-MNIST)",
        "",
        f"Generated by `.venv/bin/python experiments/robust_models.py` in {out['seconds']:.0f} s. "
        f"Robust models: adversarially trained twins (FGSM from a random start; see assets/models/README.md).",
        "",
        f"## Accuracy under PGD-20 (random start, α = 2.5ε/20), first {cfg['pgd_images']} test images",
        "",
        "| model | robust | clean | PGD-20 ε 0.1 | PGD-20 ε 0.2 |",
        "|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["model"] for r in out["pgd accuracy"]):
        acc = {r["eps"]: r["accuracy"] for r in out["pgd accuracy"] if r["model"] == name}
        is_robust = next(r["robust"] for r in out["pgd accuracy"] if r["model"] == name)
        lines.append(
            f"| {name} | {'yes' if is_robust else 'no'} | {pct(acc[0.0])} | {pct(acc[0.1])} | {pct(acc[0.2])} |"
        )
    k = cfg["images"] * len(cfg["judges"])
    lines += [
        "",
        f"## Machine recognisability and contour vs background ({cfg['images']} test images every judge "
        f"classifies correctly; judges {', '.join(cfg['judges'])}; BIM {json.dumps(cfg['bim'])}; "
        f"δ' = {cfg['quantise_eps']}·sign(δ); noisy multi-model: the {len(cfg['sources'])} plain sources, "
        f"n = {cfg['copies']}, σ = {cfg['sigma']})",
        "",
        "Recognisability: the display-normalised δ alone, classified as the image's class (± one binomial "
        f"standard error over {k} judge answers). Contour/background: judges' accuracy with δ' only inside / only "
        "outside the object, and a random ±ε control on the same pixels.",
        "",
        "| perturbation | recognisability | x + δ' | object δ' | object control | background δ' | background control |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, setting in keys:
        rec = _mean(out["recognisability"], "source class share", setting=setting)
        c = out["contour"][setting]
        part = lambda p, kind, c=c: pct(_mean(c, "accuracy", part=p, perturbation=kind))  # noqa: E731
        full = _mean(out["strength"], "accuracy", setting=setting)
        lines.append(
            f"| {setting} | {pct(rec)} {se(rec, k)} | {pct(full)} | {part('object', chr(948) + chr(39))} | "
            f"{part('object', 'random ±ε')} | {part('background', chr(948) + chr(39))} | "
            f"{part('background', 'random ±ε')} |"
        )
    clean = _mean(out["strength"], "accuracy", setting="clean")
    lines += [
        "",
        f"Judges' clean accuracy on these images: {pct(clean)} (they were chosen so).",
        "",
        "Picture (robust_models.png): the images, then one row per perturbation in the order of the table, "
        "display-normalised as the thesis shows perturbations.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
