"""What the JSMA lab page says: its choices' labels, help, captions and notes (the analysis is jsma_extras)."""

from __future__ import annotations

THETAS = {1: "increase (θ=+1)", -1: "decrease (θ=−1)"}
TARGET_HELP = "starts at the image's runner-up: the class the model finds most likely after its own"
PAIRS_HELP = "1 is the paper's algorithm; photos need many pairs per step to finish quickly"
PRESS_RUN = "Pick a target class and press Run JSMA to replay the pixels it changes, step by step."
CURVE_CANCELLED = (
    "Cancelled: the images the run had not finished count as failures, so the curve is a lower bound. "
    "Press Compute the curve again for the full one."
)
TABLE_CANCELLED = "Cancelled: only the variants that finished are shown. Press Compute again for the rest."
# The progress bars' labels.
CURVE_RUN = "JSMA on every image"
TABLE_RUN = "JSMA from every image to every other class"


def changed_caption(found: dict) -> str:
    """The replay's share of features changed, with the rounding note when the result has one."""
    return f"{found['changed']:.2%} of features changed. {found['words']['rounding'] or ''}".rstrip()


def marked_caption(shown: dict) -> str:
    """The caption of the replay's marked picture (`jsma_extras.marked_frame`'s dict)."""
    ringed = ", each ringed by its neighbours" if shown["ringed"] else ""
    return f"changed features in red ({shown['pixels']} pixels{ringed})"


def curve_aim(class_names, target: int, towards: str) -> str:
    """Whom the success-rate curve's attacks aim at, in words."""
    return class_names[target] if towards == "chosen" else "their runner-up"


def table_images_help(num_classes: int) -> str:
    return f"each image the model classifies correctly is attacked towards the {num_classes - 1} other classes"


def starts(seen: tuple | None, here: tuple, own: dict, default_target: int) -> dict:
    """The form's start values, each with whether to start it afresh (`seen`, `here`: the (model, image) of the
    last run and of this one): a new image starts at its own default target; a new model at its domain's
    settings (`own`) too."""
    fresh = {"jsma.target": (default_target, seen != here)}
    new_model = seen is None or seen[0] != here[0]
    fresh.update({f"jsma.{name}": (own[name], new_model) for name in ("against", "upsilon", "pairs")})
    return fresh
