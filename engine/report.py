"""One attack run as plain, JSON-ready numbers: what the CLI prints and the app downloads."""
from __future__ import annotations

import platform

import torch

from engine.attacks import AttackResult
from engine.metrics import perturbation_report, topk


def environment(device: torch.device | str) -> dict:
    """Versions and device, so a saved result says how to reproduce it."""
    import torchvision

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }


def summarize(result: AttackResult, model, k: int = 5) -> list[dict]:
    """Per example: top-k before/after, success, L0 %/L2/L∞/SSIM, iterations, queries."""
    clean = topk(result.logits_clean, model.class_names, k)
    adv = topk(result.logits_adv, model.class_names, k)
    sizes = perturbation_report(result.x, result.x_adv)
    rows = []
    for i in range(result.x.shape[0]):
        row = {
            "label": int(result.y[i]),
            "label_name": model.class_names[int(result.y[i])],
            "target": None if result.target is None else int(result.target[i]),
            "target_name": None if result.target is None else model.class_names[int(result.target[i])],
            "clean_top5": clean[i],
            "adversarial_top5": adv[i],
            "success": bool(result.success[i]),
            "iterations": int(result.iterations[i]),
            "queries": None if result.queries is None else int(result.queries[i]),
        }
        row.update(sizes[i])
        rows.append(row)
    return rows


def run_record(result: AttackResult, model) -> dict:
    """The whole run: attack, parameters, seed, timing, environment and per-example rows."""
    return {
        "model": model.name,
        "precision": getattr(model, "precision", "fp32"),
        "attack": result.attack,
        "params": result.params,
        "seed": result.seed,
        "seconds": round(result.seconds, 4),
        "stopped_early": result.stopped_early,
        "environment": environment(result.x.device),
        "examples": summarize(result, model),
    }
