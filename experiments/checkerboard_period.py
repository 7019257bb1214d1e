"""Why the checkerboard period of noisy single-model averages does not grow with σ here (thesis §5.2.3: ~1 px at
σ = 0.1 up to ~30 px, "seven repeats per row", at σ = 0.5 on 224-px photos).

One thing varied at a time; every part adds its rows to experiments/results/checkerboard_period.json and the
.md is rendered from it:

    python experiments/checkerboard_period.py detector   # seconds: both detectors on synthetic grids
    python experiments/checkerboard_period.py strides    # seconds: each model's strides (grid periods it can make)
    python experiments/checkerboard_period.py fmnist     # ~15 min: σ, copies, attack and model on Fashion-MNIST
    python experiments/checkerboard_period.py photos     # ~20 min: σ, copies and image size on EfficientNet-Lite0
    python experiments/checkerboard_period.py photo_copies   # ~12 min: 1,024 FGSM copies at σ = 0.5 on Lite0
    python experiments/checkerboard_period.py render     # rewrite the .md from the .json

Two readings of each average: the spectrum's strongest peak (checkerboard.dominant_period, the committed
tables' reading) and the shortest period whose repeating part holds the perturbation's periodic energy
(checkerboard.grid_period), with the share of energy that repeats at the model's total stride.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine import images, models  # noqa: E402
from engine.analysis.checkerboard import dominant_period, grid_period, periodic_share  # noqa: E402
from engine.attacks.averaging import averaged  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402
from engine.hooks import capture_activations  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "checkerboard_period.json"
FMNIST = ["fmnist-lenet-0", "fmnist-resnet-0", "fmnist-vgg-0", "fmnist-densenet-0", "fmnist-mobilenet-0"]
SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5)
PHOTO_SIGMAS = (0.05, 0.1, 0.2, 0.5)
# The committed tables' settings (experiments/recognisable_perturbations.py).
FMNIST_BIM = {"eps": 0.2, "steps": 20}
PHOTO_BIM = {"eps": 0.02, "steps": 10}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def save(part: str, value) -> None:
    found = json.loads(OUT.read_text()) if OUT.exists() else {}
    found[part] = value
    OUT.write_text(json.dumps(found, indent=1) + "\n")


# ---- synthetic grids -----------------------------------------------------------------------------------------------


def pattern(kind: str, side: int, period: int, gen: torch.Generator) -> torch.Tensor:
    """A unit-energy-per-pixel grid of `period` px on a side × side image."""
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    if kind == "cosine":
        g = torch.cos(2 * torch.pi * xx / period) + torch.cos(2 * torch.pi * yy / period)
    elif kind == "squares":  # the committed detector test's checkerboard, any period
        g = (((xx * 2 // period) + (yy * 2 // period)) % 2).float()
    elif kind == "dots":  # one bright pixel per cell: what a strided convolution's gradient repeats
        g = ((xx % period == 0) & (yy % period == 0)).float()
    else:
        raise ValueError(kind)
    # A random phase, so no period sits conveniently on the image's origin.
    g = torch.roll(g, shifts=(int(torch.randint(period, (1,), generator=gen)),) * 2, dims=(0, 1))
    g = g - g.mean()
    return g / g.pow(2).mean().sqrt()


def blob(side: int) -> torch.Tensor:
    """An object-sized smooth bump (unit energy per pixel): the image-shaped part of a real perturbation."""
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    b = torch.exp(-((xx - side * 0.45) ** 2 + (yy - side * 0.55) ** 2) / (2 * (side / 6) ** 2))
    b = b - b.mean()
    return b / b.pow(2).mean().sqrt()


def part_detector() -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for side, periods in ((224, (2, 3, 4, 6, 8, 12, 16, 24, 32, 48)), (28, (2, 3, 4, 5, 6, 7))):
        for kind in ("cosine", "squares", "dots"):
            for extra in ("noise", "noise + object"):
                for period in periods:
                    for trial in range(3):
                        d = pattern(kind, side, period, gen) + torch.randn(side, side, generator=gen)
                        if extra == "noise + object":
                            d = d + 2 * blob(side)
                        old, new = dominant_period(d), grid_period(d)
                        rows.append(
                            {
                                "side": side,
                                "kind": kind,
                                "extra": extra,
                                "period": period,
                                "trial": trial,
                                "peak_period": old["period"],
                                "grid_period": new["period"],
                                "grid_share": new["share"],
                            }
                        )
    return rows


def _wrong(r: dict, key: str) -> bool:
    return abs(r[key] - r["period"]) > 0.05 * r["period"]


def _right(rows: list[dict], key: str) -> str:
    return f"{sum(not _wrong(r, key) for r in rows)}/{len(rows)}"


def _misses(rows: list[dict], key: str) -> str:
    return ", ".join(sorted({f"{r['period']}→{r[key]:.3g}" for r in rows if _wrong(r, key)})) or "all right"


def md_detector(rows: list[dict]) -> list[str]:
    lines = [
        "Each pattern has the energy of the white noise added to it (SNR 1 per pixel); 'object' adds a smooth "
        "bump with twice the pattern's amplitude, as a real perturbation's image-shaped part. Three random "
        "phases and noise draws per period. A reading is right within 5 %.",
        "",
        "| side | grid | added | periods | strongest peak right | its readings | grid period right | its readings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["side"], r["kind"], r["extra"]), []).append(r)
    for (side, kind, extra), rs in groups.items():
        periods = sorted({r["period"] for r in rs})
        lines.append(
            f"| {side} | {kind} | {extra} | {periods[0]}–{periods[-1]} | {_right(rs, 'peak_period')} | "
            f"{_misses(rs, 'peak_period')} | {_right(rs, 'grid_period')} | {_misses(rs, 'grid_period')} |"
        )
    return lines


# ---- strides -------------------------------------------------------------------------------------------------------


def strides(model) -> list[int]:
    """The stride of each catalogue layer's 4-D output against the input: the grid periods a stack of strided
    layers can leave. Each shrink by about half or more between consecutive maps is a downsampling (by the
    rounded ratio); a smaller one is an unpadded convolution's border, no stride."""
    c, h, _ = model.input_size
    names = [layer.name for layer in model.layers()]
    with model.lock, capture_activations(model, names) as acts, torch.no_grad():
        model(torch.zeros(1, c, h, h, device=model.device))
        sides = [acts[n].shape[-1] for n in names if acts[n].dim() == 4]
    found, stride, previous = [], 1, h
    for side in sides:
        if previous / side >= 1.5:
            stride *= round(previous / side)
        previous = side
        found.append(stride)
    return sorted(set(found))


def part_strides() -> list[dict]:
    rows = []
    for name in [*FMNIST, "efficientnet-lite0"]:
        model = models.load(name, device="cpu")
        side = model.input_size[1]
        rows.append({"model": name, "side": side, "strides": strides(model)})
    return rows


def md_strides(rows: list[dict]) -> list[str]:
    lines = [
        "| model | input side | strides of its layers' outputs (px) | largest: repeats per row |",
        "|---|---|---|---|",
    ]
    for r in rows:
        top = max(r["strides"])
        lines.append(f"| {r['model']} | {r['side']} | {', '.join(map(str, r['strides']))} | {r['side'] / top:g} |")
    return lines


# ---- real averages -------------------------------------------------------------------------------------------------


def reading(delta: torch.Tensor, stride: int) -> dict:
    old, new = dominant_period(delta), grid_period(delta)
    side = delta.shape[-1]
    chance = stride * stride / side**2
    return {
        "peak_period": old["period"],
        "peak_prominence": old["prominence"],
        "grid_period": new["period"],
        "grid_share": new["share"],
        "stride": stride,
        "stride_share": (periodic_share(delta, stride) - chance) / (1 - chance),
    }


def run_average(model, x, sigma, copies, attack, params, stride, **labels) -> dict:
    started = time.perf_counter()
    delta = averaged(attack, [model], x, copies=copies, sigma=sigma, seed=0, **params).delta[0]
    row = {
        "model": model.name,
        "side": x.shape[-1],
        "sigma": sigma,
        "copies": copies,
        "attack": attack,
        **labels,
        **reading(delta, stride),
        "seconds": round(time.perf_counter() - started, 1),
    }
    log(json.dumps({k: v for k, v in row.items() if k != "peak_prominence"}))
    return row


def fmnist_image() -> torch.Tensor:
    x, _ = fashion_mnist.evaluation_slice(1)
    return x[:1]


def part_fmnist() -> list[dict]:
    rows = []
    x = fmnist_image()
    loaded = {name: models.load(name, device="cpu") for name in FMNIST}
    top = {name: max(strides(m)) for name, m in loaded.items()}
    resnet = loaded["fmnist-resnet-0"]
    for sigma in SIGMAS:  # the committed table's model and attack, the thesis' 1,000 copies
        rows.append(run_average(resnet, x, sigma, 1000, "bim", FMNIST_BIM, top[resnet.name], varied="σ"))
    for copies in (64, 256):
        for sigma in (0.05, 0.5):
            rows.append(run_average(resnet, x, sigma, copies, "bim", FMNIST_BIM, top[resnet.name], varied="copies"))
    for sigma in SIGMAS:
        rows.append(run_average(resnet, x, sigma, 1000, "fgsm", {"eps": 0.2}, top[resnet.name], varied="attack"))
    for name, model in loaded.items():
        if model is resnet:
            continue
        for sigma in (0.05, 0.5):
            rows.append(run_average(model, x, sigma, 256, "bim", FMNIST_BIM, top[name], varied="model"))
    return rows


def at_side(model, side: int):
    """The same network fed `side`-pixel images (it is convolutional up to a global pooling), and the airliner
    resized and cropped for it as for the original."""
    resized = copy.copy(model)  # shares the weights; only the input geometry differs
    resized.input_size = (model.input_size[0], side, side)
    resized.resize_size = round(model.resize_size * side / model.input_size[1])
    resized.crop_size = side
    return resized, images.load(images.gallery()["airliner"], resized)


def part_photos(budget: str) -> list[dict]:
    rows = []
    model = models.load("efficientnet-lite0", device="cpu")
    _, x = at_side(model, model.input_size[1])
    top = max(strides(model))
    for sigma in PHOTO_SIGMAS:  # the committed table's setting
        rows.append(run_average(model, x, sigma, 64, "bim", PHOTO_BIM, top, varied="σ"))
    if budget == "small":
        return rows
    for sigma in PHOTO_SIGMAS:  # 4× the copies in less time: one gradient per copy
        rows.append(run_average(model, x, sigma, 256, "fgsm", {"eps": 0.02}, top, varied="attack, copies"))
    # The network's strides stay; the image it sees doubles: a grid set by the strides keeps its period in pixels.
    big, x_big = at_side(model, 448)
    for sigma in (0.05, 0.5):
        rows.append(run_average(big, x_big, sigma, 64, "fgsm", {"eps": 0.02}, top, varied="image size"))
    return rows


def part_photo_copies() -> list[dict]:
    """The thesis' 1,000 copies at its largest σ, with FGSM (one gradient a copy) to fit the time."""
    model = models.load("efficientnet-lite0", device="cpu")
    _, x = at_side(model, model.input_size[1])
    return [run_average(model, x, 0.5, 1024, "fgsm", {"eps": 0.02}, max(strides(model)), varied="copies")]


def mean_gradient(model, x: torch.Tensor, sigma: float, copies: int, batch: int = 16) -> torch.Tensor:
    """The loss gradient itself (no sign, no steps) averaged over `copies` Gaussian copies of x: what every
    averaged attack's first step starts from, its amplitudes intact."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        label = model(x).argmax(1)
    total = torch.zeros_like(x)
    for lo in range(0, copies, batch):
        k = min(batch, copies - lo)
        noisy = (x + sigma * torch.randn((k, *x.shape[1:]), generator=gen)).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(noisy), label.expand(k), reduction="sum")
        (grad,) = torch.autograd.grad(loss, noisy)
        total += grad.sum(0, keepdim=True)
    return total / copies


def part_photo_gradient() -> list[dict]:
    """Lite0's averaged raw gradient at a low and a high σ, with pictures (experiments/results/)."""
    from PIL import Image

    model = models.load("efficientnet-lite0", device="cpu")
    _, x = at_side(model, model.input_size[1])
    top = max(strides(model))
    rows, tiles = [], []
    for sigma in (0.05, 0.5):
        started = time.perf_counter()
        g = mean_gradient(model, x, sigma, 64)
        rows.append(
            {
                "model": model.name,
                "side": x.shape[-1],
                "sigma": sigma,
                "copies": 64,
                "attack": "gradient",
                "varied": "no sign",
                **reading(g[0], top),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        log(json.dumps(rows[-1]))
        gray = g[0].mean(0)
        gray = (gray / (3 * gray.std())).clamp(-1, 1)
        tiles.append(((gray + 1) * 127.5).round().byte().numpy())
    Image.fromarray(torch.cat([torch.from_numpy(t) for t in tiles], 1).numpy()).resize((896, 448)).save(
        RESULTS / "checkerboard_period_gradient.png"
    )
    return rows


def md_averages(rows: list[dict]) -> list[str]:
    lines = [
        "Grid period 1 means no grid (nothing repeats beyond noise). Its share: of the perturbation less its "
        "object-sized part (below four cycles per side), what repeats with that period beyond chance. The "
        "stride column: of the whole perturbation, what repeats with the model's total stride beyond chance. "
        "s: seconds on the shared 2-core machine.",
        "",
        "| varied | model | side | attack | copies | σ | strongest peak (px) | prominence | grid period (px) | "
        "its share | share at the model's stride (px) | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['varied']} | {r['model']} | {r['side']} | {r['attack']} | {r['copies']} | {r['sigma']:g} | "
            f"{r['peak_period']:.2f} | {r['peak_prominence']:.0f} | {r['grid_period']} | {r['grid_share']:.3f} | "
            f"{r['stride_share']:.3f} ({r['stride']}) | {r['seconds']:g} |"
        )
    return lines


# ---- the page ------------------------------------------------------------------------------------------------------

FINDINGS = RESULTS / "checkerboard_period_notes.md"


def render() -> None:
    found = json.loads(OUT.read_text())
    md = [
        "# Checkerboard period against σ: why it does not grow here",
        "",
        "Made by `python experiments/checkerboard_period.py <part>` (parts: detector, strides, fmnist, photos); "
        "numbers in experiments/results/checkerboard_period.json.",
        "",
        "Thesis (Menn 2023, §5.2.3, Fig 5.5): one ImageNet photo, one model, 1,000 noisy copies; the grid's "
        "period is ~1 px at σ = 0.1 and ~30 px at σ = 0.5 ('seven repeats per row' of 224 px: 32 px).",
        "",
    ]
    if FINDINGS.exists():
        md += [FINDINGS.read_text().strip(), ""]
    sections = (
        ("detector", "## 1. The detectors on synthetic grids of known period", md_detector),
        ("strides", "## 2. The grid periods each model can make: its strides", md_strides),
        ("fmnist", "## 3. Fashion-MNIST averages", md_averages),
        ("photos", "## 4. Photo averages (EfficientNet-Lite0, the airliner)", md_averages),
        ("photo_copies", "## 5. Photo average with the thesis' number of copies", md_averages),
        ("photo_gradient", "## 6. The averaged raw gradient on the photo (no sign, no steps)", md_averages),
    )
    for key, title, body in sections:
        if key in found:
            md += [title, "", *body(found[key]), ""]
    (RESULTS / "checkerboard_period.md").write_text("\n".join(md))
    log(f"wrote {RESULTS / 'checkerboard_period.md'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["detector", "strides", "fmnist", "photos", "photo_copies", "photo_gradient", "render"]
    parser.add_argument("part", choices=parts)
    parser.add_argument("--small", action="store_true", help="photos: only the committed table's setting")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a background job beside others on two cores
    if args.part == "detector":
        save("detector", part_detector())
    elif args.part == "strides":
        save("strides", part_strides())
    elif args.part == "fmnist":
        save("fmnist", part_fmnist())
    elif args.part == "photo_gradient":
        save("photo_gradient", part_photo_gradient())
    elif args.part == "photo_copies":
        save("photo_copies", part_photo_copies())
    elif args.part == "photos":
        save("photos", part_photos("small" if args.small else "full"))
    render()
    return 0


if __name__ == "__main__":
    sys.exit(main())
