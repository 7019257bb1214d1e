"""The model card (assets/models/README.md), generated from zoo.json so it cannot drift."""

from __future__ import annotations

from engine.zoo import manifest
from engine.zoo.archs import CONVOLUTIONAL


def render() -> str:
    rows = manifest.read()
    lines = [
        "# Fashion-MNIST model zoo",
        "",
        "Trained here on the CPU by `python -m engine.zoo.train --all` (engine/zoo/train.py: AdamW, one-cycle",
        "learning rate, batch 128, no augmentation, inputs normalised with the training mean/std). Weights are",
        "float16 state dicts read with `torch.load(..., weights_only=True)`; accuracies are measured on those",
        "committed weights. *Role*: `source` models are white-box / averaging models, `test` models are held out",
        "(as Menn 2023 holds test models out); `robust` models are adversarially trained twins of source models (same",
        "architecture and seed; FGSM from a random start at the ε shown, `python -m engine.zoo.train --model",
        "fmnist-lenet-robust-0`). PGD-20: accuracy under L∞ PGD with 20 steps and a random start, on the first",
        "1,000 test images (`python -m engine.zoo.train --rescore`). Load any of them with "
        '`engine.models.load("<name>")`.',
        "Generated from `zoo.json` by `python -m engine.zoo.card`.",
        "",
        "| name | architecture | role | seed | epochs | parameters | file size | test accuracy (10,000) | accuracy "
        "on slice 0:500 "
        "| PGD-20 ε 0.1 | PGD-20 ε 0.2 | training time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    total_bytes = total_seconds = 0
    for r in rows.values():
        total_bytes += r["bytes"]
        total_seconds += r["train_seconds"]
        kind = r["arch"] + ("" if r["arch"] in CONVOLUTIONAL else " (not a CNN)")
        role = r["role"] + (
            f" (trained at ε {r['adversarial_training']['eps']})" if "adversarial_training" in r else ""
        )
        pgd = r.get("pgd20_accuracy", {})
        lines.append(
            f"| {r['name']} | {kind} | {role} | {r['seed']} | {r['epochs']} | {r['params']:,} | "
            f"{r['bytes'] / 1024:.0f} KB | {r['test_accuracy']:.2%} | {r['slice500_accuracy']:.2%} | "
            + " | ".join(f"{pgd[e]:.2%}" if e in pgd else "—" for e in ("0.1", "0.2"))
            + " | "
            f"{r['train_seconds'] / 60:.1f} min ({r['threads']} thread{'s' if r['threads'] > 1 else ''}) |"
        )
    lines += [
        "",
        f"{len(rows)} models, {total_bytes / 2**20:.2f} MB of weights, {total_seconds / 60:.0f} min of training "
        "in all: wall time on the 2-core machine, most models trained two at a time with one thread each while\n"
        "other jobs ran, so a model alone trains faster. Training logs: train*.log.",
        "",
    ]
    return "\n".join(lines)


def write() -> None:
    (manifest.MODELS_DIR / "README.md").write_text(render())


if __name__ == "__main__":
    write()
