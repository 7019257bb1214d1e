"""Reproduce the thesis' analyses of human-recognisable perturbations (Menn 2023) on this project's models.

Writes experiments/results/recognisable_<domain>.json (every number) and .md (the
tables, next to the thesis' figures), plus a PNG of the perturbations.

    python experiments/recognisable_perturbations.py --domain fashion-mnist   # ~30 min on 2 CPU cores
    python experiments/recognisable_perturbations.py --domain imagenet        # the 36 gallery photos: ~2 h (6 chunks)
    python experiments/recognisable_perturbations.py --domain fashion-mnist --quick   # a minute, for CI

Fashion-MNIST: six source models (one per family, seed 0) make the perturbations,
the four held-out seed-1 models judge them; the single-model setting uses
fmnist-resnet-0 (a black box to every test model). ImageNet: EfficientNet-Lite0
and Lite1 are the sources, Lite2 the held-out test model, Lite0 the single model.

The perturbations are made `--chunk` images at a time and each chunk is kept under
`--cache` (out/ by default), so a run that is stopped resumes where it was: the
photo run takes hours on two cores and may span several sittings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine import domains, images, models
from engine.analysis import checkerboard, masking, recognisable
from engine.datasets import fashion_mnist
from engine.report import environment

RESULTS = Path(__file__).resolve().parent / "results"
TORCHVISION_JUDGES = ("vgg16_bn", "resnet50", "densenet121")  # the thesis' ImageNet test models we can load

CONFIG = {
    "fashion-mnist": {
        "sources": [
            "fmnist-resnet-0",
            "fmnist-lenet-0",
            "fmnist-vgg-0",
            "fmnist-densenet-0",
            "fmnist-mobilenet-0",
            "fmnist-mlp-0",
        ],
        "tests": ["fmnist-lenet-1", "fmnist-vgg-1", "fmnist-resnet-1", "fmnist-densenet-1"],
        # Table 4.1 (MNIST row); C&W runs 100 Adam steps instead of 1,000 for CPU time.
        "attacks": {
            "bim": {"eps": 0.2, "alpha": 0.008, "steps": 50},
            "cw": {"c": 1.0, "kappa": 0.0, "steps": 100},
            "deepfool": {"overshoot": 0.02, "steps": 50, "num_classes": 10},
        },
        "copies": 20,
        "sigma": 0.2,
        "eps": 0.2,
        "per_class": 5,
        "noise_samples": 512,
        "mask_steps": [-2, -1, 0, 1, 2, 3],
        "linf": [round(0.02 * i, 2) for i in range(1, 11)],
        "checker_sigmas": [0.05, 0.1, 0.2, 0.3, 0.5],
        "checker_copies": 1000,
        "checker_params": {"eps": 0.2, "steps": 20},
    },
    "imagenet": {
        "sources": ["efficientnet-lite0", "efficientnet-lite1"],
        "tests": ["efficientnet-lite2"],
        # Table 4.1/4.2 (ImageNet rows), shortened for CPU: BIM 20 steps (α = 2ε/K as in the thesis), C&W 30 steps.
        "attacks": {
            "bim": {"eps": 0.02, "alpha": 0.002, "steps": 20, "sigma": 0.02},
            "cw": {"c": 5.0, "kappa": 5.0, "steps": 30, "sigma": 0.05},
            "deepfool": {"overshoot": 0.02, "steps": 50, "num_classes": 10, "sigma": 0.05},
        },
        "copies": 10,
        "sigma": 0.05,
        "eps": 0.02,
        "noise_samples": 128,
        "mask_steps": [-16, -8, -4, 0, 4, 8, 16],
        "linf": [round(0.01 * i, 2) for i in range(1, 11)],
        "checker_sigmas": [0.05, 0.1, 0.2, 0.5],
        "checker_copies": 64,
        "checker_params": {"eps": 0.02, "steps": 10},
    },
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def quick(cfg: dict) -> dict:
    """A seconds-long version that exercises every step (CI)."""
    cfg = json.loads(json.dumps(cfg))
    cfg["sources"], cfg["tests"] = cfg["sources"][:2], cfg["tests"][:1]
    cfg["attacks"] = {k: {**v, "steps": 2} for k, v in cfg["attacks"].items()}
    cfg.update(
        copies=2,
        per_class=1,
        noise_samples=16,
        checker_copies=4,
        checker_sigmas=cfg["checker_sigmas"][:2],
        mask_steps=[-1, 0, 1],
        linf=cfg["linf"][:2],
    )
    cfg["checker_params"]["steps"] = 2
    return cfg


def fmnist_images(per_class: int, judges) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first `per_class` test images of each class that every judge classifies correctly, and their masks."""
    x, y = fashion_mnist.test_split()
    with torch.no_grad():
        ok = torch.stack([m(x).argmax(1) == y for m in judges]).all(0)
    keep = torch.cat([((y == c) & ok).nonzero().squeeze(1)[:per_class] for c in range(len(fashion_mnist.CLASS_NAMES))])
    return x[keep], y[keep], masking.threshold_mask(x[keep])


def gallery_images(model, quick_run: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    names = list(images.gallery())[: 2 if quick_run else None]
    x = torch.cat([images.load(images.gallery()[n], model) for n in names])
    masks = torch.stack([masking.gallery_mask(n, model) for n in names])
    return x, masks, names


def picture(rows: list[torch.Tensor], path: Path, scale: int) -> None:
    """Rows of images (each N×C×H×W in [0, 1]) side by side, enlarged by `scale`."""
    tiles = [np.concatenate([images.to_uint8(img) for img in row], axis=1) for row in rows]
    grid = np.concatenate(tiles, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(
        path, optimize=True
    )


def labelled_picture(
    rows: list[list[torch.Tensor]], path: Path, scale: int, columns: list[str], labels: list[str], pad: int = 4
) -> None:
    """A grid of images (rows × columns, each C×H×W in [0, 1]) enlarged by `scale`, a title over each
    column and a label under each row, so a figure says what it shows without its caption."""
    try:  # DejaVu has δ and →; Pillow's built-in font does not
        font = ImageFont.truetype("DejaVuSans.ttf", 12)
    except OSError:
        font = ImageFont.load_default(size=12)
    h, w = (rows[0][0].shape[-2] * scale, rows[0][0].shape[-1] * scale)
    cell_w, text_h = max(w, 96), 16
    grid = Image.new("RGB", (pad + len(columns) * (cell_w + pad), text_h + len(rows) * (h + text_h + pad)), "white")
    draw = ImageDraw.Draw(grid)
    for j, title in enumerate(columns):
        draw.text((pad + j * (cell_w + pad), 2), title, fill="black", font=font)
    for i, row in enumerate(rows):
        top = text_h + i * (h + text_h + pad)
        for j, img in enumerate(row):
            tile = Image.fromarray(images.to_uint8(img)).resize((w, h), Image.NEAREST)
            grid.paste(tile, (pad + j * (cell_w + pad), top))
        draw.text((pad, top + h + 1), labels[i], fill="black", font=font)
    grid.save(path, optimize=True)


def experiment_parser(doc: str, domains: list[str] | None = None) -> argparse.ArgumentParser:
    """The flags every experiment script shares: its domain (where it has several), --quick, --out, --threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if domains:
        parser.add_argument("--domain", choices=sorted(domains), required=True)
    parser.add_argument("--quick", action="store_true", help="tiny settings, to check the script works")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__, list(CONFIG))
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="images per resumable chunk of perturbations (default: 6 photos; every Fashion-MNIST image at once)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "out",
        help="where finished chunks are kept between runs",
    )
    parser.add_argument(
        "--checkerboard-only",
        action="store_true",
        help="recompute only the checkerboard section of an existing results file",
    )
    parser.add_argument(
        "--recognisability-only",
        type=int,
        metavar="N",
        help="add to an existing results file the recognisability of the first N images' perturbations, judged "
        "among the domain's choices (the thesis' 20 on photos; DRAWS draws of the other classes) and among every "
        "class",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = quick(CONFIG[args.domain]) if args.quick else CONFIG[args.domain]
    if args.checkerboard_only:
        return redo_checkerboard(args, cfg)
    if args.recognisability_only:
        return redo_recognisability(args, cfg, args.recognisability_only)
    started = time.perf_counter()
    sources = [models.load(n, device="cpu") for n in cfg["sources"]]
    if args.domain == "imagenet" and not args.quick:  # the thesis' held-out judges, where their weights are cached
        present = {r["name"] for r in models.available() if r["available"]}
        cfg = {**cfg, "tests": cfg["tests"] + [n for n in TORCHVISION_JUDGES if n in present]}
    tests = [models.load(n, device="cpu") for n in cfg["tests"]]
    if args.domain == "fashion-mnist":
        x, y, masks = fmnist_images(cfg["per_class"], sources + tests)
        names = None
    else:
        x, masks, names = gallery_images(sources[0], args.quick)
        with torch.no_grad():  # the label every model agrees on for the gallery photos (README of assets/images)
            y = sum(torch.softmax(m(x), 1) for m in sources + tests).argmax(1)
    log(f"{args.domain}: {x.shape[0]} images, sources {cfg['sources']}, tests {cfg['tests']}")

    chunk = args.chunk or (6 if names else x.shape[0])
    deltas = chunked_perturbations(sources, x, y, cfg, chunk, args.cache / f"recognisable_{args.domain}")
    log("perturbations done")
    eps = cfg["eps"]
    out = {
        "domain": args.domain,
        "config": cfg,
        "images": x.shape[0],
        "image names": names,
        "strength": recognisable.strength_table(tests, x, y, deltas, eps),
        "recognisability": recognisable.recognisability_table(tests, y, deltas, args.domain),
        "similarity": recognisable.similarity_table(deltas),
    }
    noisy_bim = deltas[("bim", "noisy multi-model")]
    out["contour"] = {}
    for setting in recognisable.SETTINGS:
        out["contour"][setting] = masking.contour_vs_background(tests, x, y, deltas[("bim", setting)], masks, eps)
    out["mask sweep"] = masking.mask_sweep(tests, x, y, noisy_bim, masks, eps, steps=cfg["mask_steps"])
    out["linf sweep"] = masking.linf_sweep(tests, x, y, noisy_bim, masks, eps_values=cfg["linf"])
    out["complementarity"] = {f"{a} / {s}": masking.complementarity_coverage(d, masks) for (a, s), d in deltas.items()}
    log("evaluations done")
    out["noise classes"] = recognisable.noise_classes(sources + tests, count=cfg["noise_samples"])
    log("noise classes done")
    out["checkerboard"], checker = checkerboard_section(sources[0], x, cfg, names[0] if names else 0)
    log("checkerboard done")
    out["seconds"] = time.perf_counter() - started
    out["environment"] = environment(x.device)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"recognisable_{args.domain}{'_quick' if args.quick else ''}"
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=1))
    shown = min(8, x.shape[0])
    rows = [x[:shown]] + [
        recognisable.display_normalise(deltas[("bim", s)][:shown], args.domain) for s in recognisable.SETTINGS
    ]
    picture(rows, args.out / f"{stem}_bim.png", 4 if args.domain == "fashion-mnist" else 1)
    cb = torch.stack([recognisable.display_normalise(r["delta"][None], args.domain)[0] for r in checker])
    picture([cb], args.out / f"{stem}_checkerboard.png", 4 if args.domain == "fashion-mnist" else 1)
    (args.out / f"{stem}.md").write_text(markdown(out))
    log(f"wrote {args.out / stem}.* in {out['seconds']:.0f} s")
    return 0


def quarter_logger(label: str):
    """An engine.progress callback that logs one line per quarter of each (attack, setting)."""
    logged = set()

    def progress(step, total, state):
        quarter = (state["attack"], state["setting"], int((step - state["part"] + 1) * 4))
        if quarter not in logged:
            logged.add(quarter)
            log(f"  {label}{state['attack']} / {state['setting']}: {quarter[2] * 25}%")

    return progress


def chunked_perturbations(sources, x, y, cfg: dict, chunk: int, cache: Path) -> dict:
    """recognisable.perturbations over `chunk` images at a time, each chunk saved once finished and reused
    when the same settings ask for it again. Chunk k draws its noise from seed k."""
    key = hashlib.sha256(
        json.dumps({k: cfg[k] for k in ("sources", "attacks", "copies", "sigma")}, sort_keys=True).encode()
    ).hexdigest()[:12]
    cache.mkdir(parents=True, exist_ok=True)
    parts = []
    for k, start in enumerate(range(0, x.shape[0], chunk)):
        rows = slice(start, start + chunk)
        path = cache / f"{key}-{start}-{start + x[rows].shape[0]}.pt"
        if path.exists():
            saved = torch.load(path, weights_only=True)
            if torch.equal(saved["x"], x[rows]):  # the same images in the same order
                parts.append({tuple(name.split("|")): d for name, d in saved["deltas"].items()})
                log(f"  images {start}–{start + x[rows].shape[0]}: reused {path.name}")
                continue
        done = recognisable.perturbations(
            sources,
            x[rows],
            y[rows],
            cfg["attacks"],
            copies=cfg["copies"],
            sigma=cfg["sigma"],
            seed=k,
            callback=quarter_logger(f"images {start}–{start + x[rows].shape[0]}: "),
        )
        torch.save({"x": x[rows], "deltas": {"|".join(name): d for name, d in done.items()}}, path)
        parts.append(done)
        log(f"  images {start}–{start + x[rows].shape[0]} of {x.shape[0]} done")
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def checkerboard_section(model, x: torch.Tensor, cfg: dict, image_name) -> tuple[dict, list[dict]]:
    rows = checkerboard.checkerboard(
        model, x[:1], sigmas=cfg["checker_sigmas"], copies=cfg["checker_copies"], **cfg["checker_params"]
    )
    return {
        "model": model.name,
        "image": image_name,
        "rows": [{k: v for k, v in r.items() if k != "delta"} for r in rows],
    }, rows


def redo_checkerboard(args, cfg: dict) -> int:
    stem = f"recognisable_{args.domain}{'_quick' if args.quick else ''}"
    path = args.out / f"{stem}.json"
    out = json.loads(path.read_text())
    out["config"] = {**cfg, **{k: v for k, v in out["config"].items() if k not in cfg or not k.startswith("checker")}}
    model = models.load(cfg["sources"][0], device="cpu")
    if args.domain == "fashion-mnist":
        x, _, _ = fmnist_images(cfg["per_class"], [model])
        name = 0
    else:
        x, _, names = gallery_images(model, args.quick)
        name = names[0]
    out["checkerboard"], rows = checkerboard_section(model, x, cfg, name)
    path.write_text(json.dumps(out, indent=1))
    cb = torch.stack([recognisable.display_normalise(r["delta"][None], args.domain)[0] for r in rows])
    picture([cb], args.out / f"{stem}_checkerboard.png", 4 if args.domain == "fashion-mnist" else 1)
    (args.out / f"{stem}.md").write_text(markdown(out))
    log(f"checkerboard of {stem} recomputed")
    return 0


DRAWS = 10  # seeds of the K − 1 other classes each photo's judge chooses among: judging is cheap, the draw is noisy


def redo_recognisability(args, cfg: dict, count: int) -> int:
    """The recognisability section at the thesis' protocol (the true class among the domain's K choices, as its
    judges chose among 20) beside every class, on the first `count` images, into the existing results file."""
    started = time.perf_counter()
    stem = f"recognisable_{args.domain}{'_quick' if args.quick else ''}"
    path = args.out / f"{stem}.json"
    out = json.loads(path.read_text())
    sources = [models.load(n, device="cpu") for n in cfg["sources"]]
    tests = [models.load(n, device="cpu") for n in out["config"]["tests"]]
    if args.domain == "fashion-mnist":
        x, y, _ = fmnist_images(cfg["per_class"], sources + tests)
        x, y, names = x[:count], y[:count], None
    else:
        x, _, names = gallery_images(sources[0], args.quick)
        x, names = x[:count], names[:count]
        with torch.no_grad():
            y = sum(torch.softmax(m(x), 1) for m in sources + tests).argmax(1)
    log(f"{args.domain}: recognisability of {x.shape[0]} images, judged by {[m.name for m in tests]}")
    chunk = args.chunk or (6 if names else x.shape[0])
    deltas = chunked_perturbations(sources, x, y, cfg, chunk, args.cache / f"recognisable_{args.domain}")
    choices = domains.get(args.domain).averaging["choices"]
    rows = recognisable.recognisability_table(tests, y, deltas, args.domain)
    for seed in range(DRAWS):
        rows += [
            {**r, "draw": seed}
            for r in recognisable.recognisability_table(tests, y, deltas, args.domain, choices=choices, seed=seed)
        ]
    out["recognisability choices"] = {
        "images": x.shape[0],
        "image names": names,
        "choices": choices,
        "draws": DRAWS,
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
    }
    path.write_text(json.dumps(out, indent=1))
    (args.out / f"{stem}.md").write_text(markdown(out))
    log(f"recognisability among {choices} choices added to {stem} in {out['recognisability choices']['seconds']:.0f} s")
    return 0


def _choices_lines(out: dict) -> list[str]:
    """The recognisability table at the thesis' protocol (K choices) beside every class, where it was run."""
    part = out.get("recognisability choices")
    if part is None:
        return []
    k, rows = part["choices"], part["rows"]
    every = _mean_by([r for r in rows if "draw" not in r], ("attack", "setting"), "source class share")
    among = _mean_by([r for r in rows if "draw" in r], ("attack", "setting"), "source class share")
    classes = next(r["choices"] for r in rows if "draw" not in r)
    lines = [
        "",
        f"### Judged as the thesis' judges chose: the true class among {k}",
        "",
        f"The first {part['images']} images"
        + (f" ({', '.join(part['image names'])})" if part["image names"] else "")
        + f", their perturbations made again with the settings above; each judge picks the highest of its logits "
        f"over the image's class and {k - 1} others drawn at random (mean over {part['draws']} draws; chance "
        f"{100 / k:.0f} %), beside its pick among all {classes} classes: {part['images'] * len(out['config']['tests'])}"
        f" verdicts per cell (× {part['draws']} draws). `--recognisability-only {part['images']}` at "
        f"{part['threads']} thread{'s' if part['threads'] > 1 else ''}: judging {part['seconds'] / 60:.0f} min"
        + (f", after {part['perturbation minutes']} min making them" if "perturbation minutes" in part else "")
        + " (the log: recognisable_imagenet_choices.log).",
        "",
        f"| attack | setting | among {k} | among all {classes} |",
        "|---|---|---|---|",
    ]
    for (attack, setting), value in among.items():
        lines.append(f"| {attack} | {setting} | {100 * value:.1f} % | {100 * every[(attack, setting)]:.1f} % |")
    single, noisy = among.get(("bim", "single-model")), among.get(("bim", "noisy multi-model"))
    if single is not None and noisy is not None:
        lines += [
            "",
            f"BIM among {k}: single-model {100 * single:.1f} % (thesis 5.5 %), noisy multi-model {100 * noisy:.1f} % "
            f"(thesis 56 %), chance {100 / k:.0f} %: "
            + ("the thesis' rise appears." if noisy - single >= 0.2 else "the thesis' rise does not appear here.")
            + f" n = {part['images']} images × {len(out['config']['tests'])} judge(s) per cell.",
        ]
    return lines


def _mean_by(rows: list[dict], keys: tuple[str, ...], value: str) -> dict:
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r[value])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def markdown(out: dict) -> str:
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lines = [
        f"# Human-recognisable perturbations — {out['domain']}",
        "",
        f"{out['images']} images; sources {', '.join(out['config']['sources'])}; held-out test models "
        f"{', '.join(out['config']['tests'])}; ε = {out['config']['eps']} for δ' = ε·sign(δ); "
        f"noisy multi-model n = {out['config']['copies']} (σ per attack below). Generated by "
        f"`experiments/recognisable_perturbations.py` in {out['seconds']:.0f} s.",
        "",
        "Attacks: " + "; ".join(f"{a} {json.dumps(p)}" for a, p in out["config"]["attacks"].items()),
        "",
        "## Attack strength (Table 4.4 shape): mean test-model accuracy",
        "",
        "| attack | clean | random ±ε | single-model | multi-model | noisy multi-model |",
        "|---|---|---|---|---|---|",
    ]
    acc = _mean_by(out["strength"], ("attack", "setting"), "accuracy")
    for attack in out["config"]["attacks"]:
        lines.append(
            f"| {attack} | {pct(acc[('—', 'clean')])} | {pct(acc[('—', 'random ±ε')])} | "
            + " | ".join(pct(acc.get((attack, s))) for s in recognisable.SETTINGS)
            + " |"
        )
    lines += [
        "",
        "Thesis, ImageNet untargeted BIM: clean 81.8 %, ±ε noise 81.8 %, single-model 63.3 %, noisy multi-model "
        "13.2 %.",
        "",
        "## Machine recognisability (Table 4.3 shape): display-normalised δ classified as the source class",
        "",
        "| attack | single-model | multi-model | noisy multi-model |",
        "|---|---|---|---|",
    ]
    rec = _mean_by(out["recognisability"], ("attack", "setting"), "source class share")
    for attack in out["config"]["attacks"]:
        lines.append(f"| {attack} | " + " | ".join(pct(rec.get((attack, s))) for s in recognisable.SETTINGS) + " |")
    lines += _choices_lines(out)
    lines += [
        "",
        "Thesis, ImageNet BIM: 5.5 % single vs 56 % noisy multi-model (judges choosing among 20 classes).",
        "",
        "## Contour vs background (BIM δ', mean test accuracy; control = random ±ε on the same pixels)",
        "",
        "| setting | object δ' | object control | background δ' | background control | object area |",
        "|---|---|---|---|---|---|",
    ]
    for setting, rows in out["contour"].items():
        a = _mean_by(rows, ("part", "perturbation"), "accuracy")
        area = rows[0]["area"] if rows[0]["part"] == "object" else 1 - rows[0]["area"]
        lines.append(
            f"| {setting} | {pct(a[('object', chr(948) + chr(39))])} | {pct(a[('object', 'random ±ε')])} | "
            f"{pct(a[('background', chr(948) + chr(39))])} | {pct(a[('background', 'random ±ε')])} | {pct(area)} |"
        )
    lines += [
        "",
        "Thesis (ImageNet, noisy multi-model): contour part ≈ 32–37 %, background only ≈ 60–69 %.",
        "",
        "### Dilation/erosion sweep (noisy multi-model BIM δ' on the grown/shrunk object mask)",
        "",
        "| 3×3 steps | area | accuracy | control | Δaccuracy per +1 % area |",
        "|---|---|---|---|---|",
    ]
    for r in out["mask sweep"]:
        slope = "—" if r["per +1% area"] is None else f"{100 * r['per +1% area']:+.2f} pts"
        lines.append(
            f"| {r['steps']:+d} | {pct(r['area'])} | {pct(r['accuracy'])} | {pct(r['control accuracy'])} | {slope} |"
        )
    lines += [
        "",
        "### L∞ sweep per part (noisy multi-model BIM)",
        "",
        "| ε | object | object control | background | background control |",
        "|---|---|---|---|---|",
    ]
    sweep = {(r["eps"], r["part"]): r for r in out["linf sweep"]}
    for eps in out["config"]["linf"]:
        o, b = sweep[(eps, "object")], sweep[(eps, "background")]
        lines.append(
            f"| {eps} | {pct(o['accuracy'])} | {pct(o['control accuracy'])} | {pct(b['accuracy'])} | "
            f"{pct(b['control accuracy'])} |"
        )
    lines += [
        "",
        "Thesis: background saturates near 60–70 %, the contour keeps falling to 10–20 %.",
        "",
        "## Checkerboard: dominant period of noisy single-model averages",
        "",
        f"Model {out['checkerboard']['model']}, image {out['checkerboard']['image']}, "
        f"{out['config']['checker_copies']} copies, BIM {json.dumps(out['config']['checker_params'])}.",
        "",
        "| σ | grid period (px) | strongest spectral peak (px) | peak frequency (fy, fx) | prominence |",
        "|---|---|---|---|---|",
    ]
    for r in out["checkerboard"]["rows"]:
        # Rows written before the grid reading existed hold only the spectral peak, as `period`.
        grid = "—" if "peak_period" not in r else ("none" if r["period"] == 1 else r["period"])
        peak = r.get("peak_period", r["period"])
        lines.append(f"| {r['sigma']} | {grid} | {peak:.2f} | ({r['fy']:.3f}, {r['fx']:.3f}) | {r['prominence']:.1f} |")
    lines += [
        "",
        "Thesis (ImageNet): the period grows from ~1 px at σ = 0.1 to ~30 px at σ = 0.5. Why it does not here: "
        "checkerboard_period.md.",
        "",
        "## Cosine similarity between attacks' perturbations (mean over images)",
        "",
        "| setting | pair | cosine |",
        "|---|---|---|",
    ]
    for r in out["similarity"]:
        lines.append(f"| {r['setting']} | {r['a']}–{r['b']} | {r['cosine']:.3f} |")
    lines += [
        "",
        "Thesis: ≈ 0.5 under noisy multi-model, much lower single-model.",
        "",
        "## Complementarity: pixels still perturbed after zeroing |δ| below its mean",
        "",
        "| attack / setting | object kept | background kept |",
        "|---|---|---|",
    ]
    for k, v in out["complementarity"].items():
        lines.append(f"| {k} | {pct(v['object kept'])} | {pct(v['background kept'])} |")
    lines += [
        "",
        f"## Noise classes: Gaussian noise with the dataset's mean/std ({out['config']['noise_samples']} samples "
        f"per model)",
        "",
        "| model | top classes (share) |",
        "|---|---|",
    ]
    by_model: dict = {}
    for r in out["noise classes"]:
        by_model.setdefault(r["model"], []).append(f"{r['name']} ({pct(r['share'])})")
    for m, entries in by_model.items():
        lines.append(f"| {m} | {', '.join(entries[:3])} |")
    lines += [
        "",
        "Thesis: one or two classes per model (CIFAR: cat/bird; ImageNet: chain mail, prayer rug, doormat, window "
        "screen).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
