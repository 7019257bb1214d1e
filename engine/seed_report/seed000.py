"""Inkawhich et al. 2019 (Activation Attack): matching a target image's features at a middle-to-deep layer
transfers a targeted attack to black-box models better than output-level attacks."""

from __future__ import annotations

from engine.analysis import layer_predictor, transfer
from engine.analysis.target_images import evaluation_split

from . import figures
from .base import Check, Context, Figure, Section, Table, needs_judges, needs_layers, pct, register


def _needs(ctx: Context) -> str | None:
    return needs_layers(ctx) or needs_judges(ctx)


def _aa(ctx: Context) -> Section:
    model = ctx.model
    judges = ctx.load(ctx.others("judges")[: ctx.size(1, 4, 2)])
    eps = max(ctx.domain.defaults["transfer"]["eps"])
    steps = ctx.size(2, 10, 5)
    indexes = [layer.index for layer in model.layers()]
    layers = transfer.default_layers(indexes)
    x, y, _ = ctx.images(ctx.size(4, 200, 16))
    _, bank = evaluation_split(model, x.shape[0])
    jobs = transfer.plan(["aa", "tmifgsm"], [eps], layers)
    rows = transfer.run_plan(model, judges, jobs, x, y, steps=steps, seed=ctx.seed, bank=bank, callback=ctx.callback)
    if ctx.stopped or len(rows) < len(jobs) * len(judges):
        return Section({}, "", complete=False)
    table = Table(
        "Targeted transfer: tSuc (black box says the target) and tTR (of the white-box hits, the share that transfer)",
        ["method", "layer", "black box", "n", "tSuc %", "tTR %", "white-box tSuc %"],
        [
            [
                transfer.TITLES[r["method"]],
                r["layer"],
                r["black"],
                r["n"],
                pct(r["tSuc"]),
                pct(r["tTR"]),
                pct(r["white_tSuc"]),
            ]
            for r in rows
        ],
    )
    series, gaps = [], []
    for judge in judges:
        aa = [r for r in rows if r["method"] == "aa" and r["black"] == judge.name]
        base = next(r for r in rows if r["method"] == "tmifgsm" and r["black"] == judge.name)
        series.append((f"AA → {judge.name}", [r["layer"] for r in aa], [100 * (r["tSuc"] or 0) for r in aa]))
        series.append((f"TMI-FGSM → {judge.name}", [layers[0], layers[-1]], [100 * (base["tSuc"] or 0)] * 2))
        best = max(aa, key=lambda r: r["tSuc"] or 0)
        gaps.append(f"{judge.name} {100 * ((best['tSuc'] or 0) - (base['tSuc'] or 0)):+.1f} (layer {best['layer']})")
    chart = figures.line_chart(
        series, "AA's layer (catalogue index)", "tSuc %", dashed=tuple(s[0] for s in series if s[0].startswith("TMI"))
    )
    settings = {
        "images": int(x.shape[0]),
        "white box": model.name,
        "black boxes": ", ".join(j.name for j in judges),
        "ε": eps,
        "steps": steps,
        "AA layers": ", ".join(str(v) for v in layers),
        "target image": "farthest in class, from the domain's bank",
    }
    return Section(
        settings,
        "best AA layer − TMI-FGSM tSuc: " + "; ".join(gaps) + " points (paper +32.6)",
        [table],
        [Figure("tSuc against AA's layer, TMI-FGSM dashed", svg=chart)],
        [
            "The paper: CIFAR-10, DenseNet-121 → ResNet-50 at ε = 0.07, AA at its best layer ≈ 75 % tSuc. One "
            "random target class per image, the same for both methods; rates over images both models get right."
        ],
    )


register(
    Check(
        "aa-transfer",
        "Activation Attack vs TMI-FGSM, by layer",
        "000 — Inkawhich et al. 2019, Activation Attack (CVPR), layer sweep and baseline table",
        "Driving a middle-to-deep layer's features towards a target image transfers a targeted attack better "
        "than TMI-FGSM.",
        "AA at its best layer ≈ 75 % tSuc, +32.6 points over TMI-FGSM",
        _aa,
        needs=_needs,
        seconds=(5.0, 40.0),
    )
)


def _spread(indexes: list[int], most: int) -> list[int]:
    """At most `most` of the catalogue's layers, evenly spaced from the first to the last."""
    if len(indexes) <= most:
        return indexes
    return sorted({indexes[round(i * (len(indexes) - 1) / (most - 1))] for i in range(most)})


def _predictor(ctx: Context) -> Section:
    model = ctx.model
    judges = ctx.load(ctx.others("judges")[: ctx.size(1, 4, 2)])
    own = ctx.domain.defaults
    eps, steps = own["features"]["eps"], ctx.size(2, own["transfer"]["steps"], own["transfer"]["steps"])
    layers = _spread([layer.index for layer in model.layers()], ctx.size(2, 12, 4))
    x, y, _ = ctx.images(ctx.size(4, 300, 8))
    _, bank = evaluation_split(model, x.shape[0])
    found = layer_predictor.layer_predictor(
        model, judges, x, y, eps=eps, steps=steps, seed=ctx.seed, bank=bank, layers=layers, callback=ctx.callback
    )
    rows = found["rows"]
    if ctx.stopped or found["stopped"] or len(rows) < len(layers):
        return Section({}, "", complete=False)
    names = found["blacks"]
    table = Table(
        "Per layer: class separability, source-to-target class distance (PCA plane, over its spread), AA's tSuc",
        ["layer", "name", "separability", "class distance", "AA travel", *(f"tSuc % {b}" for b in names)]
        + ["mean tSuc %", "white-box tSuc %"],
        [
            [r["layer"], r["name"], r["separability"], r["class_distance_rel"], r["travel_rel"]]
            + [pct(r["black"][b]["tSuc"]) for b in names]
            + [pct(r["tSuc"]), pct(r["white_tSuc"])]
            for r in rows
        ],
    )
    curves: dict[str, tuple[list, list]] = {}
    for point in layer_predictor.chart_rows(found):
        xs, ys = curves.setdefault(point["curve"], ([], []))
        xs.append(point["layer"])
        ys.append(point["value"])
    chart = figures.line_chart(
        [(label, xs, ys) for label, (xs, ys) in curves.items()], "layer (catalogue index)", "over its own maximum"
    )
    best = layer_predictor.best_layers(found)
    rho = layer_predictor.rank_agreement(found, "separability")
    judged = set(best["per_black"].values())
    settings = {
        "images": int(x.shape[0]),
        "white box": model.name,
        "black boxes": ", ".join(names),
        "ε": eps,
        "steps": steps,
        "layers": ", ".join(str(v) for v in layers),
        "target image": "farthest in class, from the domain's bank",
    }
    headline = (
        f"best separated layer {best['separability']}, best transferring {best['tSuc']}"
        + ("" if rho is None else f" (Spearman ρ {rho:+.2f})")
        + f"; best layer per black box: {', '.join(str(v) for v in sorted(judged))} (paper: one layer, the best "
        "separated)"
    )
    return Section(
        settings,
        headline,
        [table],
        [Figure("Separability, class distance and mean tSuc against the layer, each over its maximum", svg=chart)],
        [
            layer_predictor.sentence(found),
            "The paper: CIFAR-10, the layers whose classes lie furthest apart are those whose AA examples transfer "
            "best, on every black box. experiments/results/layer_predictor.md holds the Fashion-MNIST zoo's run "
            "with 300 images and four judges, and the 2√2·SE margin that tells a finding from noise.",
        ],
    )


register(
    Check(
        "layer-predictor",
        "Which layer should AA attack? Separability, class distance and tSuc",
        "000 — Inkawhich et al. 2019, Activation Attack (CVPR), Figs 3–5 and 7",
        "The layers whose classes are best separated are those whose AA examples transfer best, whatever the "
        "black box.",
        "qualitative: separability and tSuc peak at the same layer for every black box",
        _predictor,
        needs=_needs,
        seconds=(10.0, 30.0),
    )
)
