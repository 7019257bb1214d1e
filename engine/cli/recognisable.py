"""Human-recognisable perturbations: averaged over models and noisy copies, judged by held-out black-box models
(strength, recognizability, similarity, contour)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from engine import domains, targets

from . import options
from .inputs import domain_for, emit, image_batch, rows_line
from .inputs import model as open_model


def _targets(args, model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """--targeted POLICY: runner-up, random (seeded by --seed) or a class index/name; None when untargeted."""
    value = getattr(args, "targeted", None)
    if value is None:
        return None
    policy = value if value in targets.POLICIES else options.parse_target(value, model)
    if isinstance(policy, int) and not 0 <= policy < model.num_classes:
        raise ValueError(f"target class {policy} is outside 0–{model.num_classes - 1}")
    return targets.choose(model, x, policy, y=y, seed=args.seed)


def _sources(args, domain) -> list:
    """--models (default: the domain's sources); with --source-counts beyond them and no --models, the domain's
    averaging ensemble follows in an order seeded by --seed."""
    names = list(args.models or domain.sources)
    counts = getattr(args, "source_counts", None)
    if counts and max(counts) > len(names) and not args.models:
        from engine.zoo import ensemble

        if domain.name == ensemble.DOMAIN:
            extra = ensemble.pool(names, args.seed)[len(names) : max(counts)]
            return [open_model(args, n) for n in names] + [ensemble.load(n, args.device) for n in extra]
    return [open_model(args, n) for n in names]


def setup(args) -> SimpleNamespace:
    """Models, images, labels, targets and the perturbations of every (attack, setting), or with --source-counts
    those of the noisy multi-model average over the first k sources for each count k."""
    from engine.analysis import recognisable, source_counts

    domain = domain_for(args, [args.model, *(args.models or [])])
    sources = _sources(args, domain)
    black = [open_model(args, n) for n in args.black or domain.judges]
    single = open_model(args, args.model) if args.model else sources[0]
    settings = domains.of(sources[0]).averaging
    if args.n is None:
        args.n = domains.of(sources[0]).defaults["images"]
    x, y, names = image_batch(args, sources[0])
    if y is None:  # photos carry no label
        y = recognisable.consensus_labels(sources + black, x)
    target = _targets(args, sources[0], x, y)
    copies = args.copies if args.copies is not None else settings["copies"]
    sigma = args.sigma if args.sigma is not None else settings["sigma"]
    eps = args.quantise_eps if args.quantise_eps is not None else settings["eps"]
    given = options.given_params(args)
    params = options.own_params(args.attack, given)
    if getattr(args, "source_counts", None):
        if args.model:  # the single model leads, so the first point is the single-source average
            sources = [single] + [m for m in sources if m.name != single.name]
        counts = source_counts.check_counts(args.source_counts, len(sources))
        attack = args.attack[0]
        deltas = source_counts.nested_deltas(
            sources, x, y, attack, params[attack], counts, copies=copies, sigma=sigma, target=target, seed=args.seed
        )
    else:
        deltas = recognisable.perturbations(
            sources, x, y, params, single=single, copies=copies, sigma=sigma, target=target, seed=args.seed
        )
    return SimpleNamespace(
        sources=sources,
        black=black,
        single=single,
        x=x,
        y=y,
        target=target,
        names=names,
        deltas=deltas,
        eps=eps,
        copies=copies,
        sigma=sigma,
        params=given,
    )


def cmd_strength(args) -> int:
    from engine.analysis import recognisable, source_counts

    s = setup(args)
    if args.source_counts:
        rows = source_counts.strength_curve(s.black, s.x, s.y, args.attack[0], s.deltas, s.eps, seed=args.seed)
    else:
        rows = recognisable.strength_table(s.black, s.x, s.y, s.deltas, s.eps, seed=args.seed)
    return emit(rows, args.json, rows_line)


def _choices(args, model) -> int | None:
    """--choices: a number, 'all' (None), or the domain's (the thesis' 20 on photos), at most every class."""
    value = args.choices if args.choices is not None else domains.of(model).averaging.get("choices", "all")
    return None if value == "all" else min(value, model.num_classes)


def cmd_recognizability(args) -> int:
    from engine.analysis import recognisable, source_counts

    s = setup(args)
    domain = s.sources[0].domain
    choices = _choices(args, s.sources[0])
    if s.target is not None:
        rows = recognisable.target_recognisability_table(s.black, s.y, s.target, s.deltas, domain)
    elif args.source_counts:
        rows = source_counts.recognisability_curve(
            s.black, s.y, args.attack[0], s.deltas, domain, choices=choices, seed=args.seed
        )
    else:
        rows = recognisable.recognisability_table(s.black, s.y, s.deltas, domain, choices=choices, seed=args.seed)
    return emit(rows, args.json, rows_line)


def cmd_similarity(args) -> int:
    from engine.analysis import recognisable

    return emit(recognisable.similarity_table(setup(args).deltas), args.json, rows_line)


def _contour(args, s) -> dict:
    from engine.analysis import masking

    x, y, black, eps = s.x, s.y, s.black, s.eps
    masks = domains.of(s.sources[0]).object_masks(s.sources[0], x, s.names, threshold=args.threshold)
    attack = args.attack[0]
    delta = s.deltas[(attack, "noisy multi-model")]
    out = {
        "attack": attack,
        "parts": {
            k: masking.contour_vs_background(black, x, y, s.deltas[(attack, k)], masks, eps, seed=args.seed)
            for k in ("single-model", "noisy multi-model")
        },
        "energy in object": {
            k: masking.mean_energy_in_mask(s.deltas[(attack, k)], masks)
            for k in ("single-model", "multi-model", "noisy multi-model")
        },
        "mask_sweep": masking.mask_sweep(black, x, y, delta, masks, eps, steps=args.sweep_steps, seed=args.seed),
        "linf_sweep": masking.linf_sweep(black, x, y, delta, masks, eps_values=args.linf_values, seed=args.seed),
        "complementarity": masking.complementarity_coverage(delta, masks),
    }
    if args.copies_sweep:
        params = options.own_params([attack], s.params)[attack]
        rows = masking.copies_sweep(
            [s.single],
            black,
            x,
            y,
            masks,
            attack,
            params,
            copies=args.copies_sweep,
            sigma=s.sigma,
            eps=eps,
            seed=args.seed,
        )
        out["copies_sweep"] = [{k: v for k, v in r.items() if k != "delta"} for r in rows]
    return out


def cmd_contour(args) -> int:
    from engine.attacks.averaging import MAX_COPIES

    bad = [n for n in args.copies_sweep or [] if not 1 <= n <= MAX_COPIES]
    if bad:  # before the averaging it would otherwise wait for
        raise ValueError(f"--copies-sweep: copies must be whole numbers in [1, {MAX_COPIES}], got {bad[0]}")
    out = _contour(args, setup(args))
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for key in ("parts", "mask_sweep", "linf_sweep", "copies_sweep"):
        if key not in out:
            continue
        rows = out[key] if key != "parts" else [{"setting": k, **r} for k, rs in out[key].items() for r in rs]
        print(f"# {key}")
        for r in rows:
            print(rows_line(r))
    print("# energy in object")
    print(rows_line(out["energy in object"]))
    return 0


def _add_shared(p) -> None:
    options.add_data(p)
    options.add_models(p, "models whose perturbations are averaged (default: the domain's sources)")
    options.renamed(p, "--sources", "--models", nargs="+")
    options.add_black(p, "held-out black-box models that judge them (default: the domain's judges)")
    options.renamed(p, "--tests", "--black", nargs="+")
    options.add_model(p, text="the single-model setting's model (default: the first of --models)")
    options.renamed(p, "--single", "--model")
    options.add_domain(p)
    p.add_argument("--attack", nargs="+", default=["bim"], choices=options.averageable())
    options.add_images(p)
    options.add_n(p, "without --images: the first N test images or gallery photos (default: the domain's)")
    options.add_copies(p)
    p.add_argument("--sigma", type=float, default=None, help="noise σ (default: the domain's)")
    p.add_argument(
        "--quantise-eps",
        type=float,
        default=None,
        help="ε of δ' = ε·sign(δ) (default: the domain's, 0.2 Fashion-MNIST, 0.02 ImageNet)",
    )
    options.add_common(p, seed=True)
    options.add_attack_params(p)


def register(sub) -> None:
    for name, text, func in (
        ("strength", "attack strength: held-out accuracy on clean, ±ε noise and δ' per setting", cmd_strength),
        ("recognizability", "held-out models classify the display-normalised δ itself", cmd_recognizability),
        ("similarity", "cosine similarity of different attacks' perturbations per setting", cmd_similarity),
    ):
        p = sub.add_parser(name, help=text)
        _add_shared(p)
        p.set_defaults(func=func)
        if func is not cmd_similarity:
            p.add_argument(
                "--source-counts",
                type=int,
                nargs="+",
                metavar="K",
                help="the curve against the number of source models: the noisy multi-model average over the first "
                "K sources for each K (e.g. 1 2 4 8 16 32; nested sets, the first --attack only). Without --models, "
                "the domain's sources come first, then its averaging ensemble in an order seeded by --seed",
            )
        if func is cmd_recognizability:
            p.add_argument(
                "--choices",
                type=options.choices,
                default=None,
                metavar="K",
                help="each judge picks among the true class and K-1 others drawn with --seed, as the thesis' "
                "judges chose among 20; 'all' for every class (default: the domain's, 20 on the ImageNet photos, "
                "every class on Fashion-MNIST); untargeted only",
            )
            p.add_argument(
                "--targeted",
                nargs="?",
                const=targets.RANDOM,
                metavar="TARGET",
                help="targeted perturbations (the generation effect): the share judged as the target class. "
                f"TARGET: {' or '.join(targets.POLICIES)} (default {targets.RANDOM}, seeded by "
                "--seed), or a class index or name",
            )

    p = sub.add_parser("contour", help="contour vs background, dilation/erosion and L∞ sweeps, with controls")
    _add_shared(p)
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="object mask threshold of dark-background domains (default: the domain's, 0.05)",
    )
    p.add_argument(
        "--sweep-steps", type=int, nargs="+", default=[-2, -1, 0, 1, 2], help="3×3 erosion (<0) / dilation (>0) steps"
    )
    p.add_argument("--linf-values", type=float, nargs="+", default=[0.01 * i for i in range(1, 11)])
    p.add_argument(
        "--copies-sweep",
        type=int,
        nargs="+",
        metavar="N",
        help="also average the attack over N noisy copies on the single model for each N (e.g. 1 4 16 64; "
        "with --attack square --zero-init, Square from δ = 0) and report the energy inside the object",
    )
    p.set_defaults(func=cmd_contour)
