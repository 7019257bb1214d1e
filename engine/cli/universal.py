"""`universal`: one perturbation for a whole image set, fitted on the first --n images and judged on the next
--held-out ones (fooling rate, the classes flipped images land in, its norms)."""

from __future__ import annotations

import json

from engine import domains

from . import options
from .inputs import dataset, domain_for, labelled, save_pair
from .inputs import model as open_model


def cmd_universal(args) -> int:
    from engine.analysis import universal

    options.count(args.n)
    options.count(args.held_out, "--held-out")
    model = open_model(args, args.model or domain_for(args).sources[0])
    domain = domains.of(model)
    # The Anatomy page's sizes and settings: the domain's defaults, within what its image set holds.
    available = len(dataset(args)) if args.data and not domain.custom else domain.capacity()
    n, held = universal.sizes(domain.defaults, available, args.n, args.held_out)
    x, y, _, _ = labelled(args, model, n + held)
    given = options.own_params(["universal"], options.given_params(args))["universal"]
    params = {**domain.defaults["universal"]["params"], **given}
    found = universal.study(model, x, y, n, seed=args.seed, **params)
    picture, v = found.pop("picture"), found.pop("v")
    out = {"model": model.name, **found}
    if args.out:
        out["files"] = save_pair(args.out, picture, v[0].numpy())
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    size = out["train"]
    print(f"{model.name}: universal δ, ‖δ‖∞ = {size['linf']:.4g}, ‖δ‖₂ = {size['l2']:.4g} ({out['seconds']:.1f} s)")
    for part in ("train", "held_out"):
        r = out[part]
        classes = ", ".join(f"{k} {share:.0%}" for k, share in r["dominant"].items()) or "none"
        print(
            f"{part:>8}: n={r['n']}  fooling rate {r['fooling_rate']:.1%}  "
            f"(random noise of its size {r['noise_fooling_rate']:.1%})  flipped into: {classes}"
        )
    for path in out.get("files", []):
        print(f"wrote {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "universal", help="one universal perturbation for many images: fooling rate on held-out images, classes"
    )
    options.add_model(p, text="the white-box model (default: the domain's first source model)")
    options.add_domain(p)
    options.add_data(p)
    options.add_n(p, "images the perturbation is fitted on: the first N evaluation images (default: the domain's)")
    p.add_argument(
        "--held-out", type=int, default=None, help="images after those it is judged on (default: the domain's)"
    )
    p.add_argument("--out", metavar="STEM", help="write δ as STEM.png (mid-grey = 0) and STEM.npy")
    options.add_common(p, seed=True)
    options.add_attack_params(p)
    p.set_defaults(func=cmd_universal)
