"""`python -m engine`: the engine's operations from a shell, with JSON output.

Every user error (unknown model, unreadable image, parameter out of range)
ends with one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine import attacks, datasets, domains, images, models, targets
from engine.datasets import fashion_mnist
from engine.analysis import patch_distance, target_images
from engine.analysis.target_images import evaluation_split
from engine.models import ModelUnavailable
from engine.models.classifier import PRECISIONS
from engine.report import run_record

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise SystemExit(_fail(f"{self.prog}: {message}"))


def _model(args, name: str):
    """A registered model by name, else the user's own (engine.models.formats): a model file (ONNX, torch.export
    .pt2, TorchScript; metadata from the JSON beside it or --model-meta), ARCH=WEIGHTS (a torchvision state_dict),
    timm:ARCH=WEIGHTS, hf:FOLDER, or an entry point 'package.module:factory'."""
    if name not in models.names() and not Path(name).exists() and not any(c in name for c in "=:"):
        raise ValueError(f"unknown model {name!r}: give a registered name ({', '.join(models.names()[:6])}, …), a "
                         "model file (.onnx, .pt2, TorchScript), an entry point package.module:factory, "
                         "ARCH=WEIGHTS.pt, timm:ARCH=WEIGHTS or hf:FOLDER")
    model = models.open_model(name, args.device, getattr(args, "precision", "fp32"), getattr(args, "model_meta", None))
    return _with_data(args, model)


def _dataset(args):
    """--data DIR, opened once per command."""
    if getattr(args, "_dataset", None) is None:
        args._dataset = datasets.open_dataset(args.data)
    return args._dataset


def _with_data(args, model):
    """A user's model of its own domain takes --data DIR as that domain's images: its evaluation split, its
    target-image bank and the images its analyses draw from."""
    if getattr(args, "data", None) and domains.of(model).custom:
        model.domain_record = datasets.as_domain(domains.of(model), _dataset(args), f"data:{args.data}", model)
    return model


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _add_attack_params(parser: argparse.ArgumentParser) -> None:
    """One flag per parameter name used by any attack; `run` rejects those the attack lacks."""
    seen: dict[str, dict] = {}
    for spec in attacks.available():
        for p in spec["params"]:
            seen.setdefault(p["name"], p)
    for name, p in seen.items():
        flag = "--" + name.replace("_", "-")
        text = p["help"].replace("%", "%%")  # argparse formats help with %
        if p["type"] == "bool":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = int if p["type"] == "int" else float
            parser.add_argument(flag, dest=name, type=kind, default=None, help=text)


def _parse_target(value: str | None, model) -> int | None:
    if value is None:
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    lowered = value.strip().lower()
    for i, name in enumerate(model.class_names):
        if name.lower() == lowered:
            return i
    raise ValueError(f"target {value!r} is neither a class index nor a class name of {model.name}")


def _load_image(value: str, model):
    """An image file, else one of the model's domain's built-in images (a gallery name, a test-split index)."""
    domain = domains.of(model)
    if Path(value).is_file():
        return images.load(Path(value), model)
    if domain.parse_key(value) is not None or value.isdigit() or not Path(value).suffix:
        return domain.load(value, model)
    raise ValueError(f"image file {value!r} not found")


def _save_pair(stem: str, picture: np.ndarray, array: np.ndarray) -> list[str]:
    """Write `<stem>.png` (for eyes) and `<stem>.npy` (exact float values)."""
    base = Path(stem)
    if base.suffix.lower() in {".png", ".npy"}:
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    png, npy = base.with_suffix(".png"), base.with_suffix(".npy")
    png.write_bytes(images.png_bytes(picture))
    np.save(npy, array)
    return [str(png), str(npy)]


def _emit(rows: list[dict], as_json: bool, line) -> int:
    """Print rows as one JSON array or as one formatted line each."""
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(line(row))
    return 0


def cmd_models(args) -> int:
    def line(r):
        state = "available" if r["available"] else f"unavailable: {r['reason']}"
        return f"{r['name']:<22} {r['domain']:<14} {state}"

    return _emit(models.available(), args.json, line)


def cmd_attacks(args) -> int:
    def line(r):
        params = ", ".join(f"{p['name']}={p['default']}" for p in r["params"])
        return f"{r['name']:<10} {r['title']:<34} {params}"

    return _emit(attacks.available(), args.json, line)


def cmd_attack(args) -> int:
    model = _model(args, args.model)
    spec = attacks.get(args.attack)
    known = {p.name for p in spec.params}
    params = {}
    for name in _param_names():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in known:
            raise ValueError(f"{spec.name} has no parameter {name!r}; its parameters are {', '.join(sorted(known))}")
        params[name] = value
    if args.estimate:
        return _estimate(model, spec, params, args.json)
    twin = _twin(args, model) if args.twin else None  # before the first run: no twin, no wasted attack
    x = _load_image(args.image, model)
    target = _parse_target(args.target, model)
    if spec.needs_target_images and args.target_image and args.target_image not in targets.IMAGE_RULES:
        extra = {"target_images": _load_image(args.target_image, model)}  # a given image: its class is the target
    else:
        target, extra = target_images.decide(spec, model, x, target, seed=args.seed, layer=params.get("layer"),
                                             rule=args.target_image or targets.FARTHEST)
    result = attacks.run(spec.name, model, x, target=target, seed=args.seed, **params, **extra)
    record = run_record(result, model)
    record["image"] = str(args.image)
    if twin is not None:
        return _with_twin(args, model, twin, x, spec, target, {**params, **extra}, record, result)
    saved = []
    if args.save_adv:
        saved += _save_pair(args.save_adv, images.to_uint8(result.x_adv), result.x_adv[0].cpu().numpy())
    if args.save_delta:
        saved += _save_pair(args.save_delta, images.signed(result.delta), result.delta[0].cpu().numpy())
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
    return _model(args, name)


def _with_twin(args, model, twin, x, spec, target, params: dict, record: dict, result) -> int:
    """The same attack, parameters and target on the model's plain or robust twin, beside the first run."""
    from engine.analysis import robust

    sides = [robust.row(model, result),
             *robust.compare([twin], x, spec.name, target=target, seed=args.seed, **params)]
    records = [record, {**run_record(sides[1]["result"], twin), "image": str(args.image)}]
    saved = []
    for side, rec in zip(sides, records):
        rec["robust"] = side["robust"]
        if args.save_delta:  # the thesis' display: what a person would recognise in δ
            saved += _save_pair(f"{args.save_delta}-{rec['model']}", side["shown"], side["result"].delta[0].cpu().numpy())
    if args.json:
        print(json.dumps({"runs": records, "saved": saved}, indent=2))
        return 0
    for rec in records:
        row = rec["examples"][0]
        print(f"{rec['model']} ({'robust' if rec['robust'] else 'plain'}): {row['clean_top5'][0]['label']} → "
              f"{row['adversarial_top5'][0]['label']}  success={row['success']}  L2 {row['l2']:.4f}  L∞ {row['linf']:.4f}")
    for path in saved:
        print(f"wrote {path}")
    return 0


def cmd_robust_accuracy(args) -> int:
    from engine.analysis.robust import pgd_accuracy

    rows = []
    for name in args.models:
        model = _model(args, name)
        x, y = _evaluation_images(args, model, args.n)
        budget = attacks.base.resolve_params(attacks.get("pgd"), model.attack_defaults, {})["eps"]
        eps_values = args.eps_values or [budget / 2, budget]
        rows += pgd_accuracy(model, x, y, eps_values, steps=args.steps, seed=args.seed)
    return _emit(rows, args.json, lambda r: f"{r['model']:<24} ε {r['eps']:<5g} PGD-{r['steps']:<3} n {r['n']:<6} "
                                            f"accuracy {r['accuracy']:.2%}")


def _estimate(model, spec, params: dict, as_json: bool) -> int:
    from engine import cost

    row = {"model": model.name, "attack": spec.name, "images": 1, "passes": cost.attack_passes(model, spec.name, params),
           "pass_seconds": cost.pass_seconds(model), "seconds": cost.attack_seconds(model, spec.name, 1, params),
           "at_most": spec.stops_early}
    return _emit([row], as_json, lambda r: f"{r['model']} · {spec.title}: {'at most ' if r['at_most'] else ''}"
                 f"{cost.phrase(r['seconds']).removeprefix('about ')} here ({r['passes']:.0f} passes of "
                 f"{r['pass_seconds'] * 1000:.1f} ms)")


def cmd_export(args) -> int:
    x, y = fashion_mnist.test_split()
    if not 0 <= args.index < x.shape[0]:
        raise ValueError(f"index {args.index} out of range: the Fashion-MNIST test split has {x.shape[0]} images")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(images.png_bytes(images.to_uint8(x[args.index])[..., 0]))
    print(json.dumps({"index": args.index, "label": int(y[args.index]), "label_name": fashion_mnist.CLASS_NAMES[int(y[args.index])], "path": str(out)}))
    return 0


SEED_EPS_SWEEP = [0.0, 0.01, 0.03, 0.05, 0.07]  # the source paper's ε sweep


def cmd_transfer(args) -> int:
    from engine.analysis.transfer import METHODS, sweep

    white = _model(args, args.source)
    blacks = [_model(args, name) for name in args.target]
    methods = list(METHODS) if "all" in args.attack else list(dict.fromkeys(args.attack))
    x, y, _, bank = _labelled(args, white, args.n)
    if args.bank_per_class is not None:
        bank = targets.first_per_class(*bank, args.bank_per_class)
    if args.eps is None:
        own = domains.of(white).defaults["transfer"]["eps"]
        args.eps = own[len(own) // 2]
    if args.sweep == "eps":
        eps_values, layers = args.eps_values or SEED_EPS_SWEEP, [args.layer]
    elif args.sweep == "layer":  # every layer of the catalogue, at each ε given
        eps_values, layers = args.eps_values or [args.eps], list(range(len(white.layers())))
    else:
        eps_values, layers = args.eps_values or [args.eps], [args.layer]

    shown = []

    def progress(done, total, state):  # one line per finished run of the plan
        if int(done) > len(shown):
            shown.append(done)
            print(f"  {int(done)}/{total} runs", file=sys.stderr, flush=True)

    rows = sweep(white, blacks, methods, x, y, eps_values=eps_values, layers=layers, steps=args.steps,
                 seed=args.seed, bank=bank, target_image=args.target_image, callback=progress if not args.json else None)
    if args.json:
        print(json.dumps({"source": white.name, "targets": args.target, "sweep": args.sweep,
                          "target_image": args.target_image, "bank": int(bank[1].shape[0]), "rows": rows}, indent=2))
        return 0
    print(f"{'method':<9}{'black-box':<20}{'eps':>6}{'layer':>6}{'n':>5}{'error':>8}{'uTR':>8}{'tSuc':>8}{'tTR':>8}")
    fmt = lambda v: "   —" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        layer = "" if r["layer"] is None else r["layer"]
        print(f"{r['method']:<9}{r['black']:<20}{r['eps']:>6}{layer:>6}{r['n']:>5}"
              f"{fmt(r['error']):>8}{fmt(r['uTR']):>8}{fmt(r['tSuc']):>8}{fmt(r['tTR']):>8}")
    return 0


def _labelled(args, model, n: int):
    """(images, labels, names, target-image bank) on the model's device: the first n of --data DIR,
    else of the model's domain's built-in images. A user's data is its own bank (images the model gets right)."""
    if getattr(args, "data", None) and not domains.of(model).custom:
        dataset = _dataset(args)
        (x, y), bank = datasets.evaluation_split(dataset, model, n)
        names = [name for name, _ in dataset.items[: x.shape[0]]]
    else:
        (x, y), bank = evaluation_split(model, min(n, domains.of(model).capacity()) or n)
        names = domains.of(model).image_keys()[: x.shape[0]]
    device = model.device
    return x.to(device), y.to(device), names, (bank[0].to(device), bank[1].to(device))


def _evaluation_images(args, model, n: int):
    x, y, _, _ = _labelled(args, model, n)
    return x, y


def cmd_compare_l0(args) -> int:
    from engine.analysis.sparsity import comparison_table

    model = _model(args, args.model)
    x, y = _evaluation_images(args, model, args.n)
    rows = comparison_table(model, x, y, seed=args.seed)

    def line(r):
        return f"{r['method']:<10} success {r['success_rate']:6.1%}  L0 {r['l0_pct']:6.2f} %  SSIM {r['ssim']:.4f}"

    return _emit(rows, args.json, line)


def cmd_separability(args) -> int:
    from engine.analysis.features import separability

    model = _model(args, args.model)
    x, y = _evaluation_images(args, model, args.n)
    rows = separability(model, x, y)
    return _emit(rows, args.json, lambda r: f"{r['layer']:>3} {r['name']:<28} within {r['within']:.3f}  "
                                            f"between {r['between']:.3f}  ratio {r['ratio']:.3f}")


def cmd_jsma_hardness(args) -> int:
    from engine.analysis.jsma_extras import hardness_matrix

    model = _model(args, args.model)
    x, y = _evaluation_images(args, model, 2000 if not getattr(args, "data", None) else 10**9)
    rows = hardness_matrix(model, x, y, classes=args.classes,
                           per_pair=args.per_pair, max_distortion=args.max_distortion, theta=args.theta)
    names = model.class_names
    return _emit(rows, args.json, lambda r: f"{names[r['source']]:>12} → {names[r['target']]:<12}"
                                            f" success {r['success_rate']:6.1%}  H "
                                            f"{'—' if r['hardness'] is None else format(r['hardness'], '.4f')}")


def _same_domain(args, names: list[str]) -> list:
    """The models named, which must share one domain: one set of images is fitted to all of them."""
    loaded = [_model(args, name) for name in names]
    odd = [m.name for m in loaded if domains.of(m) != domains.of(loaded[0])]
    if odd:
        raise ValueError(f"{odd[0]} is not a {domains.of(loaded[0]).title} model like {loaded[0].name}: "
                         "compare models of one domain at a time")
    return loaded


def _image_count(value: int) -> int:
    if value < 1:
        raise ValueError(f"--images must be at least 1 (got {value})")
    return value


def cmd_jsma_table(args) -> int:
    from engine.analysis.jsma_extras import jsma_table

    loaded = _same_domain(args, args.models)
    x, y = _evaluation_images(args, loaded[0], _image_count(args.images))
    rows = jsma_table(loaded, x, y, thetas=args.thetas, max_distortion=args.max_distortion, candidates=args.candidates)
    return _emit(rows, args.json, lambda r: f"{r['model']:<20} {r['variant']:<10} {r['pairs']:>5} pairs  success "
                 f"{r['success_rate']:6.1%} ± {r['success_se']:.1%}  mean distortion "
                 f"{'—' if r['mean_distortion'] is None else format(r['mean_distortion'], '.2%')}")


def cmd_robustness(args) -> int:
    from engine.analysis.jsma_extras import robustness

    loaded = _same_domain(args, args.models)
    x, y = _evaluation_images(args, loaded[0], _image_count(args.images))
    rows = [robustness(model, x, y, theta=args.theta) for model in loaded]

    def line(r):
        if r["R"] is None:
            return f"{r['model']:<20} no image classified correctly"
        worst = r["argmin"]
        return (f"{r['model']:<20} R(F) {r['R']:.4f}  mean A {r['mean_A']:.4f}  over {r['pairs']} pairs; "
                f"min at image {worst['image']} ({worst['source']} → {worst['target']})")

    return _emit(rows, args.json, line)


def cmd_gradcam(args) -> int:
    from engine.heatmaps import grad_cam, saliency

    model = _model(args, args.model)
    x = _load_image(args.image, model)
    target = _parse_target(args.target_class, model)
    with torch.no_grad():
        predicted = int(model(x).argmax())
    cls = predicted if target is None else target
    if args.method == "saliency":
        heat, layer = saliency(model, x, target=cls), None
    else:
        layer = model.layer(args.layer).name if args.layer is not None else model.cam_layer
        heat = grad_cam(model, x, layer=layer, target=cls, method=args.method)
    record = {"model": model.name, "image": args.image, "method": args.method, "layer": layer, "class": cls,
              "class_name": model.class_names[cls], "predicted": model.class_names[predicted],
              "shape": list(heat.shape[1:]), "mean": float(heat.mean()), "share_above_half": float((heat > 0.5).float().mean())}
    if args.out:
        picture = (heat[0].cpu().numpy() * 255 + 0.5).astype(np.uint8)
        _save_pair(args.out, picture, heat[0].cpu().numpy())
        record["saved"] = [str(Path(args.out).with_suffix(s)) for s in (".png", ".npy")]
    print(json.dumps(record, indent=2) if args.json else
          f"{args.method} of {record['class_name']} at {layer or 'input'}: mean {record['mean']:.3f}, "
          f"{record['share_above_half']:.1%} of pixels above 0.5")
    return 0


def cmd_download(args) -> int:
    from engine.models import torchvision_zoo

    path = torchvision_zoo.download(args.arch)
    print(json.dumps({"model": args.arch, "path": str(path)}))
    return 0


def _key_values(pairs: list[str]) -> dict:
    """--param NAME=VALUE flags as a dict (values range-checked later by each attack's spec)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {pair!r}: write NAME=VALUE, e.g. --param alpha=0.01")
        out[name.strip().replace("-", "_")] = value.strip()
    return out


def _sweep_attacks() -> list[str]:
    from engine.analysis.transfer import METHODS

    return list(dict.fromkeys([*METHODS, *attacks.ATTACKS]))


def cmd_sweep(args) -> int:
    """A grid of transfer jobs on local cores or a Ray cluster, written to a tidy CSV/Parquet file."""
    from engine import sweep

    grid = sweep.Grid(attacks=args.attack, whites=args.white, blacks=args.black, eps=args.eps or (),
                      layers=args.layer or (None,), images=args.images, shard_size=args.shard_size,
                      steps=args.steps, seed=args.seed, params=_key_values(args.param), device=args.device,
                      data=args.data)
    executor = sweep.make_executor(workers=args.workers, retries=args.retries, ray=args.ray)
    report = sweep.run_sweep(grid, args.out, executor=executor, resume=args.resume, overwrite=args.overwrite,
                             progress=not args.json)
    summary = json.loads(sweep.summarise(sweep.load_results(args.out)).to_json(orient="records"))  # NA → null
    if args.json:
        print(json.dumps({**report, "summary": summary}, indent=2))
        return 0 if report["failed"] == 0 else 1
    print(f"{report['out']}: {report['run']} jobs run, {report['skipped']} skipped, {report['failed']} failed, "
          f"{report['seconds']} s ({report['executor']})")
    fmt = lambda v: "   —" if v is None else f"{v:.3f}"  # noqa: E731
    for r in summary:
        setting = "  ".join(f"{k}={r[k]}" for k in ("eps", "layer", "steps") if r[k] is not None)
        print(f"{r['attack']:<9}{r['white']} → {r['black']:<20}{setting:<28} n={r['n']:<5}"
              + "".join(f"{m}={fmt(r[m])}  " for m in ("error", "uTR", "tSuc", "tTR")))
    return 0 if report["failed"] == 0 else 1


# ---- human-recognisable perturbations ----------------------------------------------

_FMNIST_SOURCES = ["fmnist-resnet-0", "fmnist-lenet-0", "fmnist-vgg-0", "fmnist-densenet-0", "fmnist-mobilenet-0", "fmnist-mlp-0"]
_FMNIST_TESTS = ["fmnist-lenet-1", "fmnist-vgg-1", "fmnist-resnet-1", "fmnist-densenet-1"]


def _given_params(args) -> dict:
    return {name: getattr(args, name) for name in _param_names() if getattr(args, name, None) is not None}


def _own_params(chosen: list[str], given: dict) -> dict[str, dict]:
    """Per chosen attack, the flags given that it declares (one flag set serves several attacks);
    a flag none of them declares is an error, not silently dropped."""
    declared = {a: {p.name for p in attacks.get(a).params} for a in chosen}
    unused = sorted(set(given) - set().union(*declared.values()))
    if unused:
        raise ValueError(f"--{unused[0].replace('_', '-')} is not a parameter of {', '.join(chosen)}")
    return {a: {k: v for k, v in given.items() if k in names} for a, names in declared.items()}


def _image_batch(args, model) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """--images (built-in image names or files), else the first --n of --data DIR or of the domain's
    built-in images. Labels are known for built-in images and --data; image files have none."""
    if not args.images:
        x, y, names, _ = _labelled(args, model, args.n)
        return x, y, names
    domain = domains.of(model)
    x = torch.cat([_load_image(v, model) for v in args.images])
    builtin = [v for v in args.images if not Path(v).is_file() and domain.parse_key(v) is not None]
    y = torch.tensor([domain.label(v) for v in args.images], device=x.device) if len(builtin) == len(args.images) else None
    return x, y, list(args.images)


def _targets(args, model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """--targeted POLICY: runner-up, random (seeded by --seed) or a class index/name; None when untargeted."""
    value = getattr(args, "targeted", None)
    if value is None:
        return None
    policy = value if value in targets.POLICIES else _parse_target(value, model)
    if isinstance(policy, int) and not 0 <= policy < model.num_classes:
        raise ValueError(f"target class {policy} is outside 0–{model.num_classes - 1}")
    return targets.choose(model, x, policy, y=y, seed=args.seed)


def _recognisable_setup(args):
    """Models, images, labels, targets and the perturbations of every (attack, setting) for the §3 subcommands."""
    from types import SimpleNamespace

    from engine.analysis import recognisable

    sources = [_model(args, n) for n in args.sources]
    tests = [_model(args, n) for n in args.tests]
    single = _model(args, args.single) if args.single else sources[0]
    x, y, names = _image_batch(args, sources[0])
    if y is None:  # photos carry no label
        y = recognisable.consensus_labels(sources + tests, x)
    target = _targets(args, sources[0], x, y)
    settings = domains.of(sources[0]).averaging
    copies = args.copies if args.copies is not None else settings.get("copies", 10)
    sigma = args.sigma if args.sigma is not None else settings.get("sigma", 0.05)
    eps = args.quantise_eps if args.quantise_eps is not None else settings.get("eps", 0.03)
    given = _given_params(args)
    deltas = recognisable.perturbations(sources, x, y, _own_params(args.attack, given), single=single, copies=copies,
                                        sigma=sigma, target=target, seed=args.seed)
    return SimpleNamespace(sources=sources, tests=tests, single=single, x=x, y=y, target=target, names=names,
                           deltas=deltas, eps=eps, copies=copies, sigma=sigma, params=given)


def _rows_line(r: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())


def cmd_strength(args) -> int:
    from engine.analysis import recognisable

    s = _recognisable_setup(args)
    return _emit(recognisable.strength_table(s.tests, s.x, s.y, s.deltas, s.eps, seed=args.seed), args.json, _rows_line)


def cmd_recognizability(args) -> int:
    from engine.analysis import recognisable

    s = _recognisable_setup(args)
    domain = s.sources[0].domain
    if s.target is None:
        rows = recognisable.recognisability_table(s.tests, s.y, s.deltas, domain)
    else:
        rows = recognisable.target_recognisability_table(s.tests, s.y, s.target, s.deltas, domain)
    return _emit(rows, args.json, _rows_line)


def cmd_similarity(args) -> int:
    from engine.analysis import recognisable

    return _emit(recognisable.similarity_table(_recognisable_setup(args).deltas), args.json, _rows_line)


def _object_masks(args, model, x: torch.Tensor, names: list[str]) -> torch.Tensor:
    return domains.of(model).object_masks(model, x, names, threshold=args.threshold)


def cmd_contour(args) -> int:
    from engine.analysis import masking

    from engine.attacks.averaging import MAX_COPIES

    bad = [n for n in args.copies_sweep or [] if not 1 <= n <= MAX_COPIES]
    if bad:  # before the averaging it would otherwise wait for
        raise ValueError(f"--copies-sweep: copies must be whole numbers in [1, {MAX_COPIES}], got {bad[0]}")
    s = _recognisable_setup(args)
    x, y, tests, eps = s.x, s.y, s.tests, s.eps
    masks = _object_masks(args, s.sources[0], x, s.names)
    attack = args.attack[0]
    delta = s.deltas[(attack, "noisy multi-model")]
    out = {
        "attack": attack,
        "parts": {k: masking.contour_vs_background(tests, x, y, s.deltas[(attack, k)], masks, eps, seed=args.seed)
                  for k in ("single-model", "noisy multi-model")},
        "energy in object": {k: masking.mean_energy_in_mask(s.deltas[(attack, k)], masks)
                             for k in ("single-model", "multi-model", "noisy multi-model")},
        "mask_sweep": masking.mask_sweep(tests, x, y, delta, masks, eps, steps=args.sweep_steps, seed=args.seed),
        "linf_sweep": masking.linf_sweep(tests, x, y, delta, masks, eps_values=args.linf_values, seed=args.seed),
        "complementarity": masking.complementarity_coverage(delta, masks),
    }
    if args.copies_sweep:
        params = _own_params([attack], s.params)[attack]
        rows = masking.copies_sweep([s.single], tests, x, y, masks, attack, params, copies=args.copies_sweep,
                                    sigma=s.sigma, eps=eps, seed=args.seed)
        out["copies_sweep"] = [{k: v for k, v in r.items() if k != "delta"} for r in rows]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key in ("parts", "mask_sweep", "linf_sweep", "copies_sweep"):
            if key not in out:
                continue
            rows = out[key] if key != "parts" else [{"setting": k, **r} for k, rs in out[key].items() for r in rs]
            print(f"# {key}")
            for r in rows:
                print(_rows_line(r))
        print("# energy in object")
        print(_rows_line(out["energy in object"]))
    return 0


def cmd_checkerboard(args) -> int:
    from engine.analysis.checkerboard import checkerboard

    model = _model(args, args.model)
    x = _load_image(args.image, model)
    rows = checkerboard(model, x, sigmas=args.sigma, copies=args.copies, attack=args.attack, seed=args.seed,
                        **_own_params([args.attack], _given_params(args))[args.attack])
    for r in rows:
        delta = r.pop("delta")
        if args.out:
            from engine.analysis.recognisable import display_normalise

            shown = images.to_uint8(display_normalise(delta[None], model.domain)[0])
            _save_pair(f"{args.out}_sigma{r['sigma']:g}", shown, delta.cpu().numpy())
    return _emit(rows, args.json, lambda r: f"σ={r['sigma']:<6g} period {r['period']:6.2f} px  "
                                            f"(fy {r['fy']:+.3f}, fx {r['fx']:+.3f})  prominence {r['prominence']:.1f}")


def cmd_noise_classes(args) -> int:
    from engine.analysis.recognisable import noise_classes

    loaded = [_model(args, n) for n in args.models]
    rows = noise_classes(loaded, count=args.count, seed=args.seed, top=args.top)
    return _emit(rows, args.json, lambda r: f"{r['model']:<22} #{r['rank']} {r['name']:<24} {r['share']:6.1%}")


def _quiz_sources(args) -> list:
    """--sources, else the domain's (--domain, or --model's); --model first: it alone makes the single-model ones."""
    from engine.analysis.quiz import source_names

    if args.sources:
        names = source_names(args.model, args.sources)
    elif args.domain is None and args.model is None:
        raise ValueError("give --domain, --model or --sources")
    else:
        domain = domains.get(args.domain) if args.domain else domains.of(_model(args, args.model))
        names = source_names(args.model, domain.sources)
    first = _model(args, names[0])
    if args.domain and first.domain != args.domain:
        raise ValueError(f"{first.name} is a {first.domain} model, not {args.domain}")
    return [first] + [_model(args, n) for n in names[1:]]


def cmd_quiz(args) -> int:
    from engine.analysis import quiz

    if args.answers and (args.judge or args.out):
        raise ValueError("--answers scores a sheet without making the pictures: give --judge or --out without it")
    sources = _quiz_sources(args)
    first = sources[0]
    domain = domains.of(first)
    quiz.bank(first)  # a domain without labelled images of its own says so before anything else
    questions = args.questions if args.questions is not None else domain.defaults["quiz"]["questions"]
    plan = quiz.plan_for(first, questions=questions, choices=args.choices, seed=args.seed)
    out: dict = {"domain": first.domain, "seed": args.seed, "questions": len(plan), "choices": len(plan[0].choices),
                 "sources": [m.name for m in sources]}
    if args.answers:  # the key depends only on the seed and the labels: no perturbation is computed
        text = Path(args.answers).read_text(encoding="utf-8")
        out["score"] = quiz.score(plan, quiz.read_answers(text, plan, first.class_names))
        return _quiz_emit(out, args.json)
    judges = [_model(args, n) for n in args.judge or []]
    for j in judges:  # before the perturbations are made, not after
        quiz.check_judge(j, first.domain, len(first.class_names), out["sources"])
    given = _given_params(args)
    attack = args.attack or domain.defaults["quiz"]["attack"]
    settings = quiz.Settings.for_domain(domain, attack=attack, params=_own_params([attack], given)[attack],
                                        copies=args.copies, sigma=args.sigma)
    made = quiz.make(sources, questions=questions, choices=args.choices, seed=args.seed, settings=settings)
    out.update(attack=settings.attack, params=settings.params, copies=settings.copies, sigma=settings.sigma,
               seconds=round(made.seconds, 2))
    rows = made.sheet(key=args.key)
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        for q, row in zip(made.questions, rows):
            row["picture"] = str(folder / f"q{q.number:03d}.png")
            Path(row["picture"]).write_bytes(images.png_bytes(images.enlarged(q.picture)))
        (folder / "answers.csv").write_text(quiz.blank_sheet(made), encoding="utf-8")
        out["answer sheet"] = str(folder / "answers.csv")
    out["sheet"] = rows
    if judges:
        out["judges"] = {j.name: quiz.score(made.questions, quiz.machine_answers(made, j)) for j in judges}
    return _quiz_emit(out, args.json)


def _quiz_emit(out: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(out, indent=2))
        return 0

    def line(name: str, s: dict) -> str:
        acc = "—" if s["accuracy"] is None else f"{s['accuracy']:.1%} [{s['ci low']:.1%}, {s['ci high']:.1%}]"
        return (f"{name:<22} {s['correct']}/{s['answered']} answered = {acc}, {s['unanswered']} unanswered, "
                f"chance {s['chance']:.1%}")

    print(f"{out['domain']} quiz, seed {out['seed']}: {out['questions']} questions, {out['choices']} choices each")
    for row in out.get("sheet", []):
        key = f"  → {row['true class']} ({row['kind']})" if "kind" in row else ""
        print(f"Q{row['question']}: {', '.join(row['choices'])}{key}")
    for who, s in ([("answers", out["score"])] if "score" in out else []) + list(out.get("judges", {}).items()):
        print(line(who, s))
        for kind, part in s["by kind"].items():
            print(line(f"  {kind}", part))
    return 0


def cmd_patch_distance(args) -> int:
    model = _model(args, args.model)
    own = patch_distance.defaults(model)
    if args.n is None:
        args.n = own["images"]
    x, y, names = _image_batch(args, model)
    size = own["size"] if args.size is None else args.size
    distances = own["distances"] if args.distances is None else args.distances
    directions = own["directions"] if args.directions is None else args.directions
    amplitude = own["amplitude"] if args.amplitude is None else args.amplitude
    shown = []

    def progress(done, total, state):  # about ten lines however many batches
        if not shown or done == total or done - shown[-1] >= max(1, total // 10):
            shown.append(done)
            print(f"  batch {int(done)}/{total}", file=sys.stderr, flush=True)

    result = patch_distance.patch_distance(model, x, y, size=size, amplitude=amplitude, distances=distances,
                               directions=directions, pattern=args.pattern, centre=args.centre, seed=args.seed,
                               batch_size=args.batch_size, callback=None if args.json else progress)
    record = result.as_dict()
    for photo in record["photos"]:
        photo["image"] = names[photo["index"]]
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    st = record["settings"]
    print(f"{model.name}: {st['size']} px patch (±{st['amplitude']:g}, {st['pattern']}), {st['photos_counted']} of "
          f"{st['photos']} photos counted, {st['directions']} directions, centre = heat-map {st['centre']}")
    print(f"{'distance':>8}{'n':>6}{'skipped':>8}{'1−p(true)':>11}{'± std':>8}{'margin':>8}{'drop':>8}{'flipped':>9}")
    fmt = lambda v, f: "     —" if v is None else format(v, f)  # noqa: E731
    for label, r in [(f"{r['distance']:g}", r) for r in record["curve"]] + [("random", record["control"])]:
        print(f"{label:>8}{r['n']:>6}{r.get('skipped', ''):>8}{fmt(r['wrong_mean'], '11.3f')}{fmt(r['wrong_std'], '8.3f')}"
              f"{fmt(r['margin_mean'], '8.3f')}{fmt(r['drop_mean'], '8.3f')}{fmt(r['success'], '9.1%')}")
    rho = record["correlation"]
    print(f"Spearman ρ(distance, drop of p(true)): ring {fmt(rho['ring'], '.3f')}, random {fmt(rho['control'], '.3f')}")
    return 0


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="labelled images of your own: class sub-folders, a flat folder with "
                   "a file,label CSV, or an ImageNet validation layout (labels: class names, indices or wnids)")


def _add_recognisable(p: argparse.ArgumentParser) -> None:
    _add_data(p)
    p.add_argument("--sources", nargs="+", default=_FMNIST_SOURCES, help="models whose perturbations are averaged")
    p.add_argument("--tests", nargs="+", default=_FMNIST_TESTS, help="held-out models that judge them")
    p.add_argument("--single", help="the single-model setting's model (default: the first source)")
    p.add_argument("--attack", nargs="+", default=["bim"], choices=[n for n, s in attacks.ATTACKS.items() if s.averageable])
    p.add_argument("--images", nargs="+", help="gallery names, image files or Fashion-MNIST test indices")
    p.add_argument("--n", type=int, default=20, help="without --images: the first N test images (or gallery photos)")
    p.add_argument("--copies", type=int, default=None, help="noisy copies per model (default: the thesis' for the domain)")
    p.add_argument("--sigma", type=float, default=None, help="noise σ (default: the thesis' for the domain)")
    p.add_argument("--quantise-eps", type=float, default=None, help="ε of δ' = ε·sign(δ) (default: 0.2 Fashion-MNIST, 0.02 ImageNet)")
    _add_common(p, seed=True)
    _add_attack_params(p)


def _param_names() -> list[str]:
    return sorted({p["name"] for spec in attacks.available() for p in spec["params"]})


def _add_common(p: argparse.ArgumentParser, seed: bool = False) -> None:
    """The flags every computing subcommand shares."""
    if seed:
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best present)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="fp32, or bf16/fp16 autocast of the networks (logits stay float32; mostly for GPUs)")
    p.add_argument("--model-meta", metavar="JSON", help="preprocessing of your own models (input_size, mean, std, "
                   "class_names, domain, ...) where no sidecar sits beside the file, or for an entry point")
    p.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m engine", description="Perturbation Explorer engine")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list models and whether they can be loaded here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("attacks", help="list attacks and their parameters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_attacks)

    p = sub.add_parser("attack", help="attack one image and report predictions and perturbation sizes")
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True, help="an image file, a gallery name such as 'chelsea', or a Fashion-MNIST test index")
    p.add_argument("--attack", required=True, choices=list(attacks.ATTACKS))
    p.add_argument("--target", help="target class index or name (targeted attack)")
    p.add_argument("--target-image", help="aa only: the target image, or how the bank's is chosen: "
                   f"{', '.join(targets.IMAGE_RULES)} (default: {targets.FARTHEST}, the paper's farthest-in-class)")
    p.add_argument("--save-adv", metavar="PATH", help="write the adversarial image as PATH.png and PATH.npy")
    p.add_argument("--save-delta", metavar="PATH", help="write the perturbation as PATH.png (signed) and PATH.npy")
    p.add_argument("--estimate", action="store_true", help="print the expected time on this machine instead of running")
    p.add_argument("--twin", action="store_true",
                   help="also run it on the model's adversarially trained twin (or a robust model's plain one); with "
                        "--save-delta, each δ is written display-normalised")
    _add_common(p, seed=True)
    _add_attack_params(p)
    p.set_defaults(func=cmd_attack)

    p = sub.add_parser("robust-accuracy", help="clean and PGD accuracy at each ε (robust models beside plain ones)")
    _add_data(p)
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--eps", dest="eps_values", nargs="+", type=float,
                   help="ε values (default: half and all of the domain's attack budget, 0.1 0.2 on Fashion-MNIST)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--n", type=int, default=1000, help="the first N evaluation images (default 1,000)")
    _add_common(p, seed=True)
    p.set_defaults(func=cmd_robust_accuracy)

    p = sub.add_parser("transfer", help="transfer metrics (error, uTR, tSuc, tTR) of AA and targeted baselines")
    _add_data(p)
    p.add_argument("--source", required=True, help="white-box model")
    p.add_argument("--target", required=True, nargs="+", help="black-box model(s)")
    p.add_argument("--attack", nargs="+", default=["aa"], choices=["aa", "tmifgsm", "tpgd", "itcm", "all"])
    p.add_argument("--eps", type=float, help="ε (default: the middle of the domain's transfer ε values, 0.07 on "
                   "Fashion-MNIST)")
    p.add_argument("--eps-values", type=float, nargs="+", help="ε values (--sweep eps default: 0 .01 .03 .05 .07; "
                   "otherwise --eps); a layer sweep runs every layer at each")
    p.add_argument("--layer", type=int, default=None, help="AA layer index (default: the middle layer)")
    p.add_argument("--target-image", default=targets.FARTHEST, choices=list(targets.IMAGE_RULES),
                   help="how AA's target image is chosen from the bank's images of the target class: farthest from "
                        "the source at the layer (the paper's), nearest the class mean there, or at random")
    p.add_argument("--bank-per-class", type=int, default=None, metavar="K",
                   help="keep the first K bank images of each class (the paper keeps 100; default: all)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--n", type=int, default=500, help="number of evaluation images")
    p.add_argument("--sweep", choices=["eps", "layer"], default=None)
    _add_common(p, seed=True)
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("compare-l0", help="seed 004's table: FGSM, JSMA, DeepFool, Mask-FGSM by success, L0, SSIM")
    _add_data(p)
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=7, help="images: gallery photos, or the first N Fashion-MNIST test images")
    _add_common(p, seed=True)
    p.set_defaults(func=cmd_compare_l0)

    p = sub.add_parser("separability", help="per-layer class separability (angular distances)")
    _add_data(p)
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=500)
    _add_common(p)
    p.set_defaults(func=cmd_separability)

    p = sub.add_parser("jsma-hardness", help="JSMA hardness H(s, t) over source/target classes (seed 001)")
    _add_data(p)
    p.add_argument("--model", default="fmnist-lenet-0")
    p.add_argument("--classes", type=int, nargs="+", default=None)
    p.add_argument("--per-pair", type=int, default=10)
    p.add_argument("--max-distortion", type=float, default=0.145)
    p.add_argument("--theta", type=int, default=1, choices=[1, -1])
    _add_common(p)
    p.set_defaults(func=cmd_jsma_hardness)

    p = sub.add_parser("jsma-table", help="JSMA increasing vs decreasing (θ = ±1): success rate and mean distortion "
                                          "from every image to every other class (seed 001)")
    _add_data(p)
    p.add_argument("--models", nargs="+", default=["fmnist-lenet-0", "fmnist-lenet-1"])
    p.add_argument("--images", type=int, default=20, help="the first N evaluation images (each to every other class)")
    p.add_argument("--max-distortion", type=float, default=0.145, help="Υ, the largest share of features changed")
    p.add_argument("--thetas", type=int, nargs="+", default=[1, -1], choices=[1, -1])
    p.add_argument("--candidates", type=int, default=None, help="pair search among the K most salient features "
                   "(default 64; the number of features, e.g. 784, is the paper's search over all pairs)")
    _add_common(p)
    p.set_defaults(func=cmd_jsma_table)

    p = sub.add_parser("robustness", help="R(F) = min over images and targets of JSMA's adversarial distance A(X, t) "
                                          "(seed 001), with the mean A and the pair at the minimum")
    _add_data(p)
    p.add_argument("--models", nargs="+", default=_FMNIST_SOURCES + _FMNIST_TESTS)
    p.add_argument("--images", type=int, default=100, help="the first N evaluation images (each to every other class)")
    p.add_argument("--theta", type=int, default=1, choices=[1, -1], help="+1: saliency of raising a feature (the seed's)")
    _add_common(p)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("gradcam", help="Grad-CAM / Grad-CAM++ / saliency heat map of one image")
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--method", choices=["gradcam", "gradcam++", "saliency"], default="gradcam")
    p.add_argument("--layer", type=int, default=None, help="catalogue index (default: the model's Grad-CAM layer)")
    p.add_argument("--class", dest="target_class", help="class index or name (default: the predicted class)")
    p.add_argument("--out", metavar="PATH", help="write the map as PATH.png (grey) and PATH.npy")
    _add_common(p)
    p.set_defaults(func=cmd_gradcam)

    for name, text, func in (
        ("strength", "attack strength: held-out accuracy on clean, ±ε noise and δ' per setting", cmd_strength),
        ("recognizability", "held-out models classify the display-normalised δ itself", cmd_recognizability),
        ("similarity", "cosine similarity of different attacks' perturbations per setting", cmd_similarity),
    ):
        p = sub.add_parser(name, help=text)
        _add_recognisable(p)
        p.set_defaults(func=func)
        if func is cmd_recognizability:
            p.add_argument("--targeted", nargs="?", const=targets.RANDOM, metavar="TARGET",
                           help="targeted perturbations (the generation effect): the share judged as the target class. "
                                f"TARGET: {' or '.join(targets.POLICIES)} (default {targets.RANDOM}, seeded by "
                                "--seed), "
                                "or a class index or name")

    p = sub.add_parser("contour", help="contour vs background, dilation/erosion and L∞ sweeps, with controls")
    _add_recognisable(p)
    p.add_argument("--threshold", type=float, default=0.05, help="Fashion-MNIST object mask threshold")
    p.add_argument("--sweep-steps", type=int, nargs="+", default=[-2, -1, 0, 1, 2], help="3×3 erosion (<0) / dilation (>0) steps")
    p.add_argument("--linf-values", type=float, nargs="+", default=[0.01 * i for i in range(1, 11)])
    p.add_argument("--copies-sweep", type=int, nargs="+", metavar="N",
                   help="also average the attack over N noisy copies on the single model for each N (e.g. 1 4 16 64; "
                        "with --attack square --zero-init: seed 002 §5.1) and report the energy inside the object")
    p.set_defaults(func=cmd_contour)

    p = sub.add_parser("checkerboard", help="period of noisy single-model averages per σ")
    p.add_argument("--model", required=True)
    p.add_argument("--image", default="0", help="gallery name, image file or Fashion-MNIST test index (default 0)")
    p.add_argument("--sigma", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.5])
    p.add_argument("--copies", type=int, default=256)
    p.add_argument("--attack", default="bim", choices=[n for n, s in attacks.ATTACKS.items() if s.averageable])
    p.add_argument("--out", metavar="STEM", help="write each average as STEM_sigma<σ>.png (display-normalised) and .npy")
    _add_common(p, seed=True)
    _add_attack_params(p)
    p.set_defaults(func=cmd_checkerboard)

    p = sub.add_parser("noise-classes", help="classes each model sees in Gaussian noise with the dataset's statistics")
    p.add_argument("--models", nargs="+", default=_FMNIST_SOURCES + _FMNIST_TESTS)
    p.add_argument("--count", type=int, default=256)
    p.add_argument("--top", type=int, default=3)
    _add_common(p, seed=True)
    p.set_defaults(func=cmd_noise_classes)

    p = sub.add_parser("quiz", help="the thesis' human evaluation as a quiz: name the class from the perturbation")
    _add_data(p)
    p.add_argument("--domain", choices=domains.names(), help="the built-in domain whose source models and images make "
                   "the quiz (a model of your own: give --model and --data)")
    p.add_argument("--model", help="the single-model perturbations' model, first of the sources "
                   "(default: the domain's first source)")
    p.add_argument("--sources", nargs="+", help="models whose perturbations are averaged (default: the domain's)")
    p.add_argument("--questions", type=int, default=None, help="number of questions (default: the domain's)")
    p.add_argument("--choices", type=int, default=None,
                   help="classes offered per question (default: the domain's, at most its classes)")
    p.add_argument("--attack", default=None, choices=[n for n, s in attacks.ATTACKS.items() if s.averageable],
                   help="the attack whose perturbations are shown (default: the domain's)")
    p.add_argument("--copies", type=int, default=None, help="noisy copies per source model")
    p.add_argument("--sigma", type=float, default=None, help="noise σ of the copies")
    p.add_argument("--out", metavar="DIR", help="write each question's picture as DIR/q001.png and a blank answer "
                   "sheet DIR/answers.csv")
    p.add_argument("--key", action="store_true", help="include the answer key (kind, image, true class) in the output")
    p.add_argument("--answers", metavar="CSV", help="score a filled answer sheet (columns question, answer) against "
                   "the quiz these --questions/--choices/--seed make; computes no perturbation")
    p.add_argument("--judge", nargs="+", metavar="MODEL", help="held-out model(s) that take the quiz from its pictures")
    _add_common(p, seed=True)
    _add_attack_params(p)
    p.set_defaults(func=cmd_quiz)

    p = sub.add_parser("patch-distance", help="seed 004 Figs. 3-4: one noise patch at growing distance from the "
                                              "Grad-CAM centre, against the same patch at random positions")
    _add_data(p)
    p.add_argument("--model", required=True)
    p.add_argument("--images", nargs="+", help="gallery names, image files or Fashion-MNIST test indices "
                   "(files: the model's own answer counts as the true class)")
    p.add_argument("--n", type=int, default=None, help="without --images: the first N evaluation images "
                   "(default: 4 photos, 100 Fashion-MNIST images)")
    p.add_argument("--size", type=int, default=None, help="patch side in pixels (default: 1/7 of a photo's side, "
                   "1/4 of a Fashion-MNIST image's)")
    p.add_argument("--amplitude", type=float, default=None, help="the patch's L∞ size, in (0, 1] (default 0.5)")
    p.add_argument("--distances", type=float, nargs="+", default=None,
                   help="distances from the heat-map centre in pixels (default: 8 from 0 to half the side)")
    p.add_argument("--directions", type=int, default=None, help="evenly spread directions per distance (default 8)")
    p.add_argument("--pattern", choices=list(patch_distance.PATTERNS), default="sign",
                   help="sign: seeded ±amplitude per pixel; uniform: noise in [−amplitude, amplitude]")
    p.add_argument("--centre", choices=list(patch_distance.CENTRES), default="peak",
                   help="the heat map's peak (default) or its weighted centroid")
    p.add_argument("--batch-size", type=int, default=32, help="placements per forward pass")
    _add_common(p, seed=True)
    p.set_defaults(func=cmd_patch_distance)

    p = sub.add_parser("sweep", help="a grid of transfer jobs (attack × white × black × ε × layer × shard) on local "
                                     "cores or a Ray cluster, written to a tidy .csv/.parquet file")
    p.add_argument("--white", required=True, nargs="+", help="white-box model(s)")
    _add_data(p)
    p.add_argument("--black", required=True, nargs="+", help="black-box model(s); a model is never its own black box")
    p.add_argument("--attack", required=True, nargs="+", choices=_sweep_attacks(),
                   help="targeted methods (aa tmifgsm tpgd itcm) or catalogue attacks (untargeted)")
    p.add_argument("--eps", type=float, nargs="+", help="ε values (default: each attack's default for the domain)")
    p.add_argument("--layer", type=int, nargs="+", help="AA layer indices (default: the middle layer)")
    p.add_argument("--steps", type=int, default=None, help="iterations, for attacks that have them (default: theirs)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="another attack parameter, given to the attacks that declare it (repeatable)")
    p.add_argument("--images", type=int, default=200, help="Fashion-MNIST test images (or gallery photos) to attack")
    p.add_argument("--shard-size", type=int, default=50, help="images per job")
    p.add_argument("--out", required=True, help="results file, .csv or .parquet (rows are written as jobs finish)")
    p.add_argument("--resume", action="store_true", help="skip the jobs --out already holds; rerun its failed ones")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: all cores); "
                   "with --ray and no cluster, the CPUs of the local Ray instance")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: ADDRESS (HEAD:6379), else $RAY_ADDRESS, else a local instance; "
                        "RAY_ADDRESS set in the environment also selects Ray")
    p.add_argument("--retries", type=int, default=2, help="times a failed or killed job is run again")
    p.add_argument("--seed", type=int, default=0, help="random target classes and random starts")
    p.add_argument("--device", default="cpu", help="cpu (default: one job per core) or cuda")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("export-fmnist", help="write one Fashion-MNIST test image as a 28×28 grey PNG")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("download", help="fetch a torchvision checkpoint into the torch cache (needs network)")
    p.add_argument("arch")
    p.set_defaults(func=cmd_download)
    return parser


# Commands that only read the catalogue or write a file: they never wait behind a running job.
LIGHT_COMMANDS = {"models", "attacks", "export-fmnist", "download"}


def _waiting(ahead: int | None) -> None:
    """Say once, on stderr, that this command waits for the machine's running job (engine.compute)."""
    if not getattr(_waiting, "said", False):
        _waiting.said = True
        print("waiting for a compute slot: another Perturbation Explorer job is running on this machine "
              "(PE_COMPUTE_SLOTS sets how many run at once)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from engine import compute

    try:
        args = build_parser().parse_args(argv)
        if args.command in LIGHT_COMMANDS or getattr(args, "estimate", False):
            return args.func(args)
        with compute.slot(_waiting):
            return args.func(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except domains.NeedsImages as err:
        return _fail(f"{err}: give them with --data DIR (class sub-folders, or a file,label CSV)")
    except (ValueError, ModelUnavailable, OSError) as err:
        return _fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    except KeyboardInterrupt:
        return _fail("interrupted")
