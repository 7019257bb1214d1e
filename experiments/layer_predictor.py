"""Seed 000's layer analyses (Inkawhich et al. 2019, Figs 3-5 and 7) on the Fashion-MNIST zoo's white boxes: per layer,
class separability, the source-to-target class distance in the PCA plane and AA's tSuc on the held-out models.

Writes experiments/results/layer_predictor_<model>.json (the command and every number), .md (the table and what
it says) and .png (the three curves on one chart, each scaled by its own maximum):

    python experiments/layer_predictor.py fmnist-densenet-0 fmnist-resnet-0 fmnist-vgg-0   # ~5 min each, 2 cores
    python experiments/layer_predictor.py fmnist-lenet-0 --quick                           # seconds, nothing written
    python experiments/layer_predictor.py fmnist-densenet-0 --render                       # the .md/.png from the .json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))
from engine.analysis.layer_predictor import rank_agreement  # noqa: E402

JUDGES = ["fmnist-resnet-1", "fmnist-densenet-1", "fmnist-lenet-1", "fmnist-vgg-1"]  # as the layer sweep's
EPS = "0.2"  # the layer sweep's larger ε: the one where AA's tSuc stands clear of its SE
N, BANK = "300", "100"


def command(model: str, quick: bool) -> list[str]:
    return [
        "layer-predictor",
        "--model",
        model,
        "--black",
        *(JUDGES[:1] if quick else JUDGES),
        "--n",
        "12" if quick else N,
        "--bank-per-class",
        "5" if quick else BANK,
        "--eps",
        EPS,
        *(["--layer", "0", "1"] if quick else []),
    ]


def pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def markdown(found: dict, shown: str, seconds: int) -> str:
    rows, blacks, best = found["rows"], found["blacks"], found["best"]
    n = min(r["black"][b]["n"] for r in rows for b in blacks)
    lines = [
        f"# Which layer should AA attack? {found['white']} (seed 000, Figs 3-5, 7)",
        "",
        f"Made by `python experiments/layer_predictor.py {found['white']}` ({seconds} s), which runs:",
        "",
        "```",
        shown,
        "```",
        "",
        f"{found['images']} Fashion-MNIST test images, AA farthest-in-class at ε = {found['eps']:g}, "
        f"{found['steps']} steps, the same random target class per image at every layer; bank: the first 100 images "
        f"per class of the second half of the test split that the white box classifies correctly. n (both models "
        f"right) ≥ {n} per judge; the SE of a rate p is √(p(1−p)/n), ≈ 2.7 points at p = 0.3. Separability: "
        "between-class over within-class mean angle of clean features (input pixels: "
        f"{found['input_separability']:.3f}). Class distance: in the top-2 PCA plane of the images' clean features, "
        "the distance between the centroids of each image's class and its target class, over the plane's RMS "
        "spread. Travel: how far AA moved each image in that plane (the paper's Fig 5), over the same spread.",
        "",
        "| layer | name | separability | class distance | AA travel | pixel L2 | "
        + " | ".join(f"{b} tSuc" for b in blacks)
        + " | mean tSuc | white-box tSuc |",
        "|---|---|---|---|---|---|" + "---|" * len(blacks) + "---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {r['name']} | {r['separability']:.3f} | {r['class_distance_rel']:.3f} | "
            f"{r['travel_rel']:.3f} | {r['pixel_l2']:.2f} | "
            + " | ".join(pct(r["black"][b]["tSuc"]) for b in blacks)
            + f" | {pct(r['tSuc'])} | {pct(r['white_tSuc'])} |"
        )
    rho = {k: rank_agreement(found, k) for k in ("separability", "class_distance_rel", "travel_rel")}
    fmt = lambda v: "—" if v is None else f"{v:+.2f}"  # noqa: E731
    per_black = best["per_black"]
    lines += [
        "",
        f"Best layer by each curve: separability {best['separability']}, class distance {best['class_distance']}, "
        f"AA travel {best['travel']}; by mean tSuc {best['tSuc']}. Best layer per judge: "
        + ", ".join(f"{b} {layer}" for b, layer in per_black.items())
        + ".",
        "",
        f"Spearman ρ over the layers, curve against mean tSuc: separability {fmt(rho['separability'])}, class "
        f"distance {fmt(rho['class_distance_rel'])}, AA travel {fmt(rho['travel_rel'])}.",
        "",
        *verdict(found),
        "",
    ]
    return "\n".join(lines)


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def verdict(found: dict) -> list[str]:
    """Does each curve's best layer give AA's best tSuc, and does the best layer depend on the judge? Each
    answered against twice the standard error of a difference of two rates (√2 · SE), so noise is not a finding."""
    rows, best = found["rows"], found["best"]
    at = {r["layer"]: r for r in rows}
    top = at[best["tSuc"]]
    n = min(r["black"][b]["n"] for r in rows for b in found["blacks"])
    # The mean over judges of rates on the same images: its SE is at most the judges' mean SE.
    margin = (
        2 * math.sqrt(2) * sum(_se(top["black"][b]["tSuc"] or 0, n) for b in found["blacks"]) / len(found["blacks"])
    )
    out = []
    for label, key in (("separability", "separability"), ("class distance", "class_distance"), ("AA travel", "travel")):
        got = at[best[key]]["tSuc"]
        gap = top["tSuc"] - got
        said = "predicts the best layer" if gap <= margin else "does not predict it"
        out.append(
            f"- {label} peaks at layer {best[key]}, where AA's mean tSuc is {pct(got)} %, {100 * gap:.1f} points "
            f"below the best layer's {pct(top['tSuc'])} % (2√2·SE ≈ {100 * margin:.1f} points): {said}."
        )
    spread = []
    for b in found["blacks"]:
        own = max(rows, key=lambda r: r["black"][b]["tSuc"] or 0)
        gap = (own["black"][b]["tSuc"] or 0) - (top["black"][b]["tSuc"] or 0)
        limit = 2 * math.sqrt(2) * _se(own["black"][b]["tSuc"] or 0, n)
        spread.append((b, own["layer"], gap, limit))
    apart = [s for s in spread if s[2] > s[3]]
    out.append(
        "- Per judge, its own best layer against the common best layer "
        f"{best['tSuc']}: "
        + "; ".join(
            f"{b} layer {layer}, {100 * gap:+.1f} points (2√2·SE {100 * lim:.1f})" for b, layer, gap, lim in spread
        )
        + ". "
        + (
            "No judge's best layer beats the common one by more than the noise: the data agree with the paper's "
            "claim that the best layer does not depend on the black box."
            if not apart
            else "For " + ", ".join(s[0] for s in apart) + " the best layer beats the common one beyond the noise: "
            "here the best layer depends on the black box."
        )
    )
    return out


def plot(found: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = found["rows"]
    layers = [r["layer"] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    curves = (
        ("separability", "separability", "C0"),
        ("class_distance_rel", "class distance (PCA)", "C1"),
        ("tSuc", "AA tSuc, mean over the judges", "C3"),
    )
    for key, label, colour in curves:
        values = [r[key] for r in rows]
        top = max(values) or 1.0
        ax.plot(layers, [v / top for v in values], "o-", color=colour, label=f"{label} (max {top:.3g})", lw=2)
    for b in found["blacks"]:
        values = [r["black"][b]["tSuc"] or 0.0 for r in rows]
        top = max(values) or 1.0
        ax.plot(layers, [v / top for v in values], ":", color="C3", alpha=0.45, lw=1)
    ax.plot([], [], ":", color="C3", alpha=0.45, label="tSuc per judge")
    ax.set_xlabel("layer of the white box (input → output)")
    ax.set_ylabel("each curve over its own maximum")
    ax.set_xticks(layers)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Layer predictor: {found['white']}, AA ε = {found['eps']:g}")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints the markdown, writes nothing")
    parser.add_argument("--render", action="store_true", help="rewrite the .md and .png from the .json")
    args = parser.parse_args()
    for model in args.models:
        stem = RESULTS / f"layer_predictor_{model}"
        if args.render:
            saved = json.loads(stem.with_suffix(".json").read_text())
        else:
            cmd = command(model, args.quick)
            shown = f"python -m engine {shlex.join(cmd)} --json"
            print(f"[{time.strftime('%H:%M:%S')}] {shown}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "engine", *cmd, "--json"], cwd=ROOT, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SystemExit(f"{shown} failed: {done.stderr.strip()}")
            saved = {"cli": shown, "seconds": round(time.perf_counter() - started), "result": json.loads(done.stdout)}
        md = markdown(saved["result"], saved["cli"], saved["seconds"])
        if args.quick:
            print(md)
            continue
        stem.with_suffix(".json").write_text(json.dumps(saved, indent=1) + "\n")
        stem.with_suffix(".md").write_text(md)
        plot(saved["result"], stem.with_suffix(".png"))
        print(f"wrote {stem}.json, .md and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
