"""What the subcommands read and write: models by name, images, the domain whose defaults apply, and output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine import datasets, domains, images, models
from engine.analysis.target_images import evaluation_split


def model(args, name: str):
    """A registered model by name, else the user's own (engine.models.formats): a model file (ONNX, torch.export
    .pt2, TorchScript; metadata from the JSON beside it or --model-meta), ARCH=WEIGHTS (a torchvision state_dict),
    timm:ARCH=WEIGHTS, hf:FOLDER, or an entry point 'package.module:factory'. Opened once per command."""
    opened = args.__dict__.setdefault("_opened", {})
    if name in opened:
        return opened[name]
    if name not in models.names() and not Path(name).exists() and not any(c in name for c in "=:"):
        raise ValueError(
            f"unknown model {name!r}: give a registered name ({', '.join(models.names()[:6])}, …), a "
            "model file (.onnx, .pt2, TorchScript), an entry point package.module:factory, "
            "ARCH=WEIGHTS.pt, timm:ARCH=WEIGHTS or hf:FOLDER"
        )
    found = models.open_model(
        name, getattr(args, "device", None), getattr(args, "precision", "auto"), getattr(args, "model_meta", None)
    )
    opened[name] = _with_data(args, found)
    return opened[name]


def same_domain(args, names: list[str]) -> list:
    """The models named, which must share one domain: one set of images is fitted to all of them."""
    loaded = [model(args, name) for name in names]
    odd = [m.name for m in loaded if domains.of(m) != domains.of(loaded[0])]
    if odd:
        raise ValueError(
            f"{odd[0]} is not a {domains.of(loaded[0]).title} model like {loaded[0].name}: "
            "compare models of one domain at a time"
        )
    return loaded


def domain_for(args, names=()) -> domains.Domain:
    """The domain whose defaults apply: --domain, else the first model named's, else the first built-in one."""
    if getattr(args, "domain", None):
        return domains.get(args.domain)
    for name in names:
        if name:
            return domains.of(model(args, name))
    return domains.get(domains.names()[0])


def registered_domain(args, name: str) -> domains.Domain:
    """A model's domain without loading it when it is registered (its record says), else from the loaded model."""
    found = {r["name"]: r["domain"] for r in models.available()}.get(name)
    return domains.get(found) if found in domains.names() else domain_for(args, [name])


def dataset(args):
    """--data DIR, opened once per command."""
    if getattr(args, "_dataset", None) is None:
        args._dataset = datasets.open_dataset(args.data)
    return args._dataset


def _with_data(args, found):
    """A user's model of its own domain takes --data DIR as that domain's images: its evaluation split, its
    target-image bank and the images its analyses draw from."""
    if getattr(args, "data", None) and domains.of(found).custom:
        found.domain_record = datasets.as_domain(domains.of(found), dataset(args), f"data:{args.data}", found)
    return found


def load_image(value: str, model):
    """An image file, else one of the model's domain's built-in images (a gallery name, a test-split index)."""
    domain = domains.of(model)
    if Path(value).is_file():
        return images.load(Path(value), model)
    if domain.parse_key(value) is not None or value.isdigit() or not Path(value).suffix:
        return domain.load(value, model)
    raise ValueError(f"image file {value!r} not found")


def labelled(args, model, n: int):
    """(images, labels, names, target-image bank) on the model's device: the first n of --data DIR,
    else of the model's domain's built-in images. A user's data is its own bank (images the model gets right)."""
    if getattr(args, "data", None) and not domains.of(model).custom:
        data = dataset(args)
        (x, y), bank = datasets.evaluation_split(data, model, n)
        names = [name for name, _ in data.items[: x.shape[0]]]
    else:
        (x, y), bank = evaluation_split(model, min(n, domains.of(model).capacity()) or n)
        names = domains.of(model).image_keys()[: x.shape[0]]
    device = model.device
    return x.to(device), y.to(device), names, (bank[0].to(device), bank[1].to(device))


def evaluation_images(args, model, n: int):
    x, y, _, _ = labelled(args, model, n)
    return x, y


def image_batch(args, model) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """--images (built-in image names or files), else the first --n of --data DIR or of the domain's
    built-in images. Labels are known for built-in images and --data; image files have none."""
    if not args.images:
        x, y, names, _ = labelled(args, model, args.n)
        return x, y, names
    domain = domains.of(model)
    x = torch.cat([load_image(v, model) for v in args.images])
    builtin = [v for v in args.images if not Path(v).is_file() and domain.parse_key(v) is not None]
    y = (
        torch.tensor([domain.label(v) for v in args.images], device=x.device)
        if len(builtin) == len(args.images)
        else None
    )
    return x, y, list(args.images)


def save_pair(stem: str, picture: np.ndarray, array: np.ndarray) -> list[str]:
    """Write `<stem>.png` (for eyes) and `<stem>.npy` (exact float values)."""
    base = Path(stem)
    if base.suffix.lower() in {".png", ".npy"}:
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    png, npy = base.with_suffix(".png"), base.with_suffix(".npy")
    png.write_bytes(images.png_bytes(picture))
    np.save(npy, array)
    return [str(png), str(npy)]


def emit(rows: list[dict], as_json: bool, line) -> int:
    """Print rows as one JSON array or as one formatted line each."""
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(line(row))
    return 0


def rows_line(r: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
