"""AA vs TMIFGSM / TPGD / ITCM transfer on the Fashion-MNIST zoo (the experiments of Inkawhich et al. 2019).

    python bench/transfer_sweeps.py            # 500 images, two pairs → bench/results_transfer_sweeps.json + .md
    python bench/transfer_sweeps.py --quick    # CI smoke mode: 20 images, one ε, one layer

For each white-box → black-box pair: an ε sweep (the paper's {0, .01, .03, .05, .07}
plus .2, since small grey images need a larger budget) with AA at its
default middle layer, and a layer sweep of AA at ε = 0.07 and ε = 0.2 with the
baselines beside it. All methods share the same random target class per image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine import models  # noqa: E402
from engine.analysis.transfer import METHODS, sweep  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402

PAIRS = [("fmnist-densenet-0", "fmnist-resnet-0"), ("fmnist-resnet-0", "fmnist-vgg-1")]
EPS_SWEEP = [0.0, 0.01, 0.03, 0.05, 0.07, 0.2]
LAYER_EPS = [0.07, 0.2]


def run(n: int, pairs, eps_sweep, layer_eps, quick_layers=None) -> dict:
    x, y = fashion_mnist.test_split()
    half = x.shape[0] // 2
    xs, ys, bank = x[:n], y[:n], (x[half:], y[half:])
    out = {"images": n, "pairs": [], "seed": 0, "torch": torch.__version__}
    for white_name, black_name in pairs:
        white, black = models.load(white_name, device="cpu"), models.load(black_name, device="cpu")
        start = time.perf_counter()
        eps_rows = sweep(white, [black], list(METHODS), xs, ys, eps_values=eps_sweep, layers=[None], bank=bank)
        layers = quick_layers if quick_layers is not None else list(range(len(white.layers())))
        layer_rows = []
        for eps in layer_eps:
            layer_rows += sweep(white, [black], ["aa"], xs, ys, eps_values=[eps], layers=layers, bank=bank)
            layer_rows += sweep(white, [black], ["tmifgsm", "tpgd", "itcm"], xs, ys, eps_values=[eps], bank=bank)
        out["pairs"].append(
            {
                "white": white_name,
                "black": black_name,
                "eps_sweep": eps_rows,
                "layer_sweep": layer_rows,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(f"{white_name} → {black_name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return out


def pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def markdown(report: dict) -> str:
    lines = [
        f"# Transfer sweeps on the Fashion-MNIST zoo ({report['images']} test images, seed {report['seed']})",
        "",
        "Metrics in % over the images both models classify correctly (n). Written by bench/transfer_sweeps.py.",
        "",
    ]
    for pair in report["pairs"]:
        lines += [
            f"## {pair['white']} → {pair['black']}",
            "",
            "### ε sweep (AA at its default middle layer)",
            "",
            "| method | ε | layer | n | error | uTR | tSuc | tTR | white-box tSuc |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in pair["eps_sweep"]:
            lines.append(
                f"| {r['method']} | {r['eps']} | {'' if r['layer'] is None else r['layer']} | {r['n']} | "
                f"{pct(r['error'])} | {pct(r['uTR'])} | {pct(r['tSuc'])} | {pct(r['tTR'])} | {pct(r['white_tSuc'])} |"
            )
        lines += [
            "",
            "### layer sweep",
            "",
            "| method | ε | layer | n | error | uTR | tSuc | tTR | white-box tSuc |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in pair["layer_sweep"]:
            lines.append(
                f"| {r['method']} | {r['eps']} | {'' if r['layer'] is None else r['layer']} | {r['n']} | "
                f"{pct(r['error'])} | {pct(r['uTR'])} | {pct(r['tSuc'])} | {pct(r['tTR'])} | {pct(r['white_tSuc'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results_transfer_sweeps"))
    args = parser.parse_args(argv)
    if args.quick:
        report = run(20, PAIRS[:1], [0.2], [0.2], quick_layers=[2])
    else:
        report = run(args.n, PAIRS, EPS_SWEEP, LAYER_EPS)
    Path(args.out + ".json").write_text(json.dumps(report, indent=2) + "\n")
    Path(args.out + ".md").write_text(markdown(report))
    print(args.out + ".md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
