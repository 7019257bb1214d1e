"""Menn 2023 (thesis): noisy multi-model averaging makes perturbations stronger on held-out models, recognisable
as the source class and concentrated on the object; single-model averaging over noise shows a checkerboard."""

from __future__ import annotations

from engine import images
from engine.analysis import checkerboard, masking, recognisable, source_counts

from . import figures
from .base import Check, Context, Figure, Section, Table, pct, register

PAPER_STRENGTH = {"clean": 81.8, "random ±ε": 81.8, "single-model": 63.3, "noisy multi-model": 13.2}
PAPER_RECOGNISED = {"single-model": 5.5, "noisy multi-model": 56.0}
PAPER_PARTS = {"object": "≈ 32–37", "background": "≈ 60–69"}


def _roles(ctx: Context) -> tuple[list, list]:
    """(other source models, held-out judges): a domain whose only source is this model lends it a judge."""
    sources, judges = ctx.others("sources"), ctx.others("judges")
    if not sources and len(judges) > 1:
        sources, judges = judges[:1], judges[1:]
    return sources, judges


def _needs(ctx: Context) -> str | None:
    sources, judges = _roles(ctx)
    if not judges or not sources:
        return "needs other models of the same classes: sources to average over and held-out judges"
    return None


def _mean(rows: list[dict], key: str, value: str) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r[key], []).append(r[value])
    return {k: sum(v) / len(v) for k, v in out.items()}


def _recognisable(ctx: Context) -> Section:
    model = ctx.model
    sources, judges = _roles(ctx)
    sources, judges = ctx.load(sources[: ctx.size(1, 5, 1)]), ctx.load(judges[: ctx.size(1, 4, 2)])
    budget = ctx.domain.averaging
    eps, sigma = budget["eps"], budget["sigma"]
    steps, copies = ctx.size(2, 10, 5), ctx.size(2, budget["copies"], budget["copies"])
    x, y, keys = ctx.images(ctx.size(2, 50, 8))
    bim = {"eps": eps, "steps": steps, "alpha": 2 * eps / steps}
    deltas = recognisable.perturbations(
        [model, *sources], x, y, {"bim": bim}, copies=copies, sigma=sigma, seed=ctx.seed, callback=ctx.callback
    )
    if ctx.stopped or len(deltas) < len(recognisable.SETTINGS):
        return Section({}, "", complete=False)
    strength = _mean(recognisable.strength_table(judges, x, y, deltas, eps, ctx.seed), "setting", "accuracy")
    # The thesis' judges chose among 20 classes (the true one and 19 others), not among every class.
    choices = min(budget.get("choices") or len(model.class_names), len(model.class_names))
    verdicts = recognisable.recognisability_table(judges, y, deltas, ctx.domain, choices=choices, seed=ctx.seed)
    shares = _mean(verdicts, "setting", "source class share")
    mask = ctx.domain.object_masks(model, x, keys)
    parts = masking.contour_vs_background(judges, x, y, deltas[("bim", "noisy multi-model")], mask, eps, ctx.seed)
    by_part = {}
    for r in parts:
        by_part.setdefault(r["part"], {"area": r["area"]}).setdefault(r["perturbation"], []).append(r["accuracy"])
    chance = 1 / choices
    tables = [
        Table(
            "Attack strength (Table 4.4): judges' accuracy on x + ε·sign(δ)",
            ["perturbation", "accuracy % (mean over judges)", "paper %"],
            [[s, pct(a), PAPER_STRENGTH.get(s)] for s, a in strength.items()],
        ),
        Table(
            "Machine recognisability (Table 4.3): δ alone, display-normalised, classified as the source class",
            ["setting", "share %", "paper %", "chance %"],
            [[s, pct(v), PAPER_RECOGNISED.get(s), pct(chance)] for s, v in shares.items()],
        ),
        Table(
            "Masking effect (§4.8): noisy multi-model δ' only on the object or only on the background",
            ["part", "area %", "accuracy % with δ'", "random ±ε control %", "paper %"],
            [
                [
                    part,
                    pct(v["area"]),
                    pct(sum(v["δ'"]) / len(v["δ'"])),
                    pct(sum(v["random ±ε"]) / len(v["random ±ε"])),
                    PAPER_PARTS[part],
                ]
                for part, v in by_part.items()
            ],
        ),
    ]
    shown = [
        [x[i]]
        + [recognisable.display_normalise(deltas[("bim", s)][i : i + 1], ctx.domain)[0] for s in recognisable.SETTINGS]
        for i in range(min(4, x.shape[0]))
    ]
    picture = Figure(
        "The perturbations as the thesis shows them",
        png=figures.grid_png(shown, cell=112 if not ctx.photos else 160),
        caption="Each row: the image, then δ (×−1, matched to the dataset's mean and std) single-model, "
        "multi-model, noisy multi-model.",
    )
    settings = {
        "images": int(x.shape[0]),
        "single model": model.name,
        "other sources": ", ".join(m.name for m in sources),
        "judges (held out)": ", ".join(m.name for m in judges),
        "attack": f"BIM ε = {eps:g}, {steps} steps, α = 2ε/K",
        "noisy copies per model": copies,
        "σ": sigma,
    }
    single, noisy = shares.get("single-model"), shares.get("noisy multi-model")
    headline = (
        f"recognised as the source class: single {pct(single)} % → noisy multi {pct(noisy)} % (paper 5.5 → 56); "
        f"judges' accuracy {pct(strength.get('single-model'))} → {pct(strength.get('noisy multi-model'))} % "
        "(paper 63.3 → 13.2)"
    )
    return Section(
        settings,
        headline,
        tables,
        [picture],
        [
            f"The thesis' judges are people choosing among 20 classes on ImageNet; here held-out models choose among "
            f"{choices} of the {len(model.class_names)} classes (the image's and others drawn with the report's "
            f"seed; chance {pct(chance)} %). Its copies and steps are larger "
            "(ImageNet: 10 copies, 50 steps, up to 270 source models).",
        ],
    )


def _needs_ensemble(ctx: Context) -> str | None:
    from engine.zoo import ensemble

    if ctx.domain.name != ensemble.DOMAIN or not ensemble.names():
        return f"averages over the committed {ensemble.DOMAIN} ensemble (assets/models/ensemble): that domain only"
    return None if ctx.others("judges") else "needs held-out judges of the same classes"


def _counts(ctx: Context) -> Section:
    from engine.zoo import ensemble

    model = ctx.model
    counts = ctx.size((1, 2), (1, 2, 4, 8), (1, 2, 4, 8))
    names = ensemble.pool([model.name, *ctx.others("sources")], ctx.seed)[: counts[-1]]
    # The zoo's own models first, as the source-count experiment orders them, then the ensemble's.
    sources = [model, *ctx.load(names[1 : 1 + len(ctx.others("sources"))])]
    sources += [ensemble.load(n, model.device) for n in names[len(sources) :]]
    judges = ctx.load(ctx.others("judges")[: ctx.size(1, 4, 2)])
    budget = ctx.domain.averaging
    eps, sigma, steps = budget["eps"], budget["sigma"], ctx.size(2, 10, 5)
    copies = ctx.size(2, budget["copies"], budget["copies"])
    x, y, _ = ctx.images(ctx.size(2, 50, 8))
    bim = {"eps": eps, "steps": steps, "alpha": 2 * eps / steps}
    deltas = source_counts.nested_deltas(
        sources, x, y, "bim", bim, counts, copies=copies, sigma=sigma, seed=ctx.seed, callback=ctx.callback
    )
    if ctx.stopped or len(deltas) < len(counts):
        return Section({}, "", complete=False)
    choices = min(budget.get("choices") or len(model.class_names), len(model.class_names))
    accuracy = source_counts.mean_by_count(
        source_counts.strength_curve(judges, x, y, "bim", deltas, eps, seed=ctx.seed), "accuracy"
    )
    shares = source_counts.mean_by_count(
        source_counts.recognisability_curve(judges, y, "bim", deltas, ctx.domain, choices=choices, seed=ctx.seed),
        "source class share",
    )
    table = Table(
        "Noisy multi-model BIM averaged over the first k sources: judges' accuracy and recognisability",
        ["sources k", "models", "accuracy % on x + ε·sign(δ)", "recognised as the source class %"],
        [[k, ", ".join(names[:k]), pct(accuracy[k]), pct(shares[k])] for k in counts],
    )
    chart = figures.line_chart(
        [
            ("judges' accuracy %", list(counts), [100 * accuracy[k] for k in counts]),
            ("recognised %", list(counts), [100 * shares[k] for k in counts]),
        ],
        "source models averaged",
        "%",
    )
    first, last = counts[0], counts[-1]
    return Section(
        {
            "images": int(x.shape[0]),
            "judges (held out)": ", ".join(j.name for j in judges),
            "attack": f"BIM ε = {eps:g}, {steps} steps, α = 2ε/K",
            "noisy copies per source": copies,
            "σ": sigma,
        },
        f"from {first} to {last} sources: accuracy {pct(accuracy[first])} → {pct(accuracy[last])} %, recognised "
        f"{pct(shares[first])} → {pct(shares[last])} % (thesis: both improve with more models)",
        [table],
        [Figure("Accuracy and recognisability against the number of sources", svg=chart)],
        [
            "The sets are nested (the first k of one list); each source is attacked once on its own noise. The "
            "thesis averages 100–270 models; experiments/results/source_counts_fashion-mnist.md runs up to 38 "
            "with 50-step BIM and finds a clear gain from 1 to 2 sources, then a weak rise."
        ],
    )


def _checkerboard(ctx: Context) -> Section:
    model = ctx.model
    sigmas = ctx.size((0.05, 0.5), (0.05, 0.1, 0.2, 0.5), (0.05, 0.2, 0.5))
    copies = ctx.size(2, ctx.domain.defaults["checkerboard_copies"], ctx.domain.defaults["checkerboard_copies"])
    settings = {"eps": ctx.domain.averaging["eps"], "steps": ctx.size(2, 10, 5)}
    x, _, keys = ctx.images(1)
    rows = checkerboard.for_settings(model, x, sigmas, copies, settings, callback=ctx.callback)
    table = Table(
        "Period of the averaged perturbation's grid (1: no grid), and the grid's share of it",
        ["σ", "period (px)", "share %", "strongest spectral peak (px)"],
        [[r["sigma"], r["period"], pct(r["share"]), r["peak_period"]] for r in rows],
    )
    maps = [[images.to_uint8(x[0])] + [figures.diverging(images.signed_map(r["delta"][None])) for r in rows]]
    chart = figures.line_chart([("here", [r["sigma"] for r in rows], [r["period"] for r in rows])], "σ", "period (px)")
    periods = ", ".join(f"{r['period']:.1f}" for r in rows)
    return Section(
        {"image": keys[0] if keys else "the first", "noisy copies": copies, "attack": "BIM", **settings},
        f"period {periods} px at σ = {', '.join(f'{s:g}' for s in sigmas)} (paper: ~1 → ~30 px from σ 0.05 to 0.5)",
        [table],
        [
            Figure(
                "The averaged perturbation at each σ",
                png=figures.grid_png(maps, cell=112 if not ctx.photos else 160),
                caption="The image, then δ per σ (channel mean; red +, blue −).",
            ),
            Figure("Period against σ", svg=chart),
        ],
        [
            "The thesis averages ~1,000 copies on 224-px photos. The period is the grid's fundamental (1: no "
            "grid), which a strided network fixes at its total stride: σ moves the grid's share more than its "
            "period. The strongest spectral peak, the older reading, is kept beside it."
        ],
        complete=len(rows) == len(sigmas),
    )


register(
    Check(
        "recognisable",
        "Noisy multi-model averaging: strength, recognisability, masking",
        "002 — Menn 2023 (thesis), Tables 4.3 and 4.4, §4.8",
        "Averaging perturbations over models and noisy copies makes them stronger on held-out models, "
        "recognisable as the source class, and concentrated on the object.",
        "recognised: 5.5 % single → 56 % noisy multi; accuracy 63.3 % → 13.2 %; object 32–37 % vs background 60–69 %",
        _recognisable,
        needs=_needs,
        seconds=(30.0, 80.0),
    )
)
register(
    Check(
        "source-counts",
        "Noisy multi-model averaging: how many source models",
        "002 — Menn 2023 (thesis), §4.6.5 and §5.2.1",
        "The more source models the perturbation is averaged over, the stronger and more recognisable it is.",
        "qualitative: stronger and more recognisable with more models (100–270 averaged)",
        _counts,
        needs=_needs_ensemble,
        seconds=(40.0, 0.0),  # photos: does not apply
    )
)
register(
    Check(
        "checkerboard",
        "Checkerboard artefacts of noisy single-model averaging",
        "002 — Menn 2023 (thesis), §5.2",
        "As σ grows, the average over noisy copies shows a grid whose period grows.",
        "period ~1 px at σ = 0.05 to ~30 px at σ = 0.5",
        _checkerboard,
        seconds=(2.0, 10.0),
    )
)
