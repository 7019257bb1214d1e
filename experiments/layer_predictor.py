"""The layer analyses of Inkawhich et al. 2019 (Figs 3-5 and 7) on the Fashion-MNIST zoo's white boxes: per layer,
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
        f"# Which layer should AA attack? {found['white']} (Inkawhich et al. 2019, Figs 3-5, 7)",
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


CURVES = (("separability", "separability", "separability"), ("class distance", "class_distance", "class_distance_rel"))


def _rho(xs, ys) -> float | None:
    from scipy.stats import spearmanr

    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(spearmanr(xs, ys).statistic)


def findings(found: dict) -> dict:
    """Whether each curve's best layer is AA's and whether the best layer depends on the judge, each against
    2√2·SE (twice the standard error of a difference of two rates): noise is not a finding. The rates of two
    layers are measured on the same images, so this margin is conservative."""
    rows, best, blacks = found["rows"], found["best"], found["blacks"]
    at = {r["layer"]: r for r in rows}
    top = at[best["tSuc"]]
    n = min(r["black"][b]["n"] for r in rows for b in blacks)
    # The mean over judges of rates on the same images: its SE is at most the judges' mean SE.
    margin = 2 * math.sqrt(2) * sum(_se(top["black"][b]["tSuc"] or 0, n) for b in blacks) / len(blacks)
    means = [r["tSuc"] for r in rows]
    curves = {}
    for label, best_key, key in CURVES:
        got = at[best[best_key]]["tSuc"]
        rho = rank_agreement(found, key)
        per_judge = {b: _rho([r[key] for r in rows], [r["black"][b]["tSuc"] or 0 for r in rows]) for b in blacks}
        curves[label] = {
            "layer": best[best_key],
            "tSuc": got,
            "gap": top["tSuc"] - got,
            "rho": rho,
            "rho_per_judge": per_judge,
            # Within the noise of AA's best layer; where the whole curve is that flat, any layer would be.
            "predicts": "no" if top["tSuc"] - got > margin else "yes" if max(means) - min(means) > margin else "any",
        }
    judges = []
    own_best = {b: max(rows, key=lambda r: r["black"][b]["tSuc"] or 0)["layer"] for b in blacks}
    for b in blacks:
        own = at[own_best[b]]["black"][b]["tSuc"] or 0
        # If the best layer did not depend on the judge, every other judge's best layer would do as well here.
        other = min(set(own_best.values()), key=lambda layer: at[layer]["black"][b]["tSuc"] or 0)
        judges.append(
            {
                "black": b,
                "layer": own_best[b],
                "tSuc": own,
                "other_layer": other,
                "at_other": at[other]["black"][b]["tSuc"] or 0,
                "gap": own - (at[other]["black"][b]["tSuc"] or 0),
                "limit": 2 * math.sqrt(2) * _se(own, n),
            }
        )
    return {
        "best": best["tSuc"],
        "best_tSuc": top["tSuc"],
        "span": max(means) - min(means),
        "margin": margin,
        "curves": curves,
        "judges": judges,
        "depends": [j["black"] for j in judges if j["gap"] > j["limit"]],
    }


def verdict(found: dict) -> list[str]:
    f = findings(found)
    fmt = lambda v: "—" if v is None else f"{v:+.2f}"  # noqa: E731
    out = [
        f"- AA's mean tSuc spans {100 * f['span']:.1f} points over the layers (best: layer {f['best']}, "
        f"{pct(f['best_tSuc'])} %; 2√2·SE ≈ {100 * f['margin']:.1f} points)"
        + (": on the mean over judges the layers hardly differ." if f["span"] <= f["margin"] else ".")
    ]
    for label, c in f["curves"].items():
        out.append(
            f"- {label} peaks at layer {c['layer']} (mean tSuc {pct(c['tSuc'])} %, {100 * c['gap']:.1f} points below "
            f"the best); over the layers it ranks them against the mean tSuc at ρ {fmt(c['rho'])}, against each "
            "judge's at "
            + ", ".join(f"{b} {fmt(v)}" for b, v in c["rho_per_judge"].items())
            + {
                "yes": ": its best layer is AA's, within the noise.",
                "any": ": its best layer is within the noise of AA's, as every layer is.",
                "no": ": its best layer is not AA's.",
            }[c["predicts"]]
        )
    out.append(
        "- Each judge's own best layer against the worst, for it, of the other judges' best layers: "
        + "; ".join(
            f"{j['black']} layer {j['layer']} {pct(j['tSuc'])} % vs layer {j['other_layer']} {pct(j['at_other'])} % "
            f"({100 * j['gap']:+.1f} points; 2√2·SE {100 * j['limit']:.1f})"
            for j in f["judges"]
        )
        + ". "
        + (
            "No judge loses more than the noise at another judge's best layer: as the paper says, the best layer "
            "does not depend on the black box."
            if not f["depends"]
            else "For " + ", ".join(f["depends"]) + " another judge's best layer loses more than the noise: here the "
            "best layer depends on the black box."
        )
    )
    return out


def summary() -> None:
    """experiments/results/layer_predictor.md: one line per white box of every committed layer_predictor_*.json."""
    lines = [
        "# Layer predictor: do separability and class distance pick AA's best layer? (Inkawhich et al. 2019)",
        "",
        "Per white box, from experiments/results/layer_predictor_<model>.md (made by "
        "`python experiments/layer_predictor.py <models>`): the layer each curve puts first, AA's best layer by "
        "mean tSuc over the four judges and by each judge, and the rank correlation of each curve with the mean "
        "tSuc over the layers. 'Picks AA's best?': yes where the curve's best layer gives a mean tSuc within "
        "2√2·SE of the best layer's, 'any' where every layer does (a flat mean curve), no otherwise.",
        "",
        "| white box | layers | separability best (ρ) | class distance best (ρ) | AA best (mean tSuc) | "
        "best per judge | picks AA's best? (separability/distance) | depends on the judge? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS.glob("layer_predictor_*.json")):
        found = json.loads(path.read_text())["result"]
        f = findings(found)
        sep, dist = f["curves"]["separability"], f["curves"]["class distance"]
        rho = lambda c: "—" if c["rho"] is None else f"{c['rho']:+.2f}"  # noqa: E731
        lines.append(
            f"| {found['white']} | {len(found['rows'])} | {sep['layer']} ({rho(sep)}) | "
            f"{dist['layer']} ({rho(dist)}) | {f['best']} ({pct(f['best_tSuc'])} %) | "
            + ", ".join(f"{j['black'].removeprefix('fmnist-')} {j['layer']}" for j in f["judges"])
            + f" | {'/'.join(c['predicts'] for c in f['curves'].values())} | "
            + ("yes: " + ", ".join(d.removeprefix("fmnist-") for d in f["depends"]) if f["depends"] else "no")
            + " |"
        )
    notes = RESULTS / "layer_predictor_notes.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    (RESULTS / "layer_predictor.md").write_text("\n".join(lines) + "\n")


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
    for b, colour in zip(found["blacks"], ("C4", "C5", "C6", "C7", "C8", "C9")):
        values = [r["black"][b]["tSuc"] or 0.0 for r in rows]
        top = max(values) or 1.0
        ax.plot(layers, [v / top for v in values], ":", color=colour, lw=1.2, label=f"tSuc on {b}")
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
    if not args.quick:
        summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
