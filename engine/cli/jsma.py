"""Sparse attacks over many images: JSMA's hardness, success and robustness tables, and the L0 comparison."""

from __future__ import annotations

from engine import domains

from . import options
from .inputs import domain_for, emit, evaluation_images, same_domain
from .inputs import model as open_model


def _jsma_images(args, model) -> int:
    own = domains.of(model).defaults
    return options.count(args.n) or own["jsma"].get("images", own["images"])


def _upsilon(args, model) -> float:
    return args.max_distortion if args.max_distortion is not None else domains.of(model).defaults["jsma"]["upsilon"]


def cmd_compare_l0(args) -> int:
    from engine.analysis.sparsity import comparison_table

    model = open_model(args, args.model)
    x, y = evaluation_images(args, model, options.count(args.n) or domains.of(model).defaults["images"])
    return emit(comparison_table(model, x, y, seed=args.seed), args.json, _l0_line)


def _l0_line(r) -> str:
    return f"{r['method']:<10} success {r['success_rate']:6.1%}  L0 {r['l0_pct']:6.2f} %  SSIM {r['ssim']:.4f}"


def cmd_mask_tradeoff(args) -> int:
    from engine.analysis.sparsity import P_THS, mask_tradeoff

    model = open_model(args, args.model)
    x, y = evaluation_images(args, model, options.count(args.n) or domains.of(model).defaults["images"])
    rows = mask_tradeoff(
        model, x, y, p_ths=args.p_th or P_THS, masks=args.mask, seed=args.seed, steps=args.steps, tau=args.tau
    )
    return emit(
        rows, args.json, lambda r: ("" if r["p_th"] is None else f"P_th {r['p_th']:.2f} {r['mask']:<8} ") + _l0_line(r)
    )


def cmd_jsma_hardness(args) -> int:
    from engine.analysis.jsma_extras import hardness_matrix

    model = open_model(args, args.model or domain_for(args).sources[0])
    # Every image the domain has: each (source, target) pair takes its --per-pair from the images of its class.
    x, y = evaluation_images(args, model, 2000 if not getattr(args, "data", None) else 10**9)
    rows = hardness_matrix(
        model,
        x,
        y,
        classes=args.classes,
        per_pair=args.per_pair,
        max_distortion=_upsilon(args, model),
        theta=args.theta,
    )
    names = model.class_names
    return emit(
        rows,
        args.json,
        lambda r: (
            f"{names[r['source']]:>12} → {names[r['target']]:<12}"
            f" success {r['success_rate']:6.1%}  H "
            f"{'—' if r['hardness'] is None else format(r['hardness'], '.4f')}"
        ),
    )


def cmd_jsma_table(args) -> int:
    from engine.analysis.jsma_extras import jsma_table

    options.count(args.n)  # before any model loads
    domain = domain_for(args, args.models or ())
    loaded = same_domain(args, args.models or [domain.sources[0], domain.judges[0]])
    x, y = evaluation_images(args, loaded[0], _jsma_images(args, loaded[0]))
    rows = jsma_table(
        loaded, x, y, thetas=args.thetas, max_distortion=_upsilon(args, loaded[0]), candidates=args.candidates
    )
    return emit(
        rows,
        args.json,
        lambda r: (
            f"{r['model']:<20} {r['variant']:<10} {r['pairs']:>5} pairs  success "
            f"{r['success_rate']:6.1%} ± {r['success_se']:.1%}  mean distortion "
            f"{'—' if r['mean_distortion'] is None else format(r['mean_distortion'], '.2%')}"
        ),
    )


def cmd_robustness(args) -> int:
    from engine.analysis.jsma_extras import robustness

    options.count(args.n)  # before any model loads
    domain = domain_for(args, args.models or ())
    loaded = same_domain(args, args.models or [*domain.sources, *domain.judges])
    x, y = evaluation_images(args, loaded[0], _jsma_images(args, loaded[0]))
    rows = [robustness(model, x, y, theta=args.theta) for model in loaded]

    def line(r):
        if r["R"] is None:
            return f"{r['model']:<20} no image classified correctly"
        worst = r["argmin"]
        return (
            f"{r['model']:<20} R(F) {r['R']:.4f}  mean A {r['mean_A']:.4f}  over {r['pairs']} pairs; "
            f"min at image {worst['image']} ({worst['source']} → {worst['target']})"
        )

    return emit(rows, args.json, line)


def _add_upsilon(p) -> None:
    p.add_argument(
        "--max-distortion",
        type=float,
        default=None,
        help="Υ, the largest share of features changed (default: the domain's, 0.145 on Fashion-MNIST)",
    )


def register_compare(sub) -> None:
    p = sub.add_parser("compare-l0", help="FGSM, JSMA, DeepFool and Mask-FGSM side by side: success, L0, SSIM")
    options.add_data(p)
    options.add_model(p, required=True)
    options.add_n(p, "the first N evaluation images: gallery photos or test images (default: the domain's)")
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_compare_l0)

    p = sub.add_parser(
        "mask-tradeoff", help="Mask-FGSM's L0 against its success over the heat-map threshold P_th, beside FGSM"
    )
    options.add_data(p)
    options.add_model(p, required=True)
    options.add_n(p, "the first N evaluation images: gallery photos or test images (default: the domain's)")
    p.add_argument("--p-th", type=float, nargs="+", default=None, help="thresholds (default: 0 to 0.95)")
    p.add_argument(
        "--mask",
        nargs="+",
        default=["weighted"],
        choices=["weighted", "binary"],
        help="weighted: the step scaled by the map (the paper); binary: the full step wherever S ≥ P_th",
    )
    p.add_argument("--steps", type=int, default=None, help="Algorithm 1's passes at most (default 10; 1 is Eq. 5)")
    p.add_argument("--tau", type=float, default=None, help="Algorithm 1's L0 budget τ in %% of pixels (default 20)")
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_mask_tradeoff)


def register(sub) -> None:
    p = sub.add_parser("jsma-hardness", help="JSMA hardness H(s, t) over source/target classes")
    options.add_data(p)
    options.add_model(p, text="the attacked model (default: the domain's first source)")
    options.add_domain(p)
    p.add_argument("--classes", type=int, nargs="+", default=None)
    p.add_argument("--per-pair", type=int, default=10, help="images per (source, target) pair")
    _add_upsilon(p)
    p.add_argument("--theta", type=int, default=1, choices=[1, -1])
    options.add_common(p)
    p.set_defaults(func=cmd_jsma_hardness)

    p = sub.add_parser(
        "jsma-table",
        help="JSMA increasing vs decreasing (θ = ±1): success rate and mean distortion "
        "from every image to every other class",
    )
    options.add_data(p)
    options.add_models(p, "the attacked models (default: the domain's first source and first judge)")
    options.add_domain(p)
    options.add_n(p, "the first N evaluation images, each to every other class (default: the domain's)")
    _add_upsilon(p)
    p.add_argument("--thetas", type=int, nargs="+", default=[1, -1], choices=[1, -1])
    p.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="pair search among the K most salient features "
        "(default 64; the number of features, e.g. 784, is the paper's search over all pairs)",
    )
    options.add_common(p)
    p.set_defaults(func=cmd_jsma_table)

    p = sub.add_parser(
        "robustness",
        help="R(F) = min over images and targets of JSMA's adversarial distance A(X, t), "
        "with the mean A and the pair at the minimum",
    )
    options.add_data(p)
    options.add_models(p, "the models to measure (default: the domain's sources and judges)")
    options.add_domain(p)
    options.add_n(p, "the first N evaluation images, each to every other class (default: the domain's)")
    p.add_argument("--theta", type=int, default=1, choices=[1, -1], help="+1: saliency of raising a feature")
    options.add_common(p)
    p.set_defaults(func=cmd_robustness)
