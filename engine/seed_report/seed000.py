"""Inkawhich et al. 2019 (Activation Attack): matching a target image's features at a middle-to-deep layer
transfers a targeted attack to black-box models better than output-level attacks."""

from __future__ import annotations

from engine.analysis import transfer
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
