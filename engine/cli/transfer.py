"""Transfer of targeted attacks from one white-box model to black-box models (transfer)."""

from __future__ import annotations

import json
import sys

from engine import domains, targets

from . import direct, options
from .inputs import labelled
from .inputs import model as open_model


def _plan(args, white) -> tuple[list[float], list]:
    """The ε values and layers to run: a sweep over ε starts at 0 (no attack) and runs the domain's transfer ε
    values; a layer sweep runs every layer of the catalogue at each ε given (default: the middle one)."""
    own = domains.of(white).defaults["transfer"]["eps"]
    middle = own[len(own) // 2]
    layers = args.layer or [None]
    if args.sweep == "eps":
        return args.eps_values or [0.0, *own], layers
    if args.sweep == "layer":
        return args.eps_values or [middle], list(range(len(white.layers())))
    return args.eps_values or [middle], layers


def _progress():
    shown = []

    def say(done, total, state):  # one line per finished run of the plan
        if int(done) > len(shown):
            shown.append(done)
            print(f"  {int(done)}/{total} runs", file=sys.stderr, flush=True)

    return say


def cmd_transfer(args) -> int:
    from engine.analysis.transfer import METHODS, sweep

    options.require(args, "model", "--model")
    white = open_model(args, args.model)
    blacks = [open_model(args, name) for name in args.black]
    methods = list(METHODS) if "all" in args.attack else list(dict.fromkeys(args.attack))
    if args.direct:
        return direct.cmd(args, white, blacks, methods)
    own = domains.of(white).defaults
    x, y, _, bank = labelled(args, white, options.count(args.n) or own["images"])
    if args.bank_per_class is not None:
        bank = targets.first_per_class(*bank, args.bank_per_class)
    eps_values, layers = _plan(args, white)
    steps = args.steps if args.steps is not None else own["transfer"]["steps"]
    rows = sweep(
        white,
        blacks,
        methods,
        x,
        y,
        eps_values=eps_values,
        layers=layers,
        steps=steps,
        seed=args.seed,
        bank=bank,
        target_image=args.target_image,
        callback=None if args.json else _progress(),
    )
    if args.json:
        print(
            json.dumps(
                {
                    "source": white.name,
                    "black": args.black,
                    "sweep": args.sweep,
                    "target_image": args.target_image,
                    "bank": int(bank[1].shape[0]),
                    "rows": rows,
                },
                indent=2,
            )
        )
        return 0
    print(f"{'method':<9}{'black-box':<20}{'eps':>6}{'layer':>6}{'n':>5}{'error':>8}{'uTR':>8}{'tSuc':>8}{'tTR':>8}")
    fmt = lambda v: "   —" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        layer = "" if r["layer"] is None else r["layer"]
        print(
            f"{r['method']:<9}{r['black']:<20}{r['eps']:>6}{layer:>6}{r['n']:>5}"
            f"{fmt(r['error']):>8}{fmt(r['uTR']):>8}{fmt(r['tSuc']):>8}{fmt(r['tTR']):>8}"
        )
    return 0


def register(sub) -> None:
    p = sub.add_parser("transfer", help="transfer metrics (error, uTR, tSuc, tTR) of AA and targeted baselines")
    options.add_data(p)
    options.add_model(p, text="the white-box (source) model (required)")
    options.renamed(p, "--source", "--model")
    options.add_black(p, "black-box model(s)", required=True)
    p.add_argument("--attack", nargs="+", default=["aa"], choices=["aa", "tmifgsm", "tpgd", "itcm", "all"])
    options.add_eps_values(
        p,
        "ε value(s) (default: the middle of the domain's transfer ε values, 0.07 on "
        "Fashion-MNIST; --sweep eps: 0 and all of them)",
    )
    options.renamed(p, "--eps-values", "--eps", dest="eps_values", type=float, nargs="+")
    p.add_argument("--layer", type=int, nargs="+", default=None, help="AA layer index(es) (default: the middle layer)")
    p.add_argument(
        "--target-image",
        default=targets.FARTHEST,
        choices=list(targets.IMAGE_RULES),
        help="how AA's target image is chosen from the bank's images of the target class: farthest from "
        "the source at the layer (the paper's), nearest the class mean there, or at random",
    )
    p.add_argument(
        "--bank-per-class",
        type=int,
        default=None,
        metavar="K",
        help="keep the first K bank images of each class (the paper keeps 100; default: all)",
    )
    p.add_argument("--steps", type=int, default=None, help="iterations (default: the domain's)")
    options.add_n(p, "number of evaluation images (default: the domain's)")
    p.add_argument("--sweep", choices=["eps", "layer"], default=None)
    direct.add_flags(p)
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_transfer)
