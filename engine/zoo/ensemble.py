"""The averaging ensemble: light Fashion-MNIST source models, many families × seeds, for the thesis' noisy
multi-model averaging over many sources (Menn 2023 averages up to 270 models).

    python -m engine.zoo.ensemble --all --threads 1     # every planned model not yet trained
    python -m engine.zoo.ensemble --model fmnist-ens-vgg-2

They live in assets/models/ensemble/ with their own manifest (ensemble.json) and card (README.md), apart from the
zoo: they are not in the model registry (the pickers and the tests that loop over every model never see them),
only the source-count analyses load them, through `load`. Seeds start at 2: seed 0 makes the zoo's sources and
seed 1 its held-out judges. Narrower than the zoo's models and trained for fewer epochs, so that dozens train in
an hour on one CPU thread; same recipe otherwise (engine/zoo/train.py).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from engine.datasets import fashion_mnist
from engine.device import resolve
from engine.domains import FASHION_MNIST_NAME
from engine.models.fmnist_zoo import wrap
from engine.models.registry import apply_state_dict, load_state_dict_file
from engine.zoo import archs, manifest, train

DIR = manifest.MODELS_DIR / "ensemble"
DOMAIN = FASHION_MNIST_NAME
MANIFEST = DIR / "ensemble.json"
# (arch, width, epochs): a width the zoo's builders take, sized so one epoch takes about a minute on one thread.
FAMILIES = {
    "lenet": (6, 2),
    "mlp": (128, 4),
    "vgg": (8, 1),
    "resnet": (8, 1),
    "densenet": (12, 1),
    "mobilenet": (8, 1),
}
SEEDS = range(2, 8)
# Seed-major, so that a run stopped part way has every family.
PLAN: list[tuple[str, int, int, int]] = [(a, s, *FAMILIES[a]) for s in SEEDS for a in FAMILIES]


def model_name(arch: str, seed: int) -> str:
    return f"fmnist-ens-{arch}-{seed}"


def read() -> dict[str, dict]:
    return manifest.read(MANIFEST)


def names() -> list[str]:
    """The trained ensemble models, in plan order."""
    done = read()
    return [n for n in (model_name(a, s) for a, s, *_ in PLAN) if n in done]


def load(name: str, device=None):
    """An ensemble model as the engine's classifier (frozen, eval mode)."""
    entry = read().get(name)
    if entry is None:
        raise ValueError(f"{name} is not in {MANIFEST.name}; trained: {', '.join(names()) or 'none'}")
    net = _network(entry["arch"], entry["width"], name, DIR / entry["file"])
    return wrap(net, entry["arch"], name).to(resolve(device))


def _network(arch: str, width: int, name: str, path) -> torch.nn.Module:
    net, _, _ = archs.build(arch, width)
    state = load_state_dict_file(path, name)
    apply_state_dict(net, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, name)
    return net.eval()


def pool(first: list[str], seed: int = 0) -> list[str]:
    """Source models for a source-count curve: `first` in its order, then the trained ensemble models in an order
    seeded over the whole plan, so the first k of any longer list are the same k models."""
    planned = [model_name(a, s) for a, s, *_ in PLAN]
    trained = set(names())
    order = np.random.default_rng(seed).permutation(len(planned)).tolist()
    return list(first) + [planned[i] for i in order if planned[i] in trained and planned[i] not in first]


def train_one(arch: str, seed: int, width: int, epochs: int, data, test, log=print) -> dict:
    name = model_name(arch, seed)
    net, seconds = train.fit(arch, seed, epochs, data, test, log, name=name, width=width)
    DIR.mkdir(parents=True, exist_ok=True)
    path = DIR / f"{name}.pt"
    torch.save(train.half_state(net), path)
    check = _network(arch, width, name, path)  # scored on what is committed: the float16 weights reloaded
    entry = {"name": name, "arch": arch, "width": width, "seed": seed, "role": "ensemble"}
    entry.update(train.measured(check, path, epochs, seconds, test))
    manifest.write_entry(entry, MANIFEST)
    log(f"{name}: saved {path.name} ({entry['bytes'] / 1024:.0f} KB), test accuracy {entry['test_accuracy']:.4f}")
    return entry


def card() -> str:
    rows = read()
    lines = [
        "# Fashion-MNIST averaging ensemble",
        "",
        "Source models for noisy multi-model averaging over many models (the source-count curve of",
        "`python -m engine strength|recognizability --source-counts ...`). Trained here on one CPU thread by",
        "`python -m engine.zoo.ensemble --all --threads 1` with the zoo's recipe (engine/zoo/train.py: AdamW,",
        "one-cycle learning rate, batch 128, no augmentation), narrower and for fewer epochs than the zoo's",
        "models. Seeds start at 2 (the zoo's seed 0 models are its sources, seed 1 its held-out judges). Float16",
        "weights; accuracies measured on them. Not in the model registry: load with",
        '`engine.zoo.ensemble.load("<name>")`. Generated from `ensemble.json` by',
        "`python -m engine.zoo.ensemble --card`.",
        "",
        "| name | architecture | width | seed | epochs | parameters | file size | test accuracy (10,000) "
        "| training time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        lines.append(
            f"| {r['name']} | {r['arch']} | {r['width']} | {r['seed']} | {r['epochs']} | {r['params']:,} | "
            f"{r['bytes'] / 1024:.0f} KB | {r['test_accuracy']:.2%} | {r['train_seconds'] / 60:.1f} min "
            f"({r['threads']} thread{'s' if r['threads'] > 1 else ''}) |"
        )
    total = sum(r["bytes"] for r in rows.values())
    accuracy = [r["test_accuracy"] for r in rows.values()]
    lines += [
        "",
        f"{len(rows)} models, {total / 2**20:.2f} MB of weights, "
        f"{sum(r['train_seconds'] for r in rows.values()) / 60:.0f} min of training (wall time on the shared "
        f"2-core machine)" + (f"; test accuracy {min(accuracy):.2%} to {max(accuracy):.2%}." if accuracy else "."),
        "Training logs: train*.log (two processes, one thread each, one from each end of the plan).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the averaging ensemble")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="every planned model not yet in ensemble.json")
    group.add_argument("--model", nargs="+", help="these planned models (retrained)")
    group.add_argument("--card", action="store_true", help="only rewrite README.md from ensemble.json")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--reverse", action="store_true", help="with --all, from the end of the plan (a second process meets the first)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = {model_name(a, s): (a, s, w, e) for a, s, w, e in PLAN}
    if not args.card:
        unknown = [m for m in args.model or [] if m not in plan]
        if unknown:
            print(f"error: {unknown[0]} is not in the plan: {', '.join(plan)}", file=sys.stderr)
            return 2
        todo = args.model or [n for n in plan if n not in read()][:: -1 if args.reverse else 1]
        data, test = fashion_mnist.train_split(), fashion_mnist.test_split()
        start = time.perf_counter()
        for name in todo:
            if not args.model and name in read():  # another process trained it meanwhile
                continue
            train_one(*plan[name], data, test, log=lambda m: print(m, flush=True))
            (DIR / "README.md").write_text(card())
        print(f"trained {len(todo)} models in {time.perf_counter() - start:.0f} s", flush=True)
    (DIR / "README.md").write_text(card())
    return 0


if __name__ == "__main__":
    sys.exit(main())
