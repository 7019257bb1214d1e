"""transfer --direct: each black-box model attacked directly from its labels, beside transfer from --model."""

from __future__ import annotations

import json
import sys

from engine import domains
from engine.analysis import direct

from .inputs import labelled, load_image


def add_flags(p) -> None:
    p.add_argument(
        "--direct",
        choices=list(direct.DECISION),
        default=None,
        help="attack each --black model directly on --image with this label-only attack (queries counted) and "
        "compare with the first --attack method's perturbation from --model at the first --eps",
    )
    p.add_argument("--image", help="with --direct: the image, e.g. fmnist:0, a gallery name or a file")
    p.add_argument("--n-queries", type=int, default=None, help="with --direct: query budget (default: the attack's)")


def _progress(black: str):
    shown = [0]

    def say(step, total, state):  # a line per tenth of the budget
        spent, budget = state["queries"], state["budget"]
        if spent * 10 >= (shown[0] + 1) * budget:
            shown[0] = spent * 10 // budget
            print(f"  {black}: {spent:,} of {budget:,} queries", file=sys.stderr, flush=True)

    return say


def cmd(args, white, blacks, methods: list[str]) -> int:
    if not args.image:
        raise ValueError("python -m engine transfer --direct needs --image (e.g. fmnist:0)")
    own = domains.of(white).defaults
    eps_values = args.eps_values or [own["transfer"]["eps"][len(own["transfer"]["eps"]) // 2]]
    steps = args.steps if args.steps is not None else own["transfer"]["steps"]
    x = load_image(args.image, white)
    _, _, _, bank = labelled(args, white, own["images"])  # the targets' classes (and AA's target images)
    layer = args.layer[0] if args.layer else None
    transferred = direct.transferred_image(
        white,
        x,
        bank,
        method=methods[0],
        eps=eps_values[0],
        steps=steps,
        layer=layer,
        target_image=args.target_image,
        seed=args.seed,
    )
    rows = [
        direct.record(
            direct.run(
                black,
                x,
                args.direct,
                seed=args.seed,
                callback=None if args.json else _progress(black.name),
                transferred=transferred,
                n_queries=args.n_queries,
            )
        )
        for black in blacks
    ]
    if args.json:
        print(json.dumps({"source": white.name, "image": args.image, "direct": rows}, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['black']}: {direct.short(r)} {r['class_before']} → {r['class_after']}  success={r['success']}  "
            f"L2 {r['l2']:.4f}  L∞ {r['linf']:.4f}  queries {r['queries']:,} of {r['budget']:,}"
        )
        print(f"  {r['comparison']['sentence']}")
    return 0
