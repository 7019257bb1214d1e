"""The Mask-FGSM paper's comparison table (Yu 2022): FGSM, JSMA, DeepFool and Mask-FGSM by success, L0 and SSIM.

Two L0 columns: `l0_pct`, the share of pixels changed by at least half an 8-bit
level (what survives saving a PNG; the measure the rest of the app reports),
and `l0_any_pct`, the share of pixels changed at all (the paper's ‖δ‖₀). JSMA is
targeted; it aims at each image's runner-up class, the nearest target, so its
row is comparable with the untargeted rows.
"""

from __future__ import annotations

import torch

from engine import attacks, targets
from engine.metrics import perturbation_report

# ε comes from the model's domain (0.03 on photos, 0.2 on Fashion-MNIST) unless a variant says otherwise.
DEFAULT_VARIANTS: list[tuple[str, dict]] = [
    ("fgsm", {}),
    ("jsma", {"max_distortion": 0.1, "candidates": 128}),
    ("deepfool", {}),
    ("maskfgsm", {"p_th": 0.5, "steps": 10, "tau": 20.0}),
]
FEATURES_PER_PAIR = 5000  # on photos JSMA changes one pair per 5,000 features per step (~30 on 224×224×3)


def comparison_table(
    model, x: torch.Tensor, y: torch.Tensor | None = None, variants: list[tuple[str, dict]] | None = None, seed: int = 0
) -> list[dict]:
    """One row per (method, parameters): success rate, mean L0 (two ways), SSIM, L2 and seconds."""
    variants = DEFAULT_VARIANTS if variants is None else variants
    nearest = targets.runner_up(model, x, exclude=y)  # y=None: the runner-up of each prediction
    rows = []
    for name, kw in variants:
        kw = dict(kw)
        if name == "jsma":
            kw.setdefault("pairs", max(1, x[0].numel() // FEATURES_PER_PAIR))
        target = nearest if name == "jsma" else None
        result = attacks.run(name, model, x, y=y, target=target, seed=seed, **kw)
        report = perturbation_report(x, result.x_adv)
        any_change = (result.delta != 0).any(dim=1).flatten(1).float().mean(1) * 100.0
        rows.append(
            {
                "method": name,
                "params": kw,
                "images": int(x.shape[0]),
                "success_rate": result.success_rate,
                "l0_pct": sum(r["l0_pct"] for r in report) / len(report),
                "l0_any_pct": float(any_change.mean()),
                "ssim": sum(r["ssim"] for r in report) / len(report),
                "l2": sum(r["l2"] for r in report) / len(report),
                "seconds": result.seconds,
            }
        )
    return rows
