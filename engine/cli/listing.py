"""Subcommands that read the catalogue or write one file: models, attacks, export-fmnist, download."""

from __future__ import annotations

import json
from pathlib import Path

from engine import attacks, images, models

from . import options
from .inputs import emit


def cmd_models(args) -> int:
    def line(r):
        state = "available" if r["available"] else f"unavailable: {r['reason']}"
        return f"{r['name']:<22} {r['domain']:<14} {state}"

    return emit(models.available(), args.json, line)


def cmd_attacks(args) -> int:
    def line(r):
        params = ", ".join(f"{p['name']}={p['default']}" for p in r["params"])
        return f"{r['name']:<10} {r['title']:<34} {params}"

    return emit(attacks.available(), args.json, line)


def cmd_export(args) -> int:
    from engine.datasets import fashion_mnist

    x, y = fashion_mnist.test_split()
    if not 0 <= args.index < x.shape[0]:
        raise ValueError(f"index {args.index} out of range: the Fashion-MNIST test split has {x.shape[0]} images")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(images.png_bytes(images.to_uint8(x[args.index])[..., 0]))
    label = int(y[args.index])
    print(
        json.dumps(
            {"index": args.index, "label": label, "label_name": fashion_mnist.CLASS_NAMES[label], "path": str(out)}
        )
    )
    return 0


def cmd_download(args) -> int:
    from engine.models import torchvision_zoo

    path = torchvision_zoo.download(args.arch)
    print(json.dumps({"model": args.arch, "path": str(path)}))
    return 0


def register_lists(sub) -> None:
    p = sub.add_parser("models", help="list models and whether they can be loaded here")
    options.add_json(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("attacks", help="list attacks and their parameters")
    options.add_json(p)
    p.set_defaults(func=cmd_attacks)


def register_files(sub) -> None:
    p = sub.add_parser("export-fmnist", help="write one Fashion-MNIST test image as a 28×28 grey PNG")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("download", help="fetch a torchvision checkpoint into the torch cache (needs network)")
    p.add_argument("arch")
    p.set_defaults(func=cmd_download)
