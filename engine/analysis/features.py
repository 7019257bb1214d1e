"""Per-layer feature analysis (after Inkawhich et al. 2019): class separability, a PCA plane, AA trajectories.

- separability: mean angular distance between feature vectors of *different*
  classes divided by the mean within a class (higher = classes lie apart);
  layer `None` is the input pixels, for comparison.
- PCA plane: the top-2 principal components (scikit-learn) of clean layer-L
  features of a reference set; clean, adversarial and target examples and
  every AA iterate are projected into it.
- distances: L2 in pixel space and Euclidean distance in the PCA plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA

from engine import attacks
from engine.analysis.target_images import features, features_of_layers


def angular_distances(f: torch.Tensor) -> torch.Tensor:
    """Pairwise angles between rows, in units of π (0 = same direction, 1 = opposite)."""
    unit = torch.nn.functional.normalize(f.double(), dim=1)
    return torch.arccos((unit @ unit.T).clamp(-1.0, 1.0)) / torch.pi


def separability(model, x: torch.Tensor, y: torch.Tensor, layers=None) -> list[dict]:
    """One row per layer (`None` = input pixels): within- and between-class angular distance and their ratio."""
    layers = [None, *range(len(model.layers()))] if layers is None else list(layers)
    same = y[:, None] == y[None, :]
    off_diagonal = ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    # The within-class angle is only measured on classes with two or more images.
    measured = int((torch.bincount(y.cpu()) >= 2).sum())
    hooked = [layer for layer in layers if layer is not None]
    found = dict(zip(hooked, features_of_layers(model, x, hooked))) if hooked else {}
    rows = []
    for layer in layers:
        angles = angular_distances(x.flatten(1) if layer is None else found[layer]).to(y.device)
        within = float(angles[same & off_diagonal].mean())
        between = float(angles[~same].mean())
        rows.append(
            {
                "layer": -1 if layer is None else model.layer(layer).index,
                "name": "input" if layer is None else model.layer(layer).name,
                "within": within,
                "between": between,
                "ratio": between / within if within > 0 else float("inf"),
                "classes_measured": measured,
            }
        )
    return rows


@dataclass
class Plane:
    """The top-2 PCA plane of clean features at one layer."""

    model: object
    layer: int
    pca: PCA

    @classmethod
    def fit(cls, model, x_ref: torch.Tensor, layer: int) -> Plane:
        f = features(model, x_ref, layer).double().cpu().numpy()
        return cls(model, layer, PCA(n_components=2, random_state=0).fit(f))

    def project(self, x: torch.Tensor) -> np.ndarray:
        return self.pca.transform(features(self.model, x, self.layer).double().cpu().numpy())

    @property
    def explained(self) -> list[float]:
        return [float(v) for v in self.pca.explained_variance_ratio_]


def aa_trajectory(
    model,
    plane: Plane,
    x: torch.Tensor,
    target_images: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    seed: int = 0,
    callback=None,
) -> dict:
    """Run AA at the plane's layer and return every iterate projected into the plane, plus distances.

    Points: `source`, `target` (N×2), `trajectory` (steps+1 × N × 2, step 0 = clean).
    Distances per example: pixel L2 from the source (adversarial and target image) and, in the
    plane, from the adversarial point to the target point before and after the attack.
    """
    iterates = [x.detach().clone()]

    def record(step, total, state):
        iterates.append(state["x_adv"].detach().clone())
        return None if callback is None else callback(step, total, state)

    result = attacks.run(
        "aa", model, x, target_images=target_images, eps=eps, steps=steps, layer=plane.layer, seed=seed, callback=record
    )
    trajectory = np.stack([plane.project(it) for it in iterates])
    source, target = trajectory[0], plane.project(target_images)
    final = plane.project(result.x_adv)
    return {
        "result": result,
        "source": source,
        "target": target,
        "adversarial": final,
        "trajectory": trajectory,
        "pixel_l2_adversarial": (result.x_adv - x).flatten(1).norm(dim=1).tolist(),
        "pixel_l2_target": (target_images - x).flatten(1).norm(dim=1).tolist(),
        "plane_distance_before": np.linalg.norm(source - target, axis=1).tolist(),
        "plane_distance_after": np.linalg.norm(final - target, axis=1).tolist(),
    }


def separability_sentence(rows: list[dict]) -> str:
    """What a separability curve says, in one sentence: where classes lie furthest apart, against the pixels."""
    usable = [r for r in rows if r["ratio"] is not None and np.isfinite(r["ratio"])]
    layers = [r for r in usable if r["layer"] >= 0]
    if not layers:
        return "Separability is not defined for these reference images (too few images per class)."
    best = max(layers, key=lambda r: r["ratio"])
    pixels = next((r for r in usable if r["layer"] < 0), None)
    against = "" if pixels is None else f", against {pixels['ratio']:.2f} on the input pixels"
    trend = (
        ""
        if pixels is None
        else (
            ": the network's layers pull the classes apart"
            if best["ratio"] > pixels["ratio"]
            else ": on these images no layer separates the classes better than the pixels do"
        )
    )
    return (
        f"Classes lie furthest apart at layer {best['layer']} ({best['name']}), separability "
        f"{best['ratio']:.2f}{against}{trend}."
    )


def trajectory_sentence(traj: dict, target_name: str) -> str:
    """What the AA trajectory on the PCA plane shows, in one sentence (the first image of `traj`)."""
    before, after = traj["plane_distance_before"][0], traj["plane_distance_after"][0]
    moved, apart = traj["pixel_l2_adversarial"][0], traj["pixel_l2_target"][0]
    if after >= before:
        return (
            f"AA did not move the image towards the target image ({target_name}) in this layer's features "
            f"(plane distance {before:.2f} → {after:.2f}): a larger ε or more steps give it room."
        )
    return (
        f"AA moved the image towards the target image ({target_name}) in this layer's features (plane distance "
        f"{before:.2f} → {after:.2f}) by changing its pixels by an L2 of {moved:.2f}, "
        f"{moved / apart:.0%} of the {apart:.2f} between the two images: a small step in pixels is a long way "
        "in features."
    )
