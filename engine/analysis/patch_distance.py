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
from dataclasses import dataclass, field

import numpy as np
import torch

from engine import domains
from engine.heatmaps import grad_cam

CENTRES = ("peak", "centroid")
PATTERNS = ("sign", "uniform")
BATCH = 32  # placements per forward pass: one batch of 224-px photos stays well under a GB on a CPU


@dataclass(frozen=True)
class Placements:
    """Where the patch goes: per placement its photo, top-left pixel, distance and direction (radians).

    Ring placements carry the requested distance; control placements their measured one (and no angle)."""

    image: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    distance: torch.Tensor
    angle: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.numel())

    def take(self, keep: torch.Tensor) -> Placements:
        return Placements(self.image[keep], self.top[keep], self.left[keep], self.distance[keep], self.angle[keep])


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


def heat_centres(maps: torch.Tensor, how: str = "peak") -> torch.Tensor:
    """(row, col) per N×H×W heat map: its peak or its weighted centroid; NaN for an all-zero map."""
    if how not in CENTRES:
        raise ValueError(f"unknown centre {how!r}; choose one of {', '.join(CENTRES)}")
    n, h, w = maps.shape
    flat = maps.flatten(1).float()
    top = flat.max(1, keepdim=True).values
    # A peak of an upsampled map is often a flat top of several pixels (a coarse cell's centre between two
    # pixels; an edge cell clamped out to the border): its middle, not argmax's first pixel.
    weight = (flat >= top - 1e-6).float() if how == "peak" else flat
    rows = torch.arange(h, device=maps.device, dtype=torch.float32).repeat_interleave(w)
    cols = torch.arange(w, device=maps.device, dtype=torch.float32).repeat(h)
    mass = weight.sum(1).clamp_min(1e-12)
    centre = torch.stack([(weight * rows).sum(1) / mass, (weight * cols).sum(1) / mass], 1)
    empty = top.squeeze(1) <= 0
    return torch.where(empty[:, None], torch.full_like(centre, float("nan")), centre)


def make_patch(channels: int, size: int, amplitude: float, pattern: str = "sign", seed: int = 0) -> torch.Tensor:
    """The one patch every placement uses (C×size×size, values within ±amplitude): seeded ±amplitude
    signs, or uniform noise in [−amplitude, amplitude]."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown patch pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    gen = torch.Generator().manual_seed(int(seed))
    if pattern == "sign":
        signs = torch.randint(0, 2, (channels, size, size), generator=gen).float() * 2 - 1
        return signs * float(amplitude)
    return (torch.rand((channels, size, size), generator=gen) * 2 - 1) * float(amplitude)


def top_left(centre_row, centre_col, distance, angle, size: int):
    """The patch's top-left pixel whose centre lies at `distance` from the centre in direction `angle`
    (0 = right, counter-clockwise on screen): each coordinate within half a pixel of the exact spot."""
    offset = (size - 1) / 2
    angle = torch.as_tensor(angle, dtype=torch.float64)
    # sin(π) is 1e-16 rather than 0: snapped, a spot exactly halfway between pixels rounds the same way (to even)
    # in every direction instead of by floating-point noise.
    sin, cos = (torch.where(v.abs() < 1e-12, torch.zeros_like(v), v) for v in (torch.sin(angle), torch.cos(angle)))
    row = torch.as_tensor(centre_row, dtype=torch.float64) - distance * sin - offset
    col = torch.as_tensor(centre_col, dtype=torch.float64) + distance * cos - offset
    return torch.round(row).long(), torch.round(col).long()


def patch_centre(top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    return torch.stack([top.float(), left.float()], -1) + (size - 1) / 2


def _inside(top, left, size: int, shape) -> torch.Tensor:
    h, w = shape
    return (top >= 0) & (left >= 0) & (top + size <= h) & (left + size <= w)


def ring(centres: torch.Tensor, distances, directions: int, size: int, shape) -> tuple[Placements, torch.Tensor]:
    """Every photo's placements at each distance in `directions` evenly spread directions, duplicates
    (same photo, distance and pixel) once; and per photo and distance (N×D) how many were skipped
    because the patch would leave the image."""
    d = torch.as_tensor([float(v) for v in distances], dtype=torch.float64)
    angles = torch.arange(int(directions), dtype=torch.float64) * (2 * math.pi / int(directions))
    n, nd, nk = centres.shape[0], d.numel(), angles.numel()
    grid = (n, nd, nk)
    rows, cols = (centres[:, i].cpu().view(n, 1, 1).expand(grid) for i in (0, 1))
    dd, aa = d.view(1, nd, 1).expand(grid), angles.view(1, 1, nk).expand(grid)
    top, left = top_left(rows, cols, dd, aa, size)
    image = torch.arange(n).view(n, 1, 1).expand(grid)
    which = torch.arange(nd).view(1, nd, 1).expand(grid)
    key = torch.stack([t.flatten() for t in (image, which, top, left)], 1)  # one row per (photo, distance, pixel)
    first = torch.zeros(key.shape[0], dtype=torch.bool)
    if key.shape[0]:
        unique, inverse = torch.unique(key, dim=0, return_inverse=True)
        earliest = torch.full((unique.shape[0],), key.shape[0], dtype=torch.long)
        first[earliest.scatter_reduce_(0, inverse, torch.arange(key.shape[0]), "amin")] = True
    inside = _inside(top, left, size, shape).flatten()
    skipped = (first & ~inside).view(grid).sum(2)
    keep = first & inside
    placed = Placements(*(t.flatten()[keep] for t in (image, top, left, dd.float(), aa.float())))
    return placed, skipped


def random_positions(counts: torch.Tensor, centres: torch.Tensor, size: int, shape, seed: int = 0) -> Placements:
    """`counts[i]` uniformly random placements of the patch inside photo i, with their distance from its centre."""
    h, w = shape
    gen = torch.Generator().manual_seed(int(seed) + 1)  # not the patch's stream: positions independent of its signs
    image = torch.repeat_interleave(torch.arange(counts.numel()), counts.cpu())
    top = torch.randint(0, h - size + 1, (image.numel(),), generator=gen)
    left = torch.randint(0, w - size + 1, (image.numel(),), generator=gen)
    distance = (patch_centre(top, left, size) - centres.cpu()[image]).norm(dim=-1)
    return Placements(image, top, left, distance, torch.full_like(distance, float("nan")))


def apply_patch(
    x: torch.Tensor, patch: torch.Tensor, image: torch.Tensor, top: torch.Tensor, left: torch.Tensor
) -> torch.Tensor:
    """x[image[j]] with the patch added at (top[j], left[j]), clamped to [0, 1]: one batch, no Python loop."""
    c, s = patch.shape[0], patch.shape[-1]
    device = x.device
    image, top, left = image.to(device), top.to(device), left.to(device)
    out = x[image].clone()
    span = torch.arange(s, device=device)
    b = torch.arange(image.numel(), device=device).view(-1, 1, 1, 1)
    ch = torch.arange(c, device=device).view(1, -1, 1, 1)
    rows = (top.view(-1, 1) + span).view(-1, 1, s, 1)
    cols = (left.view(-1, 1) + span).view(-1, 1, 1, s)
    out[b, ch, rows, cols] += patch.to(device=device, dtype=out.dtype)
    return out.clamp_(0, 1)


def answers(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """p(true), margin p(true) − max p(other) (below 0 exactly where the decision flips) and the predicted class."""
    p = torch.softmax(logits.float(), 1)
    p_true = p.gather(1, y.view(-1, 1)).squeeze(1)
    other = p.scatter(1, y.view(-1, 1), -1.0).max(1).values
    return {"p_true": p_true, "margin": p_true - other, "predicted": p.argmax(1)}


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


def _stats(p_true: torch.Tensor, margin: torch.Tensor, clean: torch.Tensor) -> dict:
    wrong = 1 - p_true
    n = int(p_true.numel())
    spread = lambda v: float(v.std(unbiased=False)) if n else None  # noqa: E731
    mean = lambda v: float(v.mean()) if n else None  # noqa: E731
    return {
        "n": n,
        "wrong_mean": mean(wrong),
        "wrong_std": spread(wrong),
        "margin_mean": mean(margin),
        "margin_std": spread(margin),
        "drop_mean": mean(clean - p_true),
        "success": float((margin < 0).float().mean()) if n else None,
    }


def curve(
    distances,
    groups: torch.Tensor,
    p_true: torch.Tensor,
    margin: torch.Tensor,
    clean_p: torch.Tensor,
    skipped: list[int] | None = None,
) -> list[dict]:
    """Per distance (groups[j] indexes `distances`): n, mean/std of 1 − p(true) and of the margin, the mean
    drop of p(true) from the clean photo, the share that flips the decision, and the skipped count."""
    rows = []
    for i, d in enumerate(distances):
        at = groups == i
        row = {"distance": float(d), **_stats(p_true[at], margin[at], clean_p[at])}
        if skipped is not None:
            row["skipped"] = int(skipped[i])
        rows.append(row)
    return rows


def over_random(
    groups: torch.Tensor,
    ring_image: torch.Tensor,
    ring_drop: torch.Tensor,
    random_image: torch.Tensor,
    random_drop: torch.Tensor,
    photos: int,
    count: int,
) -> list[dict]:
    """Per distance, photo by photo: the photo's mean drop of p(true) there minus its mean drop at its random
    positions; then the mean of that excess over photos, its standard error and the share of photos above 0.

    A photo's placements are not independent draws (they share the photo), so the photo is the unit here:
    an excess whose mean stands more than two standard errors above 0 is more than chance."""

    def per_photo(index, values):
        total = torch.zeros(photos * count, dtype=torch.float64).index_add_(0, index, values.double())
        seen = torch.zeros(photos * count, dtype=torch.float64).index_add_(0, index, torch.ones_like(values).double())
        return total.view(photos, count), seen.view(photos, count)

    ring_sum, ring_n = per_photo(ring_image * count + groups, ring_drop)
    rand_sum, rand_n = per_photo(random_image * count, random_drop)
    base = rand_sum[:, 0] / rand_n[:, 0].clamp_min(1)
    rows = []
    for g in range(count):
        have = (ring_n[:, g] > 0) & (rand_n[:, 0] > 0)
        excess = ring_sum[have, g] / ring_n[have, g] - base[have]
        m = int(have.sum())
        rows.append(
            {
                "photos": m,
                "over_random_mean": float(excess.mean()) if m else None,
                "over_random_se": float(excess.std() / math.sqrt(m)) if m > 1 else None,
                "photos_above": float((excess > 0).double().mean()) if m else None,
            }
        )
    return rows


def nearest(values: torch.Tensor, distances) -> torch.Tensor:
    """The index of the requested distance nearest each value (the control's distance bins)."""
    d = torch.as_tensor([float(v) for v in distances])
    return (values.view(-1, 1) - d.view(1, -1)).abs().argmin(1)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Rank correlation (ties averaged); None where either side is constant or there are < 3 points."""
    a, b = a.numpy(), b.numpy()
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy import stats  # here: the CLI imports this module at start-up

    return float(stats.spearmanr(a, b).statistic)


@dataclass
class PatchDistance:
    """What the experiment found; `as_dict()` is its JSON."""

    settings: dict
    photos: list[dict]  # per input photo: label, centre, whether it counts and why not
    curve: list[dict]
    control: dict
    control_curve: list[dict]
    correlation: dict  # Spearman ρ of distance vs the drop of p(true), ring and control
    stopped_early: bool = False
    patch: torch.Tensor | None = field(default=None, repr=False)
    centres: torch.Tensor | None = field(default=None, repr=False)  # of the counted photos, (row, col)
    counted: torch.Tensor | None = field(default=None, repr=False)  # input index of each counted photo
    ring: Placements | None = field(default=None, repr=False)
    ring_answers: dict | None = field(default=None, repr=False)
    random: Placements | None = field(default=None, repr=False)
    random_answers: dict | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {
            "settings": self.settings,
            "stopped_early": self.stopped_early,
            "curve": self.curve,
            "control": self.control,
            "control_curve": self.control_curve,
            "correlation": self.correlation,
            "photos": self.photos,
        }


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
        **_stats(ctrl_a["p_true"], ctrl_a["margin"], clean_p[ctrl_p.image]),
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


def photo_centre(model, x: torch.Tensor, centre: str = "peak") -> dict:
    """One photo (1×C×H×W) as the page shows it: the model's answer and its probability, the Grad-CAM map
    of that class, and the map's centre (None where the map is all zero)."""
    x = x.to(model.device)
    with torch.no_grad():
        p = torch.softmax(model(x).float(), 1)[0]
    cls = int(p.argmax())
    heat = grad_cam(model, x, target=cls)
    found = heat_centres(heat, centre)[0].cpu()
    return {
        "class": cls,
        "p": float(p[cls]),
        "heat": heat[0].cpu(),
        "centre": None if bool(torch.isnan(found).any()) else (float(found[0]), float(found[1])),
    }


def ring_at(centre: tuple[float, float], distance: float, directions: int, size: int, shape) -> list[dict]:
    """Each direction's placement at one distance (angle in degrees, top-left pixel, inside the image or not)."""
    angles = torch.arange(int(directions), dtype=torch.float64) * (2 * math.pi / int(directions))
    top, left = top_left(torch.tensor(centre[0]), torch.tensor(centre[1]), float(distance), angles, size)
    inside = _inside(top, left, size, shape)
    return [
        {"angle": round(math.degrees(float(a)), 1), "top": int(t), "left": int(le), "inside": bool(i)}
        for a, t, le, i in zip(angles, top, left, inside)
    ]


def first_spot(centre: tuple[float, float], distances, directions: int, size: int, shape) -> tuple[float, float] | None:
    """Where the page's view starts: the nearest distance at which the patch fits inside the image, in the first
    direction (counter-clockwise from the right) where it does, as (distance, angle in degrees); None where it
    fits nowhere. A heat-map peak on the image's edge leaves no room at distance 0, and a view that starts on a
    skipped placement draws no patch at all."""
    for distance in sorted(float(d) for d in distances):
        for box in ring_at(centre, distance, directions, size, shape):
            if box["inside"]:
                return distance, box["angle"]
    return None


def patched_answer(model, x: torch.Tensor, cls: int, patch: torch.Tensor, top: int, left: int) -> dict:
    """The photo with the patch at (top, left), and the model's answer on it for class `cls`."""
    x = x.to(model.device)
    xp = apply_patch(x, patch.to(x.device), torch.tensor([0]), torch.tensor([top]), torch.tensor([left]))
    with torch.no_grad():
        got = answers(model(xp), torch.tensor([cls], device=x.device))
    return {
        "image": xp.cpu(),
        "p_true": float(got["p_true"][0]),
        "margin": float(got["margin"][0]),
        "predicted": int(got["predicted"][0]),
    }


def summary(result: PatchDistance) -> str:
    """What the curves say, in one sentence: does the patch hurt more near the heat-map centre than at random
    positions of the same images (the drop of p(true), beyond two standard errors), or at least flip the
    decision more often there; and does that fade with distance."""
    rows = [r for r in result.curve if r["n"] and r.get("over_random_mean") is not None]
    if not rows:
        return "No image counts (the model must get it right and its heat map must not be all zero): add images."
    near, far = rows[0], rows[-1]
    se = near.get("over_random_se") or 0.0
    drop = (
        f"at {near['distance']:g} px from the heat-map centre the patch lowers p(true class) by "
        f"{near['over_random_mean']:+.3f} more than at random positions, at {far['distance']:g} px by "
        f"{far['over_random_mean']:+.3f}"
    )
    if near["over_random_mean"] > 2 * se and near["over_random_mean"] > far["over_random_mean"]:
        return f"Near the evidence hurts most: {drop}, so the model leans on where its heat map is hot."
    flips, random = near.get("success") or 0.0, result.control.get("success") or 0.0
    if flips > max(far.get("success") or 0.0, random):
        return (
            f"Near the evidence flips the decision most: {flips:.0%} of placements at {near['distance']:g} px, "
            f"{far.get('success') or 0.0:.0%} at {far['distance']:g} px, {random:.0%} at random positions; "
            f"the drop of p(true) is within its noise on {near['photos']} images (more images sharpen it)."
        )
    return (
        f"No clear distance effect: {drop}; on these images the heat-map centre is not where a patch hurts "
        "most (more images, or a larger patch, sharpen the comparison)."
    )


# ---- the patch page's view and words -------------------------------------------------------------


def angles(directions: int) -> list[float]:
    """The directions' angles in degrees, counter-clockwise from the right, as `ring_at` rounds them."""
    return [round(360 * k / int(directions), 1) for k in range(int(directions))]


def view_at(model, x: torch.Tensor, found: dict, s: dict, distance: float, angle: float) -> dict:
    """The page's photo view for one placement: every direction's box at `distance`, which one is chosen,
    the picture (patched where the patch fits) and the model's answer in words. `found` is `photo_centre`'s;
    `s` holds size, amplitude, pattern and directions."""
    shape = tuple(x.shape[-2:])
    boxes = ring_at(found["centre"], distance, s["directions"], s["size"], shape)
    chosen = angles(s["directions"]).index(angle)
    box = boxes[chosen]
    if not box["inside"]:
        return {
            "boxes": boxes,
            "chosen": chosen,
            "picture": x,
            "words": "this placement would leave the image: skipped (the experiment counts it); move the sliders "
            "to a dashed box",
        }
    patch = make_patch(x.shape[1], s["size"], s["amplitude"], s["pattern"])
    got = patched_answer(model, x, found["class"], patch, box["top"], box["left"])
    names = model.class_names
    words = (
        f"p({names[found['class']]}) {found['p']:.1%} → {got['p_true']:.1%}; the model now says "
        f"{names[got['predicted']]}" + (" (flipped)" if got["margin"] < 0 else "")
    )
    return {"boxes": boxes, "chosen": chosen, "picture": got["image"], "words": words}


def counted_sentence(result: PatchDistance) -> str:
    """Which images count, the rank correlations of distance and drop, and the nearest distance's drop
    beyond the same images' random positions."""
    info, rho = result.settings, result.correlation

    def fmt(v) -> str:
        return "—" if v is None else f"{v:+.2f}"

    near = next((r for r in result.curve if r["n"] and r["over_random_mean"] is not None), None)
    excess = (
        ""
        if near is None
        else (
            f" At {near['distance']:g} px p(true) drops by {near['over_random_mean']:+.3f} ± "
            f"{near['over_random_se'] or 0:.3f} (standard error over {near['photos']} images) more than at the same "
            "image's random positions."
        )
    )
    return (
        f"{info['photos_counted']} of {info['photos']} images count (the model gets them right and their heat "
        f"map is not all zero). Spearman ρ of distance and the drop of p(true): {fmt(rho['ring'])} on the rings, "
        f"{fmt(rho['control'])} at random positions (negative: the effect fades with distance).{excess}"
    )


def table_rows(result: PatchDistance) -> list[dict]:
    """The numbers per distance, then the random positions' at their mean distance."""
    control = {
        "distance": result.control["distance_mean"],
        **{k: v for k, v in result.control.items() if k != "distance_mean"},
    }
    return [{"placed": "at this distance", **r} for r in result.curve] + [
        {"placed": "random (mean distance)", **control}
    ]


def start_view(centre: tuple[float, float] | None, distances, directions: int, size: int, shape) -> tuple[float, float]:
    """(distance, angle) where the page's view starts: `first_spot`, else the nearest distance in the first
    direction (a photo whose heat map has no centre, or a patch that fits nowhere)."""
    spot = None if centre is None else first_spot(centre, distances, directions, size, shape)
    return spot or (distances[0], angles(directions)[0])
