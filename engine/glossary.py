"""The method guide: every term the app and the CLI show, defined in one place.

The app's help tooltips and the Method guide page read `TERMS`; docs/methods.md is
`render()`'s output (a test keeps the two identical).
"""
from __future__ import annotations

# term → (short definition shown as help, longer explanation for the guide)
TERMS: dict[str, tuple[str, str]] = {
    "adversarial example": (
        "The clean image plus a small perturbation δ chosen so that a model changes its answer.",
        "Gradient attacks (FGSM, BIM, PGD, MI-FGSM) step along the sign of the loss gradient and stay inside an "
        "L∞ ball of radius ε; C&W and DeepFool look for the smallest L2 change that crosses the decision boundary; "
        "Square searches at random without gradients; JSMA changes a few pixels all the way; the Activation "
        "Attack (AA) pulls an intermediate layer's features towards those of a target image.",
    ),
    "white-box model": ("The model the attack computes its gradients (or queries) on.", ""),
    "black-box model": (
        "A model that never sees the attack; it measures whether the perturbation transfers.", ""),
    "ε": ("The L∞ budget: no pixel moves by more than ε (on the 0-1 scale; 8/255 ≈ 0.031).", ""),
    "L0": (
        "The share of pixels the perturbation changes by at least half an 8-bit level (in any channel).",
        "A change smaller than half a level disappears when the image is saved as an 8-bit PNG, so it is not "
        "counted. An attack can therefore fool the model with L0 = 0 % — and then the saved file does not fool it: "
        "the headline says whether the result survives 8-bit rounding.",
    ),
    "L2": ("The Euclidean length of δ over all pixels and channels (0-1 scale).", ""),
    "L∞": ("The largest change of any single pixel value (0-1 scale).", ""),
    "SSIM": (
        "Structural similarity between the clean and the adversarial image: 1 means identical structure.", ""),
    "8-bit rounding": (
        "Whether the adversarial image, rounded to whole 8-bit levels as a PNG stores it, still does what the attack did.",
        "The PNG download holds the rounded image; the .npy download keeps the exact floating-point perturbation.",
    ),
    "iterations": ("How many attack steps ran for this image (a run stops early once it succeeds, where the attack allows).", ""),
    "queries": ("How many times a black-box search attack (Square) asked the model for its scores.", ""),
    "target class": (
        "For a targeted attack, the class the model should output; success means exactly that class.",
        "When no target is chosen the app takes the runner-up class of the clean image, or for AA a random class "
        "that has a bank image.",
    ),
    "Grad-CAM": (
        "Where the model finds evidence for a class: a late layer's feature maps weighted by the class score's gradient.",
        "Warm regions support the class; the map is scaled to [0, 1] per image. A map that is zero everywhere means "
        "no positive evidence for that class at that layer.",
    ),
    "display normalisation": (
        "δ flipped in sign and rescaled to the dataset's mean and spread, so averaged perturbations can be looked at like images.",
        "A targeted δ is instead scaled so that its largest value is 1 (Fashion-MNIST) or 0.5 (photos): what it adds "
        "is what it draws, so it keeps its sign.",
    ),
    "power spectrum": (
        "How much of δ's energy lies at each spatial frequency; regular grids show up as bright off-centre peaks.",
        "Frequencies are in cycles per pixel, zero in the centre; the grid of strided convolutions (checkerboard "
        "artefacts) appears as peaks at its period.",
    ),
    "error": ("Share of images the black-box model misclassifies after the attack (among images both models got right).", ""),
    "uTR": ("Untargeted transfer rate: black-box error among the images the white-box model was fooled on.", ""),
    "tSuc": ("Targeted success: share of images the black-box model assigns to the target class.", ""),
    "tTR": ("Targeted transfer rate: black-box target hits among the images that hit the target on the white-box model.", ""),
    "n": ("Images counted: those both the white-box and the black-box model classify correctly before the attack.", ""),
    "separability": (
        "How far apart the classes lie at a layer: mean angular distance between classes over mean distance within a class.",
        "It needs several images of each class; with one photo per class it is not defined.",
    ),
    "noisy multi-model averaging": (
        "One attack's perturbations averaged over several source models and Gaussian-noisy copies of the image.",
        "Model-specific noise cancels in the average; what remains transfers better and can look like the object. "
        "Held-out judge models then classify the image with δ' = ε·sign(δ) added.",
    ),
    "contour vs background": (
        "The averaged perturbation applied only on the object (inside its mask) or only on the background.",
        "Random ±ε signs on the same part are the control: the difference is what the perturbation's pattern adds.",
    ),
    "generation effect": (
        "A targeted averaged perturbation that, looked at alone, shows features of the target class.",
        "The attack aims every model and noisy copy at one target class (the Targeted toggle on Anatomy; "
        "`recognizability --targeted` in the CLI). The δ alone, display-normalised, goes to held-out judge models: the "
        "target class share is how often they name the target, the source class share how often they still name the "
        "image's own class. The effect is clearest between classes that differ by one feature (a slug and a snail); "
        "between unrelated classes each model draws something else and the average washes out.",
    ),
    "Square from δ = 0": (
        "Square Attack started from no perturbation instead of its usual vertical ±ε stripes.",
        "Every pixel it moves was then chosen by its random search, so an average over many noisy copies shows only "
        "what the searches agree on. One search moves few pixels; averaging more copies fills the picture in.",
    ),
    "energy in object": (
        "The share of δ's energy (Σδ² over channels and pixels) that lies inside the object mask.",
        "A perturbation spread evenly over the image scores the mask's area; more than that means it concentrates on "
        "the object. Reported per number n of averaged copies (`contour --copies-sweep` in the CLI).",
    ),
    "checkerboard period": ("The dominant period, in pixels, of a noisy single-model average's power spectrum.", ""),
    "JSMA hardness": (
        "How much distortion JSMA needs across success rates for one source/target pair (area under that curve).", ""),
}


def help_text(term: str) -> str:
    """The one-line definition, for a tooltip."""
    return TERMS[term][0]


def render() -> str:
    lines = ["# Method guide", "",
             "Every term Perturbation Explorer shows, in its own words. The app shows the first sentence of each as",
             "the help beside the number; its *Method guide* page shows all of this.", ""]
    for term, (short, long) in TERMS.items():
        lines.append(f"**{term}** — {short}" + (f" {long}" if long else ""))
        lines.append("")
    return "\n".join(lines)
