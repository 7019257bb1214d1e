"""Train the Fashion-MNIST zoo. Deterministic from each model's seed.

    python -m engine.zoo.train --all                  # every model in PLAN not yet trained
    python -m engine.zoo.train --model fmnist-vgg-1   # one model (retrains it)
    python -m engine.zoo.train --model fmnist-lenet-robust-0   # an adversarially trained twin
    nohup python -m engine.zoo.train --all > train.log 2>&1 &

Each model: AdamW with a one-cycle learning rate, batch 128, no augmentation,
inputs normalised with the training set's mean/std (the Classifier wrapper does
the same at inference). Weights are saved as float16 state dicts; the accuracies
recorded in zoo.json are measured *after* the float16 round trip, i.e. on the
weights that are committed.

Robust models (role "robust") are the plain source models' twins (same architecture
and seed) trained on adversarial examples only: FGSM from a uniform random start in
the ε-ball with step 1.25·ε (Wong, Rice & Kolter 2020, "Fast is better than free"),
two passes per batch instead of PGD's eight. That recipe can collapse into
"catastrophic overfitting", where FGSM accuracy rises while PGD accuracy falls to
zero, so every epoch logs PGD-10 accuracy on 500 test images. The committed record
carries clean accuracy on the whole test split and PGD-20 accuracy at ε 0.1 and 0.2 on
its first ROBUST_EVAL_IMAGES images.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch
import torch.nn.functional as F

from engine.analysis.robust import pgd_accuracy
from engine.datasets import fashion_mnist
from engine.models import fmnist_zoo
from engine.zoo import archs, manifest

# (arch, seed, role, epochs[, training ε]). Sources are white-box/averaging models; "test" models are held out;
# "robust" models are adversarially trained twins of sources, neither sources nor judges.
# Batch-norm networks reach 90 % in 3 one-cycle epochs (the small DenseNet needs 5: 89.98 % after 3);
# LeNet and the MLP are cheap, so they get 15.
PLAN: list[tuple] = [
    ("lenet", 0, "source", 15),
    ("lenet", 1, "test", 15),
    ("densenet", 0, "source", 5),
    ("resnet", 0, "source", 3),
    ("vgg", 0, "source", 3),
    ("mlp", 0, "source", 15),
    ("mobilenet", 0, "source", 3),
    ("resnet", 1, "test", 3),
    ("vgg", 1, "test", 3),
    ("densenet", 1, "test", 5),
    ("lenet", 0, "robust", 15, 0.1),
    ("mlp", 0, "robust", 15, 0.1),
    ("vgg", 0, "robust", 3, 0.2),
]
ROBUST_EVAL_EPS = (0.1, 0.2)
ROBUST_EVAL_IMAGES = 1000
BATCH = 128
MAX_LR = 3e-3


def model_name(arch: str, seed: int, role: str = "source") -> str:
    return f"fmnist-{arch}-robust-{seed}" if role == "robust" else f"fmnist-{arch}-{seed}"


def fgsm_rs(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """The training examples of FGSM from a random start: one signed step of 1.25·ε from a uniform point of the
    ε-ball, projected back, in pixel space [0, 1]. Called in train mode, as the recipe does."""
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(net((x + delta - fashion_mnist.MEAN) / fashion_mnist.STD), y), delta)
    return (x + (delta + 1.25 * eps * grad.sign()).clamp(-eps, eps)).clamp(0, 1).detach()


def pgd20_scores(model, x: torch.Tensor, y: torch.Tensor) -> dict:
    """zoo.json's record of accuracy under the engine's PGD-20 at each of ROBUST_EVAL_EPS, on the first
    ROBUST_EVAL_IMAGES test images (the whole split takes minutes per model on two cores)."""
    rows = pgd_accuracy(model, x[:ROBUST_EVAL_IMAGES], y[:ROBUST_EVAL_IMAGES], ROBUST_EVAL_EPS, steps=20)
    return {
        "pgd20_accuracy": {str(r["eps"]): round(r["accuracy"], 4) for r in rows if r["eps"] > 0},
        "pgd20_images": ROBUST_EVAL_IMAGES,
    }


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for lo in range(0, x.shape[0], 1000):
            logits = net((x[lo : lo + 1000] - fashion_mnist.MEAN) / fashion_mnist.STD)
            correct += int((logits.argmax(1) == y[lo : lo + 1000]).sum())
    return correct / x.shape[0]


def half_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}


def fit(
    arch: str,
    seed: int,
    epochs: int,
    train,
    test=None,
    log=print,
    eps: float | None = None,
    name: str | None = None,
    width: int | None = None,
) -> tuple[torch.nn.Module, float]:
    """Train one network from its seed, on FGSM-RS examples at `eps` when given; returns it (eval mode) and the
    seconds it took. `width`: the architecture's channels, when not the zoo's."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    net, _, _ = archs.build(arch, width)
    x_train, y_train = train
    steps = epochs * ((x_train.shape[0] + BATCH - 1) // BATCH)
    opt = torch.optim.AdamW(net.parameters(), lr=MAX_LR, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    name = name or model_name(arch, seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(x_train.shape[0], generator=gen)
        running = 0.0
        for i, idx in enumerate(order.split(BATCH)):
            xb = x_train[idx] if eps is None else fgsm_rs(net, x_train[idx], y_train[idx], eps, gen)
            loss = F.cross_entropy(net((xb - fashion_mnist.MEAN) / fashion_mnist.STD), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
            if (i + 1) % 100 == 0:
                log(
                    f"{name} epoch {epoch + 1}/{epochs} batch {i + 1}: loss {running / 100:.4f} "
                    f"({time.perf_counter() - start:.0f} s)"
                )
                running = 0.0
        if test is not None:
            line = f"{name} epoch {epoch + 1}: test accuracy {accuracy(net, *test):.4f}"
            if eps is not None:  # catastrophic overfitting shows here first
                # A copy: the engine's classifier freezes its weights (attacks need input gradients only).
                scored = pgd_accuracy(
                    fmnist_zoo.wrap(copy.deepcopy(net), arch, name), test[0][:500], test[1][:500], [eps], steps=10
                )
                line += f", PGD-10 at ε {eps} on 500: {scored[-1]['accuracy']:.4f}"
            log(line)
    net.eval()
    return net, time.perf_counter() - start


def train_one(arch: str, seed: int, role: str, epochs: int, train, test, log=print, eps: float | None = None) -> dict:
    """Train, save the float16 weights under assets/models and record the model in zoo.json."""
    name = model_name(arch, seed, role)
    net, seconds = fit(arch, seed, epochs, train, test, log, eps=eps, name=name)
    path = manifest.MODELS_DIR / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(half_state(net), path)
    entry = record(arch, seed, role, epochs, seconds, test, eps)
    log(
        f"{name}: saved {path.name} ({entry['bytes'] / 1024:.0f} KB), test accuracy {entry['test_accuracy']:.4f}, "
        f"{seconds:.0f} s"
    )
    return entry


def measured(net: torch.nn.Module, path, epochs: int, seconds: float, test) -> dict:
    """A card's record of the weights saved at `path` and loaded into `net`: size, accuracy, training."""
    x_test, y_test = test
    return {
        "epochs": epochs,
        "params": sum(p.numel() for p in net.parameters()),
        "file": path.name,
        "bytes": path.stat().st_size,
        "test_accuracy": round(accuracy(net, x_test, y_test), 4),
        "slice500_accuracy": round(accuracy(net, x_test[:500], y_test[:500]), 4),
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def record(arch: str, seed: int, role: str, epochs: int, seconds: float, test, eps: float | None = None) -> dict:
    """zoo.json's entry for saved weights, measured on what is committed: the float16 weights reloaded into a
    fresh float32 network."""
    name = model_name(arch, seed, role)
    path = manifest.MODELS_DIR / f"{name}.pt"
    check, _, _ = archs.build(arch)
    check.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in torch.load(path, weights_only=True).items()}
    )
    x_test, y_test = test
    entry = {"name": name, "arch": arch, "seed": seed, "role": role, **measured(check, path, epochs, seconds, test)}
    if eps is not None:
        entry["adversarial_training"] = {
            "method": "FGSM from a random start",
            "eps": eps,
            "alpha": 1.25 * eps,
            "twin": model_name(arch, seed),
        }
    entry.update(pgd20_scores(fmnist_zoo.wrap(check, arch, name), x_test, y_test))
    manifest.write_entry(entry)
    return entry


def rescore(names: list[str]) -> int:
    """The PGD-20 record of `names` (default: the robust models and their plain twins) from the committed
    weights, so plain and robust twins are measured alike."""
    from engine import models
    from engine.zoo import card

    zoo = manifest.read()
    twins = {e["adversarial_training"]["twin"] for e in zoo.values() if "adversarial_training" in e}
    names = names or sorted(n for n, e in zoo.items() if n in twins or "adversarial_training" in e)
    unknown = [n for n in names if n not in zoo]
    if unknown:
        print(f"error: {unknown[0]} is not in zoo.json", file=sys.stderr)
        return 2
    x_test, y_test = fashion_mnist.test_split()
    for name in names:
        entry = manifest.read()[name]
        entry.update(pgd20_scores(models.load(name, device="cpu"), x_test, y_test))
        manifest.write_entry(entry)
        print(f"{name}: PGD-20 accuracy {entry['pgd20_accuracy']} on {entry['pgd20_images']} test images", flush=True)
    card.write()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the Fashion-MNIST model zoo")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", action="store_true", help="train every planned model not yet in zoo.json")
    group.add_argument("--model", nargs="+", help="train these planned models, e.g. fmnist-resnet-0")
    group.add_argument(
        "--rescore",
        nargs="*",
        metavar="NAME",
        help="recompute the PGD-20 accuracy record of these committed models (default: every robust "
        "model and its plain twin; no training)",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.rescore is not None:
        return rescore(args.rescore)
    try:
        train = fashion_mnist.train_split()
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.limit:
        train = (train[0][: args.limit], train[1][: args.limit])
    test = fashion_mnist.test_split()
    plan = {model_name(*row[:3]): row for row in PLAN}
    if args.model:
        unknown = [m for m in args.model if m not in plan]
        if unknown:
            print(f"error: {unknown[0]} is not in the plan: {', '.join(plan)}", file=sys.stderr)
            return 2
        todo = args.model
    else:
        done = manifest.read()
        todo = [n for n in plan if n not in done]
    total = time.perf_counter()
    for name in todo:
        arch, seed, role, epochs, *eps = plan[name]
        train_one(
            arch, seed, role, epochs, train, test, log=lambda m: print(m, flush=True), eps=eps[0] if eps else None
        )
    print(f"trained {len(todo)} models in {time.perf_counter() - total:.0f} s", flush=True)
    from engine.zoo import card

    card.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
