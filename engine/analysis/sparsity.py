"""The Mask-FGSM paper's comparison table (Yu 2022): FGSM, JSMA, DeepFool and Mask-FGSM by success, L0 and SSIM.

Two L0 columns: `l0_pct`, the share of pixels changed by at least half an 8-bit
level (what survives saving a PNG; the measure the rest of the app reports),
and `l0_any_pct`, the share of pixels changed at all (the paper's ‖δ‖₀). JSMA is
targeted; it aims at each image's runner-up class, the nearest target, so its
row is comparable with the untargeted rows.
"""

from __future__ import annotations

import torch

from engine import attacks, images, progress, targets
from engine.metrics import perturbation_report

# ε comes from the model's domain (0.03 on photos, 0.2 on Fashion-MNIST) unless a variant says otherwise.
DEFAULT_VARIANTS: list[tuple[str, dict]] = [
    ("fgsm", {}),
    ("jsma", {"max_distortion": 0.1, "candidates": 128}),
    ("deepfool", {}),
    ("maskfgsm", {"p_th": 0.5, "steps": 10, "tau": 20.0}),
]
FEATURES_PER_PAIR = 5000  # on photos JSMA changes one pair per 5,000 features per step (~30 on 224×224×3)


def _row(model, x: torch.Tensor, y, name: str, kw: dict, *, target=None, seed: int = 0, callback=None):
    """(the table row, the attack's result) of one method on `x`."""
    result = attacks.run(name, model, x, y=y, target=target, seed=seed, callback=callback, **kw)
    report = perturbation_report(x, result.x_adv)
    any_change = (result.delta != 0).any(dim=1).flatten(1).float().mean(1) * 100.0
    row = {
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
    return row, result


def comparison_table(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    variants: list[tuple[str, dict]] | None = None,
    seed: int = 0,
    callback: progress.Callback | None = None,
) -> list[dict]:
    """One row per (method, parameters): success rate, mean L0 (two ways), SSIM, L2 and seconds. `callback`
    (engine.progress) runs over the methods; a cancelled method and the rest are left out."""
    return [row for row, _ in _compared(model, x, y, variants, seed, callback)]


def _compared(model, x, y, variants, seed, callback) -> list[tuple[dict, object]]:
    variants = DEFAULT_VARIANTS if variants is None else variants
    nearest = targets.runner_up(model, x, exclude=y)  # y=None: the runner-up of each prediction
    done = []
    for i, (name, kw) in enumerate(variants):
        kw = dict(kw)
        if name == "jsma":
            kw.setdefault("pairs", max(1, x[0].numel() // FEATURES_PER_PAIR))
        part = progress.part(callback, i, len(variants), method=name)
        row, result = _row(model, x, y, name, kw, target=nearest if name == "jsma" else None, seed=seed, callback=part)
        if result.stopped_early:
            break
        done.append((row, result))
    return done


# The paper's Fig. 5: one image, the untargeted attacks beside each other (JSMA is in its table, not the figure).
SIDE_BY_SIDE = [v for v in DEFAULT_VARIANTS if v[0] != "jsma"]


def side_by_side_seconds(model) -> float:
    """Expected time of `side_by_side` on one image: each method at its parameters (a cap where it stops early)."""
    from engine import cost

    return sum(cost.attack_seconds(model, name, 1, kw) for name, kw in SIDE_BY_SIDE)


def side_by_side(
    model, x: torch.Tensor, y: torch.Tensor | None = None, seed: int = 0, callback: progress.Callback | None = None
) -> dict:
    """FGSM, DeepFool and Mask-FGSM on one image (1×C×H×W), as the paper's Fig. 5 shows them: per method its
    `comparison_table` row, the adversarial image and the perturbation (uint8 pictures), and the class the model
    gives it, and `clean`, the class it gives the clean image. `cancelled` is True where `callback` stopped a
    method: the rows before it are kept."""
    found = _compared(model, x[:1], None if y is None else y[:1], SIDE_BY_SIDE, seed, callback)
    rows = [
        {
            **row,
            "adversarial": images.to_uint8(result.x_adv[0]),
            "perturbation": images.signed(result.delta[0]),
            "answer": int(result.logits_adv[0].argmax()),
        }
        for row, result in found
    ]
    clean = int(found[0][1].pred_clean[0]) if found else None
    return {"rows": rows, "clean": clean, "methods": len(SIDE_BY_SIDE), "cancelled": len(rows) < len(SIDE_BY_SIDE)}


# Heat-map thresholds of the trade-off sweep, loosest first.
P_THS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# Mask-FGSM as the comparison runs it (Algorithm 1, at most 10 passes, τ = 20 % of pixels).
LOOP = {k: v for k, v in DEFAULT_VARIANTS[-1][1].items() if k != "p_th"}


def mask_tradeoff(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    p_ths=P_THS,
    masks=("weighted",),
    seed: int = 0,
    callback: progress.Callback | None = None,
    **kw,
) -> list[dict]:
    """Mask-FGSM's L0 against its success as the threshold P_th tightens: plain FGSM first (the same ε), then
    one `comparison_table` row per (mask, P_th), each with `p_th` and `mask`. `kw`: further Mask-FGSM
    parameters (default `LOOP`). A cancelled point and the rest are left out."""
    kw = {**LOOP, **{k: v for k, v in kw.items() if v is not None}}
    variants = [("fgsm", {})] + [("maskfgsm", {**kw, "p_th": float(p), "mask": m}) for m in masks for p in p_ths]
    rows = comparison_table(model, x, y, variants, seed=seed, callback=callback)
    return [{**r, "p_th": r["params"].get("p_th"), "mask": r["params"].get("mask")} for r in rows]


def side_by_side_sentence(found: dict) -> str:
    """What the side-by-side says: how many pixels each method changed, and which fooled the model."""
    rows = {r["method"]: r for r in found["rows"]}
    if "maskfgsm" not in rows or "fgsm" not in rows:
        return ""
    mask, fgsm = rows["maskfgsm"], rows["fgsm"]
    verdict = "and still fools the model" if mask["success_rate"] == 1.0 else "but does not fool the model here"
    return (
        f"Mask-FGSM changes {mask['l0_pct']:.1f} % of the pixels where FGSM changes {fgsm['l0_pct']:.1f} % "
        f"(SSIM {mask['ssim']:.3f} against {fgsm['ssim']:.3f}) {verdict}; the paper reports 3.8 % against 100 % "
        "on ImageNet photos. A tighter P_th shrinks it further at the cost of success (the Mask-FGSM trade-off)."
    )
