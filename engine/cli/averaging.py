"""Averages of noisy single-model perturbations (checkerboard) and the classes models see in noise
(noise-classes)."""

from __future__ import annotations

from engine import domains, images

from . import options
from .inputs import domain_for, emit, load_image, save_pair
from .inputs import model as open_model


def cmd_checkerboard(args) -> int:
    from engine.analysis.checkerboard import checkerboard

    model = open_model(args, args.model)
    domain = domains.of(model)
    x = load_image(args.image or domain.image_keys()[0], model)
    copies = args.copies if args.copies is not None else domain.defaults["checkerboard_copies"]
    rows = checkerboard(
        model,
        x,
        sigmas=args.sigma,
        copies=copies,
        attack=args.attack,
        seed=args.seed,
        **options.own_params([args.attack], options.given_params(args))[args.attack],
    )
    for r in rows:
        delta = r.pop("delta")
        if args.out:
            from engine.analysis.recognisable import display_normalise

            shown = images.to_uint8(display_normalise(delta[None], model.domain)[0])
            save_pair(f"{args.out}_sigma{r['sigma']:g}", shown, delta.cpu().numpy())
    return emit(
        rows,
        args.json,
        lambda r: (
            f"σ={r['sigma']:<6g} period {r['period']:>3} px (share {r['share']:.3f})  strongest spectral peak "
            f"{r['peak_period']:6.2f} px (fy {r['fy']:+.3f}, fx {r['fx']:+.3f}, prominence {r['prominence']:.1f})"
        ),
    )


def cmd_noise_classes(args) -> int:
    from engine.analysis.recognisable import noise_classes

    domain = domain_for(args, args.models or ())
    loaded = [open_model(args, n) for n in args.models or [*domain.sources, *domain.judges]]
    n = options.count(args.n) or domains.of(loaded[0]).defaults["noise_count"]
    rows = noise_classes(loaded, count=n, seed=args.seed, top=args.top)
    return emit(rows, args.json, lambda r: f"{r['model']:<22} #{r['rank']} {r['name']:<24} {r['share']:6.1%}")


def register(sub) -> None:
    p = sub.add_parser("checkerboard", help="period of noisy single-model averages per σ")
    options.add_model(p, required=True)
    p.add_argument(
        "--image",
        default=None,
        help="gallery name, image file or test-split key such as fmnist:17 (default: the domain's first image)",
    )
    p.add_argument("--sigma", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5])
    options.add_copies(p, "noisy copies averaged (default: the domain's, 256 on Fashion-MNIST)")
    p.add_argument("--attack", default="bim", choices=options.averageable())
    p.add_argument(
        "--out", metavar="STEM", help="write each average as STEM_sigma<σ>.png (display-normalised) and .npy"
    )
    options.add_common(p, seed=True)
    options.add_attack_params(p)
    p.set_defaults(func=cmd_checkerboard)

    p = sub.add_parser("noise-classes", help="classes each model sees in Gaussian noise with the dataset's statistics")
    options.add_models(p, "the models (default: the domain's sources and judges)")
    options.add_domain(p)
    options.add_n(p, "noise images per model (default: the domain's)")
    options.renamed(p, "--count", "--n", type=int)
    p.add_argument("--top", type=int, default=3)
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_noise_classes)
