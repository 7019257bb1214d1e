"""Attacking one image (attack, with --twin and --estimate) and robust accuracy over many (robust-accuracy)."""

from __future__ import annotations

import argparse
import json

from engine import attacks, domains, images, targets
from engine.analysis import target_images
from engine.report import run_record

from . import options
from .inputs import emit, evaluation_images, load_image, save_pair
from .inputs import model as open_model


def _checked_params(args, spec) -> dict:
    known = {p.name for p in spec.params}
    params = {}
    for name in options.param_names():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in known:
            raise ValueError(f"{spec.name} has no parameter {name!r}; its parameters are {', '.join(sorted(known))}")
        params[name] = value
    return params


def cmd_attack(args) -> int:
    model = open_model(args, args.model)
    spec = attacks.get(args.attack)
    params = _checked_params(args, spec)
    if args.estimate:
        return _estimate(model, spec, params, args.json)
    twin = _twin(args, model) if args.twin else None  # before the first run: no twin, no wasted attack
    x = load_image(args.image, model)
    target = options.parse_target(args.target, model)
    if spec.needs_target_images and args.target_image and args.target_image not in targets.IMAGE_RULES:
        extra = {"target_images": load_image(args.target_image, model)}  # a given image: its class is the target
    else:
        target, extra = target_images.decide(
            spec,
            model,
            x,
            target,
            seed=args.seed,
            layer=params.get("layer"),
            rule=args.target_image or targets.FARTHEST,
        )
    result = attacks.run(spec.name, model, x, target=target, seed=args.seed, compile=args.compile, **params, **extra)
    record = run_record(result, model)
    record["image"] = str(args.image)
    if twin is not None:
        return _with_twin(args, model, twin, x, spec, target, {**params, **extra}, record, result)
    saved = []
    if args.save_adv:
        saved += save_pair(args.save_adv, images.to_uint8(result.x_adv), result.x_adv[0].cpu().numpy())
    if args.save_delta:
        saved += save_pair(args.save_delta, images.signed(result.delta), result.delta[0].cpu().numpy())
    record["saved"] = saved
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    row = record["examples"][0]
    clean, adv = row["clean_top5"][0], row["adversarial_top5"][0]
    print(f"{model.name} · {spec.title} · {record['seconds']:.2f} s")
    print(f"clean:       {clean['label']} ({clean['probability']:.1%})")
    print(f"adversarial: {adv['label']} ({adv['probability']:.1%})  success={row['success']}")
    print(f"L0 {row['l0_pct']:.1f} %  L2 {row['l2']:.4f}  L∞ {row['linf']:.4f}  SSIM {row['ssim']:.4f}")
    for path in saved:
        print(f"wrote {path}")
    return 0


def _twin(args, model):
    domain = domains.of(model)
    name = domain.twin(model.name)
    if name is None:
        pairs = ", ".join(f"{a} / {b}" for a, b in domain.twins) or "none"
        raise ValueError(f"{model.name} has no robust or plain twin; the pairs are: {pairs}")
    return open_model(args, name)


def _with_twin(args, model, twin, x, spec, target, params: dict, record: dict, result) -> int:
    """The same attack, parameters and target on the model's plain or robust twin, beside the first run."""
    from engine.analysis import robust

    sides = [robust.row(model, result), *robust.compare([twin], x, spec.name, target=target, seed=args.seed, **params)]
    records = [record, {**run_record(sides[1]["result"], twin), "image": str(args.image)}]
    saved = []
    for side, rec in zip(sides, records):
        rec["robust"] = side["robust"]
        if args.save_delta:  # the thesis' display: what a person would recognise in δ
            saved += save_pair(
                f"{args.save_delta}-{rec['model']}", side["shown"], side["result"].delta[0].cpu().numpy()
            )
    if args.json:
        print(json.dumps({"runs": records, "saved": saved}, indent=2))
        return 0
    for rec in records:
        row = rec["examples"][0]
        print(
            f"{rec['model']} ({'robust' if rec['robust'] else 'plain'}): {row['clean_top5'][0]['label']} → "
            f"{row['adversarial_top5'][0]['label']}  success={row['success']}  L2 {row['l2']:.4f}  "
            f"L∞ {row['linf']:.4f}"
        )
    for path in saved:
        print(f"wrote {path}")
    return 0


def _estimate(model, spec, params: dict, as_json: bool) -> int:
    from engine import cost

    row = {
        "model": model.name,
        "attack": spec.name,
        "images": 1,
        "passes": cost.attack_passes(model, spec.name, params),
        "pass_seconds": cost.pass_seconds(model),
        "seconds": cost.attack_seconds(model, spec.name, 1, params),
        "at_most": spec.stops_early,
    }
    return emit(
        [row],
        as_json,
        lambda r: (
            f"{r['model']} · {spec.title}: {'at most ' if r['at_most'] else ''}"
            f"{cost.phrase(r['seconds']).removeprefix('about ')} here ({r['passes']:.0f} passes of "
            f"{r['pass_seconds'] * 1000:.1f} ms)"
        ),
    )


def cmd_robust_accuracy(args) -> int:
    from engine.analysis.robust import pgd_accuracy

    rows = []
    for name in args.models:
        model = open_model(args, name)
        own = domains.of(model).defaults
        robust = own.get("robust", {})
        n = options.count(args.n) or robust.get("images", own["images"])
        x, y = evaluation_images(args, model, n)
        budget = attacks.base.resolve_params(attacks.get("pgd"), model.attack_defaults, {})["eps"]
        eps_values = args.eps_values or [budget / 2, budget]
        steps = args.steps if args.steps is not None else robust.get("steps", own["anatomy"]["steps"])
        rows += pgd_accuracy(model, x, y, eps_values, steps=steps, seed=args.seed)
    return emit(
        rows,
        args.json,
        lambda r: f"{r['model']:<24} ε {r['eps']:<5g} PGD-{r['steps']:<3} n {r['n']:<6} accuracy {r['accuracy']:.2%}",
    )


def _add_attack(sub) -> None:
    p = sub.add_parser("attack", help="attack one image and report predictions and perturbation sizes")
    options.add_model(p, required=True)
    p.add_argument(
        "--image",
        required=True,
        help="an image file, a gallery name such as 'chelsea', or a test-split key such as fmnist:17",
    )
    p.add_argument("--attack", required=True, choices=list(attacks.ATTACKS))
    p.add_argument("--target", help="target class index or name (targeted attack)")
    p.add_argument(
        "--target-image",
        help="aa only: the target image, or how the bank's is chosen: "
        f"{', '.join(targets.IMAGE_RULES)} (default: {targets.FARTHEST}, the paper's farthest-in-class)",
    )
    p.add_argument("--save-adv", metavar="PATH", help="write the adversarial image as PATH.png and PATH.npy")
    p.add_argument("--save-delta", metavar="PATH", help="write the perturbation as PATH.png (signed) and PATH.npy")
    p.add_argument("--estimate", action="store_true", help="print the expected time on this machine instead of running")
    p.add_argument(
        "--twin",
        action="store_true",
        help="also run it on the model's adversarially trained twin (or a robust model's plain one); with "
        "--save-delta, each δ is written display-normalised",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run BIM/PGD/MI-FGSM's step compiled (torch.compile; CUDA graphs on a GPU): worth it for repeated "
        "small batches on a GPU, not for one CPU run, where building it takes tens of seconds (default: the "
        "precision policy's choice, off on the CPU)",
    )
    options.add_common(p, seed=True)
    options.add_attack_params(p)
    p.set_defaults(func=cmd_attack)


def _add_robust_accuracy(sub) -> None:
    p = sub.add_parser("robust-accuracy", help="clean and PGD accuracy at each ε (robust models beside plain ones)")
    options.add_data(p)
    options.add_models(p, "the models to evaluate (robust ones beside plain ones)", required=True)
    options.add_eps_values(
        p, "ε values (default: half and all of the domain's attack budget, 0.1 0.2 on Fashion-MNIST)"
    )
    p.add_argument("--steps", type=int, default=None, help="PGD steps (default: the domain's)")
    options.add_n(p, "the first N evaluation images (default: the domain's, 1,000 on Fashion-MNIST)")
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_robust_accuracy)


def register(sub) -> None:
    _add_attack(sub)
    _add_robust_accuracy(sub)
