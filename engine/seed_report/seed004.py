"""Yu 2022 (Mask-FGSM): a Grad-CAM mask keeps the perturbation small and invisible; a patch near the heat-map
centre does the most harm."""

from __future__ import annotations

from engine import attacks, images
from engine.analysis import patch_distance as patches
from engine.analysis import patch_results
from engine.analysis.sparsity import DEFAULT_VARIANTS, P_THS, comparison_table, mask_tradeoff

from . import figures
from .base import Check, Context, Figure, Section, Table, needs_layers, pct, register

# The paper's table (DenseNet-161, ImageNet): L0 as % of pixels changed, and SSIM.
PAPER = {"fgsm": (100.0, 0.978), "jsma": (4.52, 0.991), "deepfool": (74.37, 0.990), "maskfgsm": (3.82, 0.997)}
TITLES = {"fgsm": "FGSM", "jsma": "JSMA", "deepfool": "DeepFool", "maskfgsm": "Mask-FGSM"}
SHOWN = ("fgsm", "deepfool", "maskfgsm")  # Fig. 5's three columns


def _table(ctx: Context) -> Section:
    model = ctx.model
    x, y, _ = ctx.images(ctx.size(2, 100, 8))
    rows = []
    for i, variant in enumerate(DEFAULT_VARIANTS):
        if not ctx.go(i, len(DEFAULT_VARIANTS) + 1):
            return Section({}, "", complete=False)
        rows += comparison_table(model, x, y, variants=[variant], seed=ctx.seed)
    adversarial = {
        m: attacks.run(m, model, x[:1], y=y[:1], seed=ctx.seed, **kw) for m, kw in DEFAULT_VARIANTS if m in SHOWN
    }
    ctx.go(len(DEFAULT_VARIANTS) + 1, len(DEFAULT_VARIANTS) + 1)
    table = Table(
        "FGSM, JSMA, DeepFool and Mask-FGSM on the same images",
        ["method", "success %", "L0 % (≥ ½ level)", "L0 % (any change)", "SSIM", "paper L0 %", "paper SSIM"],
        [
            [TITLES[r["method"]], pct(r["success_rate"]), r["l0_pct"], r["l0_any_pct"], r["ssim"], *PAPER[r["method"]]]
            for r in rows
        ],
    )
    by = {r["method"]: r for r in rows}
    mask, fgsm = by["maskfgsm"], by["fgsm"]
    headline = (
        f"Mask-FGSM fools {pct(mask['success_rate'])} % (FGSM {pct(fgsm['success_rate'])} %); "
        f"L0 {mask['l0_any_pct']:.1f} % vs FGSM {fgsm['l0_any_pct']:.1f} % (paper 3.82 vs 100), "
        f"SSIM {mask['ssim']:.3f} vs {fgsm['ssim']:.3f} (paper 0.997 vs 0.978)"
    )
    grid = [
        [x[0]] + [adversarial[m].x_adv[0] for m in SHOWN],
        [x[0]] + [images.amplified(adversarial[m].delta) for m in SHOWN],
    ]
    names = ", ".join(TITLES[m] for m in SHOWN)
    picture = Figure(
        "Fig. 5 of the paper, on this model: one image and its three adversarial versions",
        png=figures.grid_png(grid, cell=160),
        caption=f"Top: the image, then {names}; bottom: |δ| of each, scaled to its own largest value.",
    )
    settings = {"images": int(x.shape[0]), **{TITLES[m]: kw or "the domain's defaults" for m, kw in DEFAULT_VARIANTS}}
    return Section(
        settings,
        headline,
        [table],
        [picture],
        [
            "Success is over all images (untargeted; JSMA aims at each image's runner-up class). The paper counts "
            "L0 as pixels changed at all; '≥ ½ level' counts those that survive saving as 8-bit.",
        ],
    )


def _tradeoff(ctx: Context) -> Section:
    model = ctx.model
    x, y, _ = ctx.images(ctx.size(2, 300, 12))
    p_ths = ctx.size((0.0, 0.9), P_THS, (0.0, 0.3, 0.5, 0.7, 0.8, 0.9))
    rows = mask_tradeoff(model, x, y, p_ths=p_ths, seed=ctx.seed, callback=ctx.callback)
    if ctx.stopped or len(rows) < len(p_ths) + 1:
        return Section({}, "", complete=False)
    label = lambda r: "FGSM" if r["method"] == "fgsm" else f"Mask-FGSM, P_th {r['p_th']:g}"  # noqa: E731
    paper_l0, paper_ssim = PAPER["maskfgsm"]
    table = Table(
        "Mask-FGSM's L0 against its success as the threshold P_th tightens (FGSM first, the same ε)",
        ["method", "success %", "L0 % (any change)", "L0 % (≥ ½ level)", "SSIM"],
        [[label(r), pct(r["success_rate"]), r["l0_any_pct"], r["l0_pct"], r["ssim"]] for r in rows]
        + [["paper: Mask-FGSM", "not given", paper_l0, None, paper_ssim]],
    )
    masked, fgsm = rows[1:], rows[0]
    chart = figures.line_chart(
        [
            ("Mask-FGSM over P_th", [r["l0_any_pct"] for r in masked], [100 * r["success_rate"] for r in masked]),
            ("FGSM", [fgsm["l0_any_pct"]], [100 * fgsm["success_rate"]]),
        ],
        "L0 % (pixels changed at all)",
        "success %",
    )
    near = min(masked, key=lambda r: abs(r["l0_any_pct"] - paper_l0))
    return Section(
        {"images": int(x.shape[0]), "P_th": ", ".join(f"{p:g}" for p in p_ths), "mask": "weighted (the paper's)"},
        f"at the L0 nearest the paper's {paper_l0} % (P_th {near['p_th']:g}): L0 {near['l0_any_pct']:.2f} %, "
        f"SSIM {near['ssim']:.3f} (paper 0.997), success {pct(near['success_rate'])} % "
        f"(FGSM {pct(fgsm['success_rate'])} %)",
        [table],
        [Figure("Success against L0 over P_th, FGSM alone", svg=chart)],
        [
            "The paper gives one L0 and no P_th nor success rate; the sweep shows the trade-off that hides: a tighter "
            "P_th shrinks L0 and raises SSIM at the cost of success. experiments/results/mask_tradeoff.md and "
            "mask_tradeoff_photos.md hold the runs on 300 Fashion-MNIST images and 36 photos.",
        ],
    )


def _round(v):
    return None if v is None else round(v, 4)


def _patch(ctx: Context) -> Section:
    model = ctx.model
    s = patches.defaults(model)
    n = ctx.size(2, s["images"], 12)
    distances = s["distances"][:3] if ctx.tiny else s["distances"]
    x, y, _ = ctx.images(n)
    found = patches.patch_distance(
        model,
        x,
        y,
        size=s["size"],
        amplitude=s["amplitude"],
        distances=distances,
        directions=2 if ctx.tiny else s["directions"],
        seed=ctx.seed,
        callback=ctx.callback,
    )
    rows = found.curve
    table = Table(
        "The patch's effect by its distance from the Grad-CAM peak",
        ["distance (px)", "placements", "drop of p(true)", "flipped %", "drop over random positions", "± SE"],
        [
            [r["distance"], r["n"], _round(r["drop_mean"]), pct(r["success"])]
            + [_round(r["over_random_mean"]), _round(r["over_random_se"])]
            for r in rows
        ],
    )
    rho = found.correlation["ring"]
    chart = figures.line_chart(
        [
            ("at the distance", [r["distance"] for r in rows], [r["drop_mean"] for r in rows]),
            ("random positions", [rows[0]["distance"], rows[-1]["distance"]], [found.control["drop_mean"]] * 2),
        ],
        "distance from the heat-map centre (px)",
        "mean drop of p(true)",
        dashed=("random positions",),
    )
    settings = {
        "photos counted": found.settings["photos_counted"],
        "patch side (px)": s["size"],
        "amplitude": s["amplitude"],
        "directions": found.settings["directions"],
    }
    word = "—" if rho is None else f"{rho:+.2f}"
    return Section(
        settings,
        f"Spearman ρ(distance, drop of p(true)) {word} (paper: the effect decays with distance)",
        [table],
        [Figure("Drop of p(true) against distance", svg=chart)],
        [
            patch_results.summary(found),
            "A negative ρ is the paper's decay. 'Over random' is each photo's drop at that distance minus its drop at "
            "random positions (mean over photos).",
        ],
        complete=not found.stopped_early,
    )


register(
    Check(
        "mask-fgsm",
        "Mask-FGSM: small, invisible perturbations",
        "004 — Yu 2022, Mask-FGSM (DenseNet-161, ImageNet), comparison table and Fig. 5",
        "Masking FGSM by the Grad-CAM heat map changes far fewer pixels than FGSM or DeepFool, at a higher SSIM.",
        "L0 % / SSIM: FGSM 100 / 0.978, JSMA 4.52 / 0.991, DeepFool 74.37 / 0.990, Mask-FGSM 3.82 / 0.997",
        _table,
        needs=needs_layers,
        seconds=(2.0, 70.0),
    )
)
register(
    Check(
        "mask-tradeoff",
        "Mask-FGSM: L0 against success over the heat-map threshold",
        "004 — Yu 2022, Mask-FGSM (DenseNet-161, ImageNet), the threshold P_th of Eq. 5",
        "Keeping the FGSM step only where the Grad-CAM map reaches P_th changes few pixels (3.82 %) at SSIM 0.997.",
        "Mask-FGSM L0 3.82 %, SSIM 0.997 (no success rate given)",
        _tradeoff,
        needs=needs_layers,
        seconds=(6.0, 30.0),
    )
)
register(
    Check(
        "patch-distance",
        "A noise patch near the heat-map centre",
        "004 — Yu 2022, Fig. 4",
        "The closer a fixed noise patch lies to the heat-map centre, the more it lowers the true class's confidence.",
        "qualitative: the effect decays with the distance",
        _patch,
        needs=needs_layers,
        seconds=(1.0, 15.0),
    )
)
