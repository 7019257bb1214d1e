"""Perturbation sizes, image similarity and top-k predictions as plain numbers (L0 and SSIM are
the two measures the Mask-FGSM paper compares attacks by; docs/sources.md, Mask-FGSM)."""

from __future__ import annotations

import torch
from skimage.metrics import structural_similarity

# A pixel counts as changed when any channel moves by at least half an 8-bit level,
# i.e. when the change survives saving the image as a PNG.
L0_TOLERANCE = 0.5 / 255.0


def norms(delta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example L0 (% of pixels changed), L2 and L∞ of a batch of perturbations."""
    d = delta.detach()
    changed = (d.abs() >= L0_TOLERANCE).any(dim=1).flatten(1).float().mean(1) * 100.0
    flat = d.flatten(1)
    return {"l0_pct": changed, "l2": flat.norm(p=2, dim=1), "linf": flat.abs().amax(dim=1)}


def ssim(x: torch.Tensor, x_adv: torch.Tensor) -> list[float]:
    """Per-example SSIM (scikit-image, data range 1) between clean and adversarial images."""
    a = x.detach().float().cpu().numpy()
    b = x_adv.detach().float().cpu().numpy()
    out = []
    for xi, yi in zip(a, b):
        win = min(7, *xi.shape[1:]) | 1  # odd window that fits tiny images
        out.append(float(structural_similarity(xi, yi, data_range=1.0, channel_axis=0, win_size=win)))
    return out


def perturbation_report(x: torch.Tensor, x_adv: torch.Tensor) -> list[dict[str, float]]:
    n = norms(x_adv - x)
    s = ssim(x, x_adv)
    return [
        {"l0_pct": float(n["l0_pct"][i]), "l2": float(n["l2"][i]), "linf": float(n["linf"][i]), "ssim": s[i]}
        for i in range(x.shape[0])
    ]


def topk(logits: torch.Tensor, class_names: list[str], k: int = 5) -> list[list[dict]]:
    """Per example: the k most probable classes as {index, label, probability}."""
    probs = torch.softmax(logits.detach().float(), dim=1)
    vals, idx = probs.topk(min(k, probs.shape[1]), dim=1)
    vals, idx = vals.cpu().numpy(), idx.cpu().numpy()
    return [
        [{"index": int(j), "label": class_names[j], "probability": float(p)} for p, j in zip(pv, iv)]
        for pv, iv in zip(vals, idx)
    ]


def predict_labels(model, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """The model's predicted class for every image of `x`, in batches of `batch`."""
    with torch.no_grad():
        return torch.cat([model(x[lo : lo + batch]).argmax(1) for lo in range(0, x.shape[0], batch)])
