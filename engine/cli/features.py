"""What the model looks at and where it is weak: heat maps (gradcam) and how faithful they are (faithfulness),
class separability per layer (separability) and a noise patch moved away from the heat map's centre
(patch-distance)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine import domains, heatmaps
from engine.analysis import patch_distance

from . import options
from .inputs import emit, evaluation_images, image_batch, labelled, load_image, save_pair
from .inputs import model as open_model


def cmd_gradcam(args) -> int:
    model = open_model(args, args.model)
    x = load_image(args.image, model)
    chosen = options.parse_target(args.target_class, model)
    with torch.no_grad():
        predicted = int(model(x).argmax())
    cls = predicted if chosen is None else chosen
    if heatmaps.METHODS[args.method].kind == "attribution":
        heat, layer = heatmaps.compute(model, x, args.method, target=cls), None
    else:
        layer = model.layer(args.layer).name if args.layer is not None else model.cam_layer
        heat = heatmaps.grad_cam(model, x, layer=layer, target=cls, method=args.method)
    record = {
        "model": model.name,
        "image": args.image,
        "method": args.method,
        "layer": layer,
        "class": cls,
        "class_name": model.class_names[cls],
        "predicted": model.class_names[predicted],
        "shape": list(heat.shape[1:]),
        "mean": float(heat.mean()),
        "share_above_half": float((heat > 0.5).float().mean()),
    }
    if args.out:
        picture = (heat[0].cpu().numpy() * 255 + 0.5).astype(np.uint8)
        save_pair(args.out, picture, heat[0].cpu().numpy())
        record["saved"] = [str(Path(args.out).with_suffix(s)) for s in (".png", ".npy")]
    print(
        json.dumps(record, indent=2)
        if args.json
        else f"{args.method} of {record['class_name']} at {layer or 'input'}: mean {record['mean']:.3f}, "
        f"{record['share_above_half']:.1%} of pixels above 0.5"
    )
    return 0


def cmd_separability(args) -> int:
    from engine.analysis.features import separability

    model = open_model(args, args.model)
    n = options.count(args.n) or domains.of(model).defaults["features"]["images"]
    x, y = evaluation_images(args, model, n)
    rows = separability(model, x, y)
    return emit(
        rows,
        args.json,
        lambda r: (
            f"{r['layer']:>3} {r['name']:<28} within {r['within']:.3f}  "
            f"between {r['between']:.3f}  ratio {r['ratio']:.3f}"
        ),
    )


def _batch_progress(word: str = "batch"):
    shown = []

    def say(done, total, state):  # about ten lines however many batches
        if not shown or done == total or done - shown[-1] >= max(1, total // 10):
            shown.append(done)
            print(f"  {word} {int(done)}/{total}", file=sys.stderr, flush=True)

    return say


def cmd_patch_distance(args) -> int:
    model = open_model(args, args.model)
    own = patch_distance.defaults(model)
    if args.n is None:
        args.n = own["images"]
    x, y, names = image_batch(args, model)
    chosen = {
        k: own[k] if getattr(args, k) is None else getattr(args, k)
        for k in ("size", "distances", "directions", "amplitude")
    }
    result = patch_distance.patch_distance(
        model,
        x,
        y,
        **chosen,
        pattern=args.pattern,
        centre=args.centre,
        seed=args.seed,
        batch_size=args.batch_size,
        callback=None if args.json else _batch_progress(),
    )
    record = result.as_dict()
    for photo in record["photos"]:
        photo["image"] = names[photo["index"]]
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    st = record["settings"]
    print(
        f"{model.name}: {st['size']} px patch (±{st['amplitude']:g}, {st['pattern']}), {st['photos_counted']} of "
        f"{st['photos']} photos counted, {st['directions']} directions, centre = heat-map {st['centre']}"
    )
    print(f"{'distance':>8}{'n':>6}{'skipped':>8}{'1−p(true)':>11}{'± std':>8}{'margin':>8}{'drop':>8}{'flipped':>9}")
    fmt = lambda v, f: "     —" if v is None else format(v, f)  # noqa: E731
    for label, r in [(f"{r['distance']:g}", r) for r in record["curve"]] + [("random", record["control"])]:
        print(
            f"{label:>8}{r['n']:>6}{r.get('skipped', ''):>8}{fmt(r['wrong_mean'], '11.3f')}"
            f"{fmt(r['wrong_std'], '8.3f')}{fmt(r['margin_mean'], '8.3f')}{fmt(r['drop_mean'], '8.3f')}"
            f"{fmt(r['success'], '9.1%')}"
        )
    rho = record["correlation"]
    print(f"Spearman ρ(distance, drop of p(true)): ring {fmt(rho['ring'], '.3f')}, random {fmt(rho['control'], '.3f')}")
    return 0


def register_gradcam(sub) -> None:
    p = sub.add_parser("gradcam", help="heat map of one image: Grad-CAM and other CAMs, or a pixel attribution")
    options.add_model(p, required=True)
    p.add_argument("--image", required=True)
    p.add_argument(
        "--method",
        choices=list(heatmaps.METHODS),
        default="gradcam",
        help="; ".join(f"{n}: {m.summary}" for n, m in heatmaps.METHODS.items()),
    )
    p.add_argument("--layer", type=int, default=None, help="catalogue index (default: the model's Grad-CAM layer)")
    p.add_argument("--class", dest="target_class", help="class index or name (default: the predicted class)")
    p.add_argument("--out", metavar="PATH", help="write the map as PATH.png (grey) and PATH.npy")
    options.add_common(p)
    p.set_defaults(func=cmd_gradcam)
    # The faithfulness check of these maps sits beside them in `--help`.
    register_faithfulness(sub)


def cmd_faithfulness(args) -> int:
    from engine.analysis import faithfulness

    model = open_model(args, args.model)
    args.n = options.count(args.n) or 16
    x, y, names = image_batch(args, model)
    chosen = options.parse_target(args.target_class, model)
    target = chosen if chosen is not None else y  # the label where known, else each image's predicted class
    layer = model.layer(args.layer).name if args.layer is not None else None
    result = faithfulness.evaluate(
        model, x, target, args.methods, steps=args.steps, baseline=args.baseline, layer=layer, seed=args.seed
    )
    result["settings"].update(model=model.name, image_names=names, layer=layer or model.cam_layer)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{model.name}, {len(names)} images, {args.steps} steps, baseline {args.baseline} (AUC of p(class)):")
    print(f"{'method':<22}{'deletion ↓':>11}{'insertion ↑':>12}")
    for name, row in result["methods"].items():
        print(f"{name:<22}{row['deletion_auc']:>11.3f}{row['insertion_auc']:>12.3f}")
    return 0


def register_faithfulness(sub) -> None:
    from engine.analysis.faithfulness import BASELINES

    p = sub.add_parser(
        "faithfulness",
        help="deletion and insertion AUCs of heat-map methods against random maps (Petsiuk et al. 2018)",
    )
    options.add_data(p)
    options.add_model(p, required=True)
    options.add_images(p)
    options.add_n(p, "without --images: the first N evaluation images (default 16)")
    # --class as in gradcam: the class explained, not an attack's target (--target belongs to `attack`).
    p.add_argument(
        "--class", dest="target_class", help="class index or name (default: each image's label, else its predicted one)"
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=list(heatmaps.METHODS),
        default=[n for n in heatmaps.METHODS if n != "scorecam"],
        help="heat-map methods (default: all but scorecam, which costs one forward per channel of the layer)",
    )
    p.add_argument("--layer", type=int, default=None, help="catalogue index for CAM methods (default: Grad-CAM's)")
    p.add_argument("--steps", type=int, default=16, help="points of each curve after the first (default 16)")
    p.add_argument(
        "--baseline",
        choices=list(BASELINES),
        default="zeros",
        help="what removed pixels become: black (default) or a Gaussian blur of the image",
    )
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_faithfulness)


def register_separability(sub) -> None:
    p = sub.add_parser("separability", help="per-layer class separability (angular distances)")
    options.add_data(p)
    options.add_model(p, required=True)
    options.add_n(p)
    options.add_common(p)
    p.set_defaults(func=cmd_separability)
    # The layer predictor builds on separability: it sits beside it in `--help`.
    register_layer_predictor(sub)


def cmd_layer_predictor(args) -> int:
    from engine import targets
    from engine.analysis.layer_predictor import best_layers, layer_predictor

    white = open_model(args, args.model)
    own = domains.of(white).defaults
    blacks = [open_model(args, name) for name in args.black or domains.of(white).judges]
    x, y, _, bank = labelled(args, white, options.count(args.n) or own["features"]["images"])
    if args.bank_per_class is not None:
        bank = targets.first_per_class(*bank, args.bank_per_class)
    found = layer_predictor(
        white,
        blacks,
        x,
        y,
        eps=args.eps if args.eps is not None else own["features"]["eps"],
        steps=args.steps if args.steps is not None else own["transfer"]["steps"],
        seed=args.seed,
        bank=bank,
        layers=args.layer,
        callback=None if args.json else _batch_progress("layers done"),
    )
    found["best"] = best_layers(found)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(f"{white.name} → {', '.join(found['blacks'])}: {found['images']} images, ε {found['eps']:g}")
    print(f"{'layer':>5} {'name':<24}{'separab.':>9}{'class dist':>11}{'travel':>8}{'pixel L2':>9}{'tSuc':>7}")
    for r in found["rows"]:
        print(
            f"{r['layer']:>5} {r['name']:<24}{r['separability']:>9.3f}{r['class_distance_rel'] or 0:>11.3f}"
            f"{r['travel_rel'] or 0:>8.3f}{r['pixel_l2']:>9.3f}{r['tSuc']:>7.1%}"
        )
    print("best layer by " + ", ".join(f"{k} {v}" for k, v in found["best"].items() if k != "per_black"))
    return 0


def register_layer_predictor(sub) -> None:
    p = sub.add_parser(
        "layer-predictor",
        help="per layer: class separability, source-to-target class distance (PCA) and AA's tSuc on black boxes",
    )
    options.add_data(p)
    options.add_model(p, required=True)
    options.add_black(p)
    options.add_n(p, "evaluation images (default: the domain's Feature-space count, 300 on Fashion-MNIST)")
    p.add_argument("--eps", type=float, default=None, help="AA's ε (default: the domain's Feature-space ε)")
    p.add_argument("--steps", type=int, default=None, help="AA iterations (default: the domain's transfer steps)")
    p.add_argument("--layer", type=int, nargs="+", default=None, help="catalogue indexes (default: every layer)")
    p.add_argument(
        "--bank-per-class", type=int, default=None, metavar="K", help="keep the first K bank images of each class"
    )
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_layer_predictor)


def register_patch(sub) -> None:
    p = sub.add_parser(
        "patch-distance",
        help="one noise patch at growing distance from the Grad-CAM centre, against the same patch at random positions",
    )
    options.add_data(p)
    options.add_model(p, required=True)
    options.add_images(p)
    options.add_n(
        p, "without --images: the first N evaluation images (default: the domain's, 4 photos, 100 Fashion-MNIST images)"
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="patch side in pixels (default: the domain's share of the "
        "side, 1/7 of a photo's, 1/4 of a Fashion-MNIST image's)",
    )
    p.add_argument("--amplitude", type=float, default=None, help="the patch's L∞ size, in (0, 1] (default 0.5)")
    p.add_argument(
        "--distances",
        type=float,
        nargs="+",
        default=None,
        help="distances from the heat-map centre in pixels (default: 8 from 0 to half the side)",
    )
    p.add_argument("--directions", type=int, default=None, help="evenly spread directions per distance (default 8)")
    p.add_argument(
        "--pattern",
        choices=list(patch_distance.PATTERNS),
        default="sign",
        help="sign: seeded ±amplitude per pixel; uniform: noise in [−amplitude, amplitude]",
    )
    p.add_argument(
        "--centre",
        choices=list(patch_distance.CENTRES),
        default="peak",
        help="the heat map's peak (default) or its weighted centroid",
    )
    p.add_argument("--batch-size", type=int, default=32, help="placements per forward pass")
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_patch_distance)
