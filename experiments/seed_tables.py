"""Seed 001's JSMA table and R(F), and seed 000's AA target-image choice and layer sweep, on the Fashion-MNIST zoo.

Each part runs one or more `python -m engine ... --json` commands (the CLI is the
one place these experiments are put together) and writes
experiments/results/<part>.json (the commands and every number) and .md (the
table, with the seed's figure beside it and what does not carry over).

    python experiments/seed_tables.py jsma_table          # ~10 min on 2 busy cores
    python experiments/seed_tables.py jsma_robustness     # ~5 min
    python experiments/seed_tables.py aa_target_choice    # ~10 min
    python experiments/seed_tables.py aa_layer_sweep      # ~12 min
    python experiments/seed_tables.py jsma_table --quick  # seconds: every step, tiny sizes (nothing is written)
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
from engine.analysis.jsma_extras import SEED_TABLE  # noqa: E402

JUDGES = ["fmnist-resnet-1", "fmnist-densenet-1", "fmnist-lenet-1", "fmnist-vgg-1"]  # the domain's held-out models
WHITE = "fmnist-densenet-0"  # the deepest zoo model by its layer catalogue (11 layers)
AA_EPS = ["0.1", "0.2"]
BANK = "100"  # images per class in AA's bank, as the paper keeps on CIFAR-10


def commands(part: str, quick: bool) -> list[list[str]]:
    """The CLI commands of one part (without `python -m engine`)."""
    if part == "jsma_table":
        models = ["--models", "fmnist-lenet-0", "fmnist-lenet-1"]
        return [
            ["jsma-table", *models, "--n", "3" if quick else "60"],
            # The paper's search over all pairs of the 784 features: ~25× slower, so on fewer images.
            ["jsma-table", *models, "--n", "2" if quick else "30", "--candidates", "784"],
        ]
    if part == "jsma_robustness":
        return [["robustness", "--n", "3" if quick else "300"]]
    n = "8" if quick else "300"
    common = [
        "--model",
        WHITE,
        "--black",
        *(JUDGES[:1] if quick else JUDGES),
        "--n",
        n,
        "--bank-per-class",
        "5" if quick else BANK,
        "--eps",
        *AA_EPS,
    ]
    if part == "aa_target_choice":
        return [
            ["transfer", *common, "--attack", "aa", "--target-image", rule]
            for rule in ("farthest", "nearest-mean", "random")
        ] + [["transfer", *common, "--attack", "tmifgsm", "tpgd"]]
    if part == "aa_layer_sweep":
        return [["transfer", *common, "--attack", "aa", "tmifgsm", "tpgd", "--sweep", "layer"]]
    raise ValueError(f"unknown part {part!r}")


def run_cli(args: list[str]) -> object:
    done = subprocess.run([sys.executable, "-m", "engine", *args, "--json"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python -m engine {shlex.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def se(rate, n) -> float | None:
    return None if rate is None or not n else math.sqrt(rate * (1 - rate) / n)


def rate_cell(rate, n) -> str:
    return "—" if rate is None else f"{pct(rate)} ± {pct(se(rate, n))}"


# ---- JSMA (seed 001) ------------------------------------------------------------------------------------------------


def md_jsma_table(results: list) -> list[str]:
    rows = [r for result in results for r in result]
    lines = [
        "| model | variant | pair search | images | pairs | success % ± SE | mean distortion % (sd) | "
        "seed (MNIST LeNet): success %, mean distortion % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seed = SEED_TABLE[r["theta"]]
        dist = "—" if r["mean_distortion"] is None else f"{pct(r['mean_distortion'])} ({pct(r['distortion_sd'])})"
        search = "all pairs" if r["candidates"] >= 784 else f"top {r['candidates']}"
        lines.append(
            f"| {r['model']} | {r['variant']} (θ = {r['theta']:+d}) | {search} | {r['images']} | {r['pairs']} | "
            f"{pct(r['success_rate'])} ± {pct(r['success_se'])} | {dist} | {pct(seed['success_rate'])}, "
            f"{'not given' if seed['mean_distortion'] is None else format(100 * seed['mean_distortion'], '.2f')} |"
        )
    gaps = []
    for model, k in dict.fromkeys((r["model"], r["candidates"]) for r in rows):
        by = {r["theta"]: r for r in rows if (r["model"], r["candidates"]) == (model, k)}
        if 1 in by and -1 in by:
            gaps.append(f"{model} (k = {k}): {100 * (by[1]['success_rate'] - by[-1]['success_rate']):+.1f} points")
    seed_gap = 100 * (SEED_TABLE[1]["success_rate"] - SEED_TABLE[-1]["success_rate"])
    return lines + [
        "",
        f"Υ = {pct(rows[0]['upsilon'])} % of the 784 features for both variants (the seed's largest Υ). Increasing "
        f"minus decreasing success: {'; '.join(gaps)} (seed: {seed_gap:+.1f} points). Rates are over every (image, "
        "other class) pair of the images the model classifies correctly; SE = √(p(1−p)/n) over the pairs (the 9 "
        "pairs of one image are not independent, so the true uncertainty is somewhat larger). 'top 64' is the "
        "engine's default pair search among each step's 64 most salient features; 'all pairs' is the paper's.",
        "",
        "What does not reproduce, and why: the ranking does (increasing beats decreasing), the sizes do not. The "
        "seed's 97.1 % is on MNIST, where a digit is a thin stroke on a black background and raising background "
        "pixels to 1 draws the strokes of another digit; a Fashion-MNIST garment fills much of the image with "
        "mid-grey texture, and telling a shirt from a coat takes more than a few strokes, so success at the same Υ "
        "is lower and the distortion of a success higher. The same property shrinks the gap: the decreasing variant "
        "has a garment's many non-zero pixels to darken, where on MNIST lowering pixels can only erase the digit. "
        "The top-64 restriction costs success against the full pair search (compare the rows of a model). The zoo's "
        "LeNets are small and trained for 15 epochs (≈ 91 % test accuracy; the seed's MNIST net ≈ 99 %), and the "
        "sample is hundreds of pairs, not the seed's 270,000 crafted samples. As in the seed, F is the last layer "
        "before the softmax (the logits).",
    ]


def md_jsma_robustness(results: list) -> list[str]:
    lines = [
        "| model | images | pairs | R(F) = min A | mean A | median A | min at (image: source → target) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results[0]:
        if r["R"] is None:
            lines.append(f"| {r['model']} | 0 | 0 | — | — | — | — |")
            continue
        at = r["argmin"]
        lines.append(
            f"| {r['model']} | {r['images']} | {r['pairs']} | {r['R']:.4f} | {r['mean_A']:.4f} | "
            f"{r['median_A']:.4f} | {at['image']}: {at['source']} → {at['target']} |"
        )
    return lines + [
        "",
        "A(X, t) = 1 − the share of the 784 features whose increasing-variant saliency S(X, t)[i] is positive "
        "(∂F_t/∂X_i > 0 and Σ_{j≠t} ∂F_j/∂X_i < 0, F = logits); R(F) is its minimum over every pair evaluated "
        "(images the model classifies correctly, each towards every other class). Image numbers are Fashion-MNIST "
        "test indices; classes are 0 T-shirt/top … 9 ankle boot.",
        "",
        "The seed defines R(F) and says a larger R means a model harder to attack, but gives no value for its MNIST "
        "network, so there is no figure to reproduce; what it implies, that R ranks models by how hard JSMA finds "
        "them, is a claim these numbers allow one to check against each model's JSMA success (jsma_table) only for "
        "the two LeNets here. R is a minimum: it can only fall as more images are evaluated, so it compares models "
        "only over the same test images (each model's correctly classified ones among them, as here).",
    ]


# ---- AA (seed 000) --------------------------------------------------------------------------------------------------


def _rows(results: list) -> list[dict]:
    return [row for result in results for row in result["rows"]]


def _counts(rows: list[dict]) -> dict[str, int]:
    """n per black-box model: the images both models classify correctly (the same for every method)."""
    return {r["black"]: r["n"] for r in rows}


def md_aa_target_choice(results: list) -> list[str]:
    rows = _rows(results)
    n = _counts(rows)
    blacks = list(n)
    lines = [
        f"White-box {WHITE}, AA at its default (middle) layer {rows[0]['layer']}, 10 steps, α = ε/10; bank: "
        f"{results[0]['bank']} images, the first {BANK} of each class in the second half of the test split "
        f"that the white-box model classifies correctly. {rows[0]['images']} source images; n per judge (both "
        "models right): " + ", ".join(f"{b} {n[b]}" for b in blacks) + ". The same random target class per "
        "image for every row. tSuc and tTR in % ± binomial SE (tSuc over n, tTR over the white-box target hits).",
        "",
    ]
    cell = {}
    for eps in dict.fromkeys(r["eps"] for r in rows):
        lines += [
            f"### ε = {eps}",
            "",
            "| method | target image | " + " | ".join(f"{b} tSuc | tTR" for b in blacks) + " | white-box tSuc |",
            "|---|---|" + "---|---|" * len(blacks) + "---|",
        ]
        for key in dict.fromkeys((r["method"], r["target_image"]) for r in rows if r["eps"] == eps):
            cells = []
            for b in blacks:
                r = next(
                    r for r in rows if (r["method"], r["target_image"]) == key and r["eps"] == eps and r["black"] == b
                )
                cell[(eps, *key, b)] = r
                hits = round(r["white_tSuc"] * r["n"]) if r["white_tSuc"] is not None else 0
                cells += [rate_cell(r["tSuc"], r["n"]), rate_cell(r["tTR"], hits)]
            lines.append(
                f"| {key[0]} | {key[1] or '—'} | " + " | ".join(cells) + f" | {rate_cell(r['white_tSuc'], r['n'])} |"
            )
        diffs = []
        for rule in ("nearest-mean", "random"):
            if (eps, "aa", rule, blacks[0]) in cell:
                d = [
                    100 * (cell[(eps, "aa", rule, b)]["tSuc"] - cell[(eps, "aa", "farthest", b)]["tSuc"])
                    for b in blacks
                ]
                diffs.append(f"{rule} − farthest: " + ", ".join(f"{v:+.1f}" for v in d))
        if (eps, "tmifgsm", None, blacks[0]) in cell:
            best = max(
                ("farthest", "nearest-mean", "random"),
                key=lambda rule: sum(cell[(eps, "aa", rule, b)]["tSuc"] for b in blacks),
            )
            d = [100 * (cell[(eps, "aa", best, b)]["tSuc"] - cell[(eps, "tmifgsm", None, b)]["tSuc"]) for b in blacks]
            diffs.append(f"AA ({best}) − TMIFGSM: " + ", ".join(f"{v:+.1f}" for v in d))
        lines += ["", f"tSuc differences in points, judges in the order above: {'; '.join(diffs)}.", ""]
    return lines + [
        "Seed: AA picks the farthest-in-class target image (SPEC §2) and compares no other rule; its best CIFAR-10 "
        "layer reaches ≈ 75 % tSuc (DenseNet-121 → ResNet-50, ε = 0.07), 32.6 points above TMIFGSM. It suggests, "
        "as future work, pushing towards the class centroid instead; nearest-mean is the bank image closest to that "
        "centroid at the layer, and random in-class is the control.",
        "",
        "What does not carry over: 28 × 28 grey images and small (≈ 50 k-parameter) models, far from ImageNet-scale "
        "networks on CIFAR-10; transfer needs ε ≈ 0.1–0.2 here. n is a few hundred images and every row shares them "
        "and their targets, so the rows are paired: a difference of a few points between rules is within about "
        "√2 × SE of noise. The seed's AA lead over TMIFGSM (+32.6 points) is to be compared with the last "
        "difference of each ε above.",
    ]


def md_aa_layer_sweep(results: list) -> list[str]:
    rows = _rows(results)
    blacks = list(dict.fromkeys(r["black"] for r in rows))
    lines = [
        f"White-box {WHITE} ({max(r['layer'] for r in rows if r['layer'] is not None) + 1} catalogue layers, "
        "every one swept), AA farthest-in-class, 10 steps; baselines TMIFGSM and TPGD beside it at the same ε "
        "and targets. tSuc / tTR in %; SE of a rate p over n is √(p(1−p)/n) (≈ 2.8 points at p = 0.3, n = 270); n is "
        "the smallest over the judges.",
        "",
    ]
    for eps in dict.fromkeys(r["eps"] for r in rows):
        lines += [
            f"### ε = {eps}",
            "",
            "| method | layer | n | " + " | ".join(f"{b} tSuc / tTR" for b in blacks) + " | mean tSuc |",
            "|---|---|---|" + "---|" * len(blacks) + "---|",
        ]
        means = {}
        for key in dict.fromkeys((r["method"], r["layer"]) for r in rows if r["eps"] == eps):
            picked = {r["black"]: r for r in rows if (r["method"], r["layer"]) == key and r["eps"] == eps}
            n = min(r["n"] for r in picked.values())
            means[key] = sum(r["tSuc"] or 0 for r in picked.values()) / len(picked)
            lines.append(
                f"| {key[0]} | {'—' if key[1] is None else key[1]} | {n} | "
                + " | ".join(f"{pct(picked[b]['tSuc'])} / {pct(picked[b]['tTR'])}" for b in blacks)
                + f" | {pct(means[key])} |"
            )
        best = max((k for k in means if k[0] == "aa"), key=means.get)
        base = max((k for k in means if k[0] != "aa"), key=means.get, default=None)
        per_judge = []
        for b in blacks:
            aa = [r for r in rows if r["eps"] == eps and r["method"] == "aa" and r["black"] == b]
            top = max(aa, key=lambda r: r["tSuc"] or 0)
            per_judge.append(f"{b} {top['layer']} ({pct(top['tSuc'])} %)")
        lines += [
            "",
            f"ε = {eps}: best AA layer by mean tSuc over the judges: {best[1]} ({pct(means[best])} %)"
            + (f"; best baseline: {base[0]} ({pct(means[base])} %)" if base else "")
            + f". Best AA layer per judge: {', '.join(per_judge)}.",
            "",
        ]
    return lines + [
        "Seed: tSuc peaks at a middle-to-deep layer (DenseNet-121 L = 21 of its sampled layers) and AA beats TMIFGSM "
        "by 32.6 points tSuc at ε = 0.07 on CIFAR-10; the layer-wise shape did not depend on the black-box model.",
        "",
        "What does not carry over: the zoo's DenseNet has 11 catalogue blocks and ≈ 46 k parameters, on 28 × 28 "
        "grey images, and its deepest catalogue block is not the logits layer the seed's sweep ends on; whether AA "
        "beats the baselines, where its best layer lies and whether that depends on the judge are whatever the rows "
        "and the per-judge best layers above show.",
    ]


MARKDOWN = {
    "jsma_table": ("JSMA: increasing vs decreasing (seed 001)", md_jsma_table),
    "jsma_robustness": ("JSMA robustness R(F) of every zoo model (seed 001)", md_jsma_robustness),
    "aa_target_choice": ("AA: target-image choice (seed 000)", md_aa_target_choice),
    "aa_layer_sweep": ("AA: layer-depth sweep with baselines (seed 000)", md_aa_layer_sweep),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=list(MARKDOWN))
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints the markdown instead of writing files")
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the part's .json, running nothing")
    args = parser.parse_args()
    script = "python experiments/seed_tables.py " + args.part
    if args.render:
        saved = json.loads((RESULTS / f"{args.part}.json").read_text())
        shown, seconds, results = saved["cli"], saved["seconds"], saved["results"]
    else:
        started = time.perf_counter()
        cmds = commands(args.part, args.quick)
        results = []
        for c in cmds:
            print(f"[{time.strftime('%H:%M:%S')}] python -m engine {shlex.join(c)} --json", file=sys.stderr, flush=True)
            results.append(run_cli(c))
        seconds = round(time.perf_counter() - started)
        shown = [f"python -m engine {shlex.join(c)} --json" for c in cmds]
    title, body = MARKDOWN[args.part]
    md = "\n".join(
        [
            f"# {title}",
            "",
            f"Made by `{script}` ({seconds} s), which runs:",
            "",
            "```",
            *shown,
            "```",
            "",
            *body(results),
            "",
        ]
    )
    if args.quick:
        print(md)
        return 0
    RESULTS.mkdir(exist_ok=True)
    if not args.render:
        (RESULTS / f"{args.part}.json").write_text(
            json.dumps({"command": script, "cli": shown, "seconds": seconds, "results": results}, indent=2) + "\n"
        )
    (RESULTS / f"{args.part}.md").write_text(md)
    print(f"wrote {RESULTS / args.part}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
