"""One photo as the patch page shows it: the model's answer and heat-map centre, every direction's box at one
distance, where the view starts, and the patched picture with the model's answer in words."""

from __future__ import annotations

import math

import torch

from engine.analysis.patch_placements import answers, apply_patch, heat_centres, make_patch, top_left, within_image
from engine.heatmaps import grad_cam


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
    inside = within_image(top, left, size, shape)
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


def start_view(centre: tuple[float, float] | None, distances, directions: int, size: int, shape) -> tuple[float, float]:
    """(distance, angle) where the page's view starts: `first_spot`, else the nearest distance in the first
    direction (a photo whose heat map has no centre, or a patch that fits nowhere)."""
    spot = None if centre is None else first_spot(centre, distances, directions, size, shape)
    return spot or (distances[0], angles(directions)[0])
