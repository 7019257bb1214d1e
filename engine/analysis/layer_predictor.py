"""Which layer should the Activation Attack target? The per-layer analyses of Inkawhich et al. (2019) side by side.

For every catalogue layer of the white-box model, on the same images:

- separability: between-class over within-class angle of clean features (engine.analysis.features);
- class distance: in the top-2 PCA plane of the images' clean layer-L features, the distance between the
  centroid of each image's own class and that of the target class AA is given, averaged over the images
  (zero when the target is the source class); `class_distance_rel` divides it by the plane's RMS spread so
  that layers compare;
- travel: how far AA moved each image in that plane (the paper's Fig 5, blue), and in pixels (red);
- tSuc (and the other transfer metrics) of AA at that layer on every black-box model, exactly as the
  transfer layer sweep computes them (same targets, same target images).

The paper's claim: the layers with well separated classes, whose AA examples travel far in the plane while
staying close in pixels, are the ones whose examples transfer, whatever the black-box model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.decomposition import PCA

from engine import progress, targets
from engine.analysis import transfer
from engine.analysis.features import separability
from engine.analysis.target_images import TargetBank, features, target_bank


def class_distance(f: np.ndarray, y: np.ndarray, target: np.ndarray) -> dict:
    """Mean distance between the PCA-plane centroids of each image's class and its target class.

    `f`: clean features (N×D) of the images, `y` their classes, `target` each image's target class.
    The plane is the top-2 principal components of `f` itself.
    """
    plane = PCA(n_components=2, random_state=0).fit(f)
    points = plane.transform(f)
    centroid = {c: points[y == c].mean(0) for c in np.unique(y)}
    # A target class with no image here has no centroid: those images are left out, not guessed.
    kept = np.array([t in centroid for t in target])
    gaps = np.array([np.linalg.norm(centroid[s] - centroid[t]) for s, t in zip(y[kept], target[kept])])
    spread = float(np.sqrt(((points - points.mean(0)) ** 2).sum(1).mean()))
    mean = float(gaps.mean()) if gaps.size else None
    return {
        "class_distance": mean,
        "class_distance_rel": None if mean is None or spread == 0 else mean / spread,
        "plane": plane,
        "spread": spread,
    }


def _layer_bank(white, bank, layer: int) -> TargetBank | tuple:
    if isinstance(bank, TargetBank):
        return bank if bank.layer == layer else target_bank(white, bank.x, bank.y, layer)
    return target_bank(white, *bank, layer)


def layer_predictor(
    white,
    blacks: Sequence,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    seed: int = 0,
    bank: tuple[torch.Tensor, torch.Tensor] | None = None,
    layers: Sequence[int] | None = None,
    target_image: str = targets.FARTHEST,
    callback: progress.Callback | None = None,
) -> dict:
    """One row per layer: separability, class distance, AA's travel, and AA's transfer metrics per black box.

    `bank` as in engine.analysis.transfer (default: the images the white box classifies correctly). Once
    `callback` returns False the finished layers' rows come back with `"stopped": True`.
    """
    layers = list(range(len(white.layers()))) if layers is None else [white.layer(i).index for i in layers]
    given = targets.bank(white, x, y) if bank is None else bank
    sep = {r["layer"]: r for r in separability(white, x, y, [None, *layers])}
    rows, stopped = [], []

    def watch(step, total, state):
        go = callback(step, total, state)
        if go is False:
            stopped.append(True)
        return go

    y_np = y.cpu().numpy()
    labels = transfer.clean_labels(white, blacks, x)  # every layer's AA starts from the same clean images
    for i, layer in enumerate(layers):
        x_adv, target, _ = transfer.adversarial(
            white,
            "aa",
            x,
            y,
            seed=seed,
            bank=_layer_bank(white, given, layer),
            target_image=target_image,
            callback=progress.part(watch if callback else None, i, len(layers), layer=layer),
            eps=eps,
            steps=steps,
            layer=layer,
        )
        if stopped:
            break
        clean = features(white, x, layer).double().cpu().numpy()
        found = class_distance(clean, y_np, target.cpu().numpy())
        moved = found["plane"].transform(features(white, x_adv, layer).double().cpu().numpy())
        travel = np.linalg.norm(moved - found["plane"].transform(clean), axis=1)
        scores = transfer.score_blacks(white, blacks, x, y, x_adv, target, labels)
        s = sep[layer]
        rows.append(
            {
                "layer": layer,
                "name": s["name"],
                "separability": s["ratio"],
                "within": s["within"],
                "between": s["between"],
                "class_distance": found["class_distance"],
                "class_distance_rel": found["class_distance_rel"],
                "travel": float(travel.mean()),
                "travel_rel": float(travel.mean()) / found["spread"] if found["spread"] else None,
                "pixel_l2": float((x_adv - x).flatten(1).norm(dim=1).mean()),
                "black": {b.name: m for b, m in zip(blacks, scores)},
                "tSuc": float(np.mean([m["tSuc"] or 0.0 for m in scores])) if scores else None,
                # On the white box itself, over the images it classifies correctly (with or without black boxes).
                "white_tSuc": transfer.score_blacks(white, [white], x, y, x_adv, target, labels[:1] * 2)[0]["tSuc"],
            }
        )
    pixels = sep.get(-1)
    return {
        "white": white.name,
        "blacks": [b.name for b in blacks],
        "eps": eps,
        "steps": steps,
        "seed": seed,
        "images": int(x.shape[0]),
        "target_image": target_image,
        "input_separability": None if pixels is None else pixels["ratio"],
        "rows": rows,
        "stopped": bool(stopped),
    }


def seconds(white, images: int, eps: float, steps: int, layers: int | None = None) -> float:
    """Expected time of `layer_predictor` (its AA runs dominate) on `images` images here."""
    count = len(white.layers()) if layers is None else layers
    return transfer.plan_seconds(white, transfer.plan(["aa"], [eps], list(range(count))), images, steps)


def best_layers(found: dict) -> dict:
    """The layer each curve puts first: highest separability, class distance, travel, mean tSuc, and per black box."""
    rows = found["rows"]
    top = lambda key: max(rows, key=lambda r: -np.inf if r[key] is None else r[key])["layer"]  # noqa: E731
    return {
        "separability": top("separability"),
        "class_distance": top("class_distance_rel"),
        "travel": top("travel_rel"),
        "tSuc": top("tSuc"),
        "per_black": {b: max(rows, key=lambda r: r["black"][b]["tSuc"] or 0.0)["layer"] for b in found["blacks"]},
    }


def rank_agreement(found: dict, key: str) -> float | None:
    """Spearman correlation, over the layers, between curve `key` and the mean tSuc (None: too few layers)."""
    from scipy.stats import spearmanr

    pairs = [(r[key], r["tSuc"]) for r in found["rows"] if r[key] is not None and r["tSuc"] is not None]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return None
    return float(spearmanr(*zip(*pairs)).statistic)


def chart_rows(found: dict) -> list[dict]:
    """Long-form rows (layer, curve, value scaled to [0, 1] by the curve's own maximum) for one chart."""
    curves = {
        "separability": "separability",
        "class distance (PCA)": "class_distance_rel",
        "AA tSuc (mean over black boxes)": "tSuc",
    }
    out = []
    for label, key in curves.items():
        # An infinite separability (no spread within any class) has no place on a scaled axis.
        kept = [r for r in found["rows"] if r[key] is not None and np.isfinite(r[key])]
        top = max((r[key] for r in kept), default=0) or 1.0
        out += [{"layer": r["layer"], "curve": label, "value": r[key] / top, "raw": r[key]} for r in kept]
    return out


def _ranks(rho: float) -> str:
    return "as tSuc does" if rho >= 0.5 else "against tSuc" if rho <= -0.5 else "with little relation to tSuc"


def sentence(found: dict) -> str:
    """What the three curves say, in words: where each peaks, and whether the curves rank layers as tSuc does."""
    rows = found["rows"]
    if not rows:
        return "No layer finished: run it again to see the curves."
    best = best_layers(found)
    top = next(r for r in rows if r["layer"] == best["tSuc"])
    rho = {k: rank_agreement(found, k) for k in ("separability", "class_distance_rel")}
    agree = "; ".join(
        f"{label} ranks the layers {_ranks(v)} (Spearman ρ {v:+.2f})"
        for label, v in (("separability", rho["separability"]), ("the class distance", rho["class_distance_rel"]))
        if v is not None
    )
    judges = set(best["per_black"].values())
    per_black = (
        f" Every black box is hit most often from layer {best['tSuc']}."
        if judges == {best["tSuc"]}
        else " The best layer differs between black boxes ("
        + ", ".join(f"{b}: {layer}" for b, layer in best["per_black"].items())
        + ")."
        if len(best["per_black"]) > 1
        else ""
    )
    return (
        f"AA's targets reach the black boxes most often from layer {top['layer']} ({top['name']}, mean tSuc "
        f"{top['tSuc']:.0%}); classes lie furthest apart at layer {best['separability']} and the target class is "
        f"furthest from the source class at layer {best['class_distance']}"
        + (f"; {agree}." if agree else ".")
        + per_black
    )
