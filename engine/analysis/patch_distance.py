"""Attack position vs heat-map centre (Yu 2022, §3.2, Figs. 3–4).

One fixed noise patch (side `size` px, L∞ `amplitude`) is added to a photo at
distance d from its Grad-CAM centre in each of K evenly spread directions; the
model's answer is read at every placement. Per distance the curve holds the
mean and spread of the wrong-class confidence 1 − p(true) and of the margin
p(true) − max p(other) (the decision flips exactly where it is below 0), and the
share of placements that flip it. The control adds the same patch at uniformly
random positions, as many per photo as the photo had ring placements, so a
distance effect can be told from what any position does.

The centre is the heat map's peak (argmax of the upsampled map; the middle of a
flat top) by default: the one place the model leans on most. A weighted centroid is offered too, but it
falls between two hot regions when there are two (where the map may be cold) and
diffuse low heat pulls it towards the middle of the image, which would mix
"near the evidence" with "near the middle of the photo".

Only photos the model gets right count (their heat map is the true class's);
photos with an all-zero map have no centre and are left out too. A placement
whose patch would stick out of the image is skipped and counted per distance;
at d = 0 every direction is the same placement, which is counted once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine import domains
from engine.analysis.patch_photo import (
    angles,
    first_spot,
    patched_answer,
    photo_centre,
    ring_at,
    start_view,
    view_at,
)
from engine.analysis.patch_placements import (
    CENTRES,
    PATTERNS,
    Placements,
    answers,
    apply_patch,
    heat_centres,
    make_patch,
    patch_centre,
    random_positions,
    ring,
    top_left,
)
from engine.analysis.patch_results import (
    PatchDistance,
    answer_stats,
    counted_sentence,
    curve,
    nearest,
    over_random,
    spearman,
    summary,
    table_rows,
)
from engine.heatmaps import grad_cam

# The experiment's pieces live in patch_placements, patch_results and patch_photo; callers keep importing them
# from here, the experiment's one entry point.
__all__ = [
    "BATCH",
    "CENTRES",
    "PATTERNS",
    "Placements",
    "PatchDistance",
    "spaced",
    "defaults",
    "seconds",
    "check_settings",
    "heat_centres",
    "make_patch",
    "top_left",
    "patch_centre",
    "ring",
    "random_positions",
    "apply_patch",
    "answers",
    "evaluate",
    "curve",
    "over_random",
    "nearest",
    "spearman",
    "heat_maps",
    "patch_distance",
    "photo_centre",
    "ring_at",
    "first_spot",
    "patched_answer",
    "summary",
    "angles",
    "view_at",
    "counted_sentence",
    "table_rows",
    "start_view",
]

BATCH = 32  # placements per forward pass: one batch of 224-px photos stays well under a GB on a CPU


def spaced(reach: float, count: int) -> list[float]:
    """`count` distances from 0 out to `reach`, evenly spaced, in whole pixels (repeats dropped)."""
    if reach < 0 or count < 1:
        raise ValueError(f"the farthest distance must be ≥ 0 and the count ≥ 1, got {reach} and {count}")
    return sorted({float(round(v)) for v in np.linspace(0, reach, int(count))})


def defaults(model) -> dict:
    """The domain's starting settings in pixels of this model's input: patch side, distances from 0 out to
    the reach, directions, amplitude and the number of photos."""
    own = domains.of(model).defaults["patch"]
    side = min(model.input_size[1:])
    return {
        "size": max(1, round(own["size"] * side)),
        "amplitude": own["amplitude"],
        "distances": spaced(round(own["reach"] * side), own["distances"]),
        "directions": own["directions"],
        "images": own["images"],
    }


def seconds(model, images: int, distances, directions: int, batch_size: int = BATCH) -> float:
    """At most how long the experiment takes here: every ring placement kept, as many random ones, and the
    heat maps (a forward is about a third of engine.cost's forward-and-backward pass)."""
    from engine import cost

    per_photo = sum(1 if float(d) == 0 else int(directions) for d in distances)
    forwards = 2 * images * per_photo
    return cost.pass_seconds(model, batch_size) * (
        math.ceil(forwards / batch_size) / 3 + math.ceil(images / batch_size)
    )


def check_settings(
    size: int, amplitude: float, distances, directions: int, shape: tuple[int, int], batch_size: int = BATCH
) -> None:
    """Clear errors for settings the experiment cannot run with."""
    h, w = shape
    if not 1 <= int(size) <= min(h, w):
        raise ValueError(f"patch size must be between 1 and {min(h, w)} px (the image is {h}×{w}), got {size}")
    if not 0 < float(amplitude) <= 1:
        raise ValueError(f"amplitude must be in (0, 1] (pixels are on the 0-1 scale), got {amplitude}")
    if len(distances) == 0:
        raise ValueError("give at least one distance")
    if any(float(d) < 0 or not math.isfinite(float(d)) for d in distances):
        raise ValueError(f"distances must be finite and ≥ 0 px, got {[float(d) for d in distances]}")
    if int(directions) < 1:
        raise ValueError(f"directions must be at least 1, got {directions}")
    if int(batch_size) < 1:
        raise ValueError(f"the batch size must be at least 1, got {batch_size}")


def evaluate(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    patch: torch.Tensor,
    placed: Placements,
    batch_size: int = BATCH,
    callback=None,
) -> dict[str, torch.Tensor]:
    """The model's answers at every placement (CPU tensors), one forward per batch; `done` is how many
    placements ran before a stop (the rest hold NaN)."""
    n = len(placed)
    out = {
        "p_true": torch.full((n,), float("nan")),
        "margin": torch.full((n,), float("nan")),
        "predicted": torch.full((n,), -1, dtype=torch.long),
    }
    batches = max(1, math.ceil(n / batch_size))
    done = 0
    for i, start in enumerate(range(0, n, batch_size)):
        j = slice(start, min(start + batch_size, n))
        xs = apply_patch(x, patch, placed.image[j], placed.top[j], placed.left[j])
        with torch.no_grad():
            got = answers(model(xs), y[placed.image[j].to(y.device)])
        for k, v in got.items():
            out[k][j] = v.cpu()
        done = j.stop
        if callback is not None and callback(i + 1, batches, {"placements": done}) is False:
            break
    out["done"] = torch.tensor(done)
    return out


def heat_maps(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = BATCH) -> torch.Tensor:
    """Grad-CAM of each photo's class at the model's Grad-CAM layer, in batches (N×H×W, on x's device)."""
    return torch.cat(
        [grad_cam(model, x[i : i + batch_size], target=y[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    )


def patch_distance(
    model,
    x: torch.Tensor,
    y: torch.Tensor | None,
    *,
    size: int,
    amplitude: float,
    distances,
    directions: int = 8,
    pattern: str = "sign",
    centre: str = "peak",
    seed: int = 0,
    batch_size: int = BATCH,
    callback=None,
) -> PatchDistance:
    """The whole experiment on photos x (labels y; None: the model's own answers) on the model's device.

    `callback` (engine.progress) runs over the batches of placements. Each photo's ring placements are
    followed by its control ones, so a stop keeps the photos whose placements all ran."""
    h, w = x.shape[-2:]
    check_settings(size, amplitude, distances, directions, (h, w), batch_size)
    size, amplitude, distances = int(size), float(amplitude), [float(d) for d in distances]
    x = x.to(model.device)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1) if y is None else y.to(model.device)
    clean = answers(logits, y)
    correct = (clean["predicted"] == y).cpu()
    centres_all = torch.full((x.shape[0], 2), float("nan"))
    if bool(correct.any()):
        chosen = correct.to(x.device)
        centres_all[correct] = heat_centres(heat_maps(model, x[chosen], y[chosen], batch_size), centre).cpu()
    counted = (~torch.isnan(centres_all[:, 0])).nonzero().squeeze(1)
    centres, clean_p = centres_all[counted], clean["p_true"].cpu()[counted]
    xs, ys = x[counted.to(x.device)], y[counted.to(x.device)]
    patch = make_patch(x.shape[1], size, amplitude, pattern, seed)

    placed, skipped = ring(centres, distances, directions, size, (h, w))
    control = random_positions(torch.bincount(placed.image, minlength=counted.numel()), centres, size, (h, w), seed)
    is_ring = torch.cat([torch.ones(len(placed), dtype=torch.bool), torch.zeros(len(control), dtype=torch.bool)])
    both = Placements(*(torch.cat([getattr(placed, f), getattr(control, f)]) for f in Placements.__dataclass_fields__))
    order = torch.argsort(both.image * 2 + (~is_ring).long(), stable=True)
    both, is_ring = both.take(order), is_ring[order]
    got = evaluate(model, xs, ys, patch.to(x.device), both, batch_size, callback)
    ends = torch.cumsum(torch.bincount(both.image, minlength=counted.numel()), 0)  # one past each photo's last
    finished_photo = ends <= int(got["done"])
    finished = finished_photo[both.image]
    ring_p, ctrl_p = both.take(finished & is_ring), both.take(finished & ~is_ring)
    ring_a = {k: v[finished & is_ring] for k, v in got.items() if k != "done"}
    ctrl_a = {k: v[finished & ~is_ring] for k, v in got.items() if k != "done"}

    groups = nearest(ring_p.distance, distances)
    rows = curve(
        distances,
        groups,
        ring_a["p_true"],
        ring_a["margin"],
        clean_p[ring_p.image],
        skipped[finished_photo].sum(0).tolist(),
    )
    paired = over_random(
        groups,
        ring_p.image,
        clean_p[ring_p.image] - ring_a["p_true"],
        ctrl_p.image,
        clean_p[ctrl_p.image] - ctrl_a["p_true"],
        int(finished_photo.sum()),
        len(distances),
    )
    rows = [{**r, **q} for r, q in zip(rows, paired)]
    ctrl_rows = curve(
        distances, nearest(ctrl_p.distance, distances), ctrl_a["p_true"], ctrl_a["margin"], clean_p[ctrl_p.image]
    )
    summary = {
        **answer_stats(ctrl_a["p_true"], ctrl_a["margin"], clean_p[ctrl_p.image]),
        "distance_mean": float(ctrl_p.distance.mean()) if len(ctrl_p) else None,
    }
    # The drop of p(true) from each photo's own clean value: photos' different baselines do not mix into ρ.
    correlation = {
        "ring": spearman(ring_p.distance, clean_p[ring_p.image] - ring_a["p_true"]),
        "control": spearman(ctrl_p.distance, clean_p[ctrl_p.image] - ctrl_a["p_true"]),
    }
    settings = {
        "model": model.name,
        "size": size,
        "amplitude": amplitude,
        "distances": distances,
        "directions": int(directions),
        "pattern": pattern,
        "centre": centre,
        "seed": int(seed),
        "image_side": [int(h), int(w)],
        "patch_share": size * size / (h * w),
        "photos": int(x.shape[0]),
        "photos_counted": int(finished_photo.sum()),
    }
    photos = [
        {
            "index": i,
            "label": int(y[i]),
            "p_true": round(float(clean["p_true"][i]), 4),
            "centre": None if bool(torch.isnan(centres_all[i, 0])) else [round(float(v), 2) for v in centres_all[i]],
            "reason": None
            if not bool(torch.isnan(centres_all[i, 0]))
            else "misclassified before the patch"
            if not bool(correct[i])
            else "all-zero heat map: no centre",
        }
        for i in range(x.shape[0])
    ]
    return PatchDistance(
        settings,
        photos,
        rows,
        summary,
        [r for r in ctrl_rows if r["n"]],
        correlation,
        stopped_early=not bool(finished_photo.all()),
        patch=patch,
        centres=centres[finished_photo],
        counted=counted[finished_photo],
        ring=ring_p,
        ring_answers=ring_a,
        random=ctrl_p,
        random_answers=ctrl_a,
    )
