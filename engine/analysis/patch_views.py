"""What the Patch distance page shows: its settings record, the help and captions, and the charts it draws."""

from __future__ import annotations

import numpy as np

from engine import images

IMAGES_HELP = "the first of the evaluation images (sidebar: Evaluation images)"
PATTERN_HELP = "sign: ±amplitude per pixel; uniform: noise between −amplitude and +amplitude"
NO_CENTRE = "The heat map of this photo is zero everywhere: it has no centre to measure from. Pick another."

# The keyword arguments of patch_distance.patch_distance that come straight from the page's settings.
RUN_KEYS = ("size", "amplitude", "distances", "directions", "pattern", "centre")

# The two charts beside the photo: (metric, title, y-axis, the metric's own keyword arguments).
CURVES = (
    ("wrong", "wrong-class confidence and share flipped", "1 − p(true class) / share", {"rate": "success"}),
    ("margin", "margin p(true) − max p(other)", "margin", {"zero_line": "below 0: the decision flips"}),
)


def settings(form: dict, distances: list, source: str) -> dict:
    """The form's values as the page's settings: integers and floats where the analysis expects them."""
    ints = ("size", "directions", "n")
    return {
        **{k: int(form[k]) for k in ints},
        "amplitude": float(form["amplitude"]),
        "distances": distances,
        "pattern": form["pattern"],
        "centre": form["centre"],
        "source": source,
    }


def run_args(s: dict) -> dict:
    """The settings patch_distance.patch_distance takes as keywords."""
    return {k: s[k] for k in RUN_KEYS}


def key(model_name: str, s: dict) -> tuple:
    """The stored result's key: every setting, lists as tuples so that it hashes."""
    return ("patch", model_name, *(s[k] if not isinstance(s[k], list) else tuple(s[k]) for k in sorted(s)))


def view_args(view: dict, found: dict, s: dict, distance: float, angle: float, heat: np.ndarray | None) -> dict:
    """figures.patch_view's arguments for one placement (`view` is patch_distance.view_at's)."""
    return {
        "rgb": images.to_uint8(view["picture"]),
        "centre": found["centre"],
        "boxes": view["boxes"],
        "chosen": view["chosen"],
        "size": s["size"],
        "distance": distance,
        "title": f"patch at {distance:g} px, {angle:g}°",
        "heat": heat,
    }


def view_caption(image_label: str, view: dict) -> str:
    return f"{image_label}: {view['words']}. Dashed: the other directions at this distance; cross: the heat-map centre."


def press_text(n: int) -> str:
    """What the right-hand column says before the first run."""
    return (
        f"Press Place the patch: it goes to every distance and direction on {n} evaluation image(s), "
        "then to as many random positions; the curves of the model's answers appear here."
    )


def cancelled_text(photos: int) -> str:
    return f"Cancelled: the curve holds the {photos} image(s) that finished."
