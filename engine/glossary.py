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
        "L∞ ball of radius ε; C&W and DeepFool look for the smallest L2 change that crosses the decision boundary, "
        "C&W L∞ for the smallest L∞ change and EAD for a sparse one (small L1: most pixels untouched); "
        "Square searches at random without gradients; JSMA changes a few pixels all the way; the Activation "
        "Attack (AA) pulls an intermediate layer's features towards those of a target image.",
    ),
    "white-box model": ("The model the attack computes its gradients (or queries) on.", ""),
    "black-box model": ("A model that never sees the attack; it measures whether the perturbation transfers.", ""),
    "ε": ("The L∞ budget: no pixel moves by more than ε (on the 0-1 scale; 8/255 ≈ 0.031).", ""),
    "L0": (
        "The share of pixels the perturbation changes by at least half an 8-bit level (in any channel).",
        "A change smaller than half a level disappears when the image is saved as an 8-bit PNG, so it is not "
        "counted. An attack can therefore fool the model with L0 = 0 % — and then the saved file does not fool it: "
        "the headline says whether the result survives 8-bit rounding.",
    ),
    "L2": ("The Euclidean length of δ over all pixels and channels (0-1 scale).", ""),
    "L∞": ("The largest change of any single pixel value (0-1 scale).", ""),
    "SSIM": ("Structural similarity between the clean and the adversarial image: 1 means identical structure.", ""),
    "8-bit rounding": (
        "Whether the adversarial image, rounded to whole 8-bit levels as a PNG stores it, still does what the "
        "attack did.",
        "The PNG download holds the rounded image; the .npy download keeps the exact floating-point perturbation.",
    ),
    "iterations": (
        "How many attack steps ran for this image (a run stops early once it succeeds, where the attack allows).",
        "",
    ),
    "queries": (
        "How many images a black-box attack sent to the model for this image: for its scores (Square) or only its "
        "label (HopSkipJump, Boundary).",
        "",
    ),
    "label-only attack": (
        "An attack that sees nothing of the model but its top label: no gradients, no scores (HopSkipJump, Boundary).",
        "It starts from an image the model already misclassifies (noise, or a batch image of the target class) and "
        "walks along the decision boundary towards the clean image; the query budget buys the closeness.",
    ),
    "direct attack": (
        "A label-only attack run on the black-box model itself: images go in, labels come back, each one a query.",
        "The Transfer lab shows it beside transfer. A perturbation made on the white box costs the black box no "
        "queries but may not fool it; the direct attack changes the black box's label as soon as it has a start, and "
        "its queries buy a smaller perturbation. Both count success as a change of the black box's own answer on the "
        "clean image, so their L2 compare directly (CLI: `transfer --direct hopskipjump --image fmnist:0`).",
    ),
    "target class": (
        "For a targeted attack, the class the model should output; success means exactly that class.",
        "When no target is chosen the app takes the runner-up class of the clean image, or for AA a random class "
        "that has a bank image.",
    ),
    "Grad-CAM": (
        "Where the model finds evidence for a class: a late layer's feature maps weighted by the class score's "
        "gradient.",
        "Warm regions support the class; the map is scaled to [0, 1] per image. A map that is zero everywhere means "
        "no positive evidence for that class at that layer.",
    ),
    "heat-map method": (
        "How a heat map is made: from a layer's feature maps (CAM methods) or from the gradient at the input pixels "
        "(attributions).",
        "CAMs: Grad-CAM, Grad-CAM++, Score-CAM (each feature map masks the image; no gradient), LayerCAM, XGrad-CAM "
        "and Eigen-CAM (the feature maps' first principal component, the same for every class). Attributions: "
        "saliency (the input gradient's size), SmoothGrad (saliency averaged over noisy copies) and integrated "
        "gradients (gradients summed along the path from a black image).",
    ),
    "deletion and insertion AUC": (
        "How fast the class probability falls as a heat map's top pixels are blacked out (deletion: lower is "
        "better), or rises as they are put back into a black image (insertion: higher is better).",
        "Areas under the curves over the share of pixels changed (Petsiuk et al. 2018). Random maps give the "
        "level to beat: a map ranks pixels the way the model uses them only where it does better than random.",
    ),
    "display normalisation": (
        "δ flipped in sign and rescaled to the dataset's mean and spread, so averaged perturbations can be looked "
        "at like images.",
        "A targeted δ is instead scaled so that its largest value is 1 (Fashion-MNIST) or 0.5 (photos): what it adds "
        "is what it draws, so it keeps its sign.",
    ),
    "power spectrum": (
        "How much of δ's energy lies at each spatial frequency; regular grids show up as bright off-centre peaks.",
        "Frequencies are in cycles per pixel, zero in the centre; the grid of strided convolutions (checkerboard "
        "artefacts) appears as peaks at its period.",
    ),
    "error": (
        "Share of images the black-box model misclassifies after the attack (among images both models got right).",
        "",
    ),
    "uTR": ("Untargeted transfer rate: black-box error among the images the white-box model was fooled on.", ""),
    "tSuc": ("Targeted success: share of images the black-box model assigns to the target class.", ""),
    "tTR": (
        "Targeted transfer rate: black-box target hits among the images that hit the target on the white-box model.",
        "",
    ),
    "n": ("Images counted: those both the white-box and the black-box model classify correctly before the attack.", ""),
    "separability": (
        "How far apart the classes lie at a layer: mean angular distance between classes over mean distance within "
        "a class.",
        "It needs several images of each class; with one photo per class it is not defined.",
    ),
    "class distance": (
        "How far AA's target class lies from the image's own class at a layer: the distance between the two "
        "classes' centroids in the plane of the top two principal components of clean features.",
        "Averaged over the images with the target class each was given, and divided by the plane's RMS spread so "
        "that layers compare; zero when the target is the image's own class.",
    ),
    "layer predictor": (
        "Separability, class distance and AA's tSuc per layer, on one chart: do the first two point at the layer "
        "whose AA examples transfer best?",
        "Inkawhich et al. (2019) found that the layers whose AA examples transfer best have well separated classes, "
        "and that the best layer does not depend on the black-box model; the chart checks both on the chosen models.",
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
    "universal perturbation": (
        "One δ fitted to a whole set of images at once, then added unchanged to images it never saw.",
        "The fooling rate is the share of images whose prediction it changes (against the model's own clean "
        "answer, as in the paper). Random noise of the same size is the control: where v fools far more held-out "
        "images than the noise, it carries a direction the model reads as a class, and the flipped images pile "
        "into a few dominant classes.",
    ),
    "robust model": (
        "A model trained on adversarial examples of its own (here FGSM from a random start), so small perturbations "
        "fool it less.",
        "Its twin is the plain model of the same architecture and seed. The same attack on both shows the "
        "difference: a "
        "robust model's perturbation tends to draw the object's outline and parts, a plain model's looks like noise. "
        "Robust models trade some clean accuracy for accuracy under attack (the model card lists both).",
    ),
    "robust accuracy": (
        "The share of images a model still classifies correctly under attack at budget ε.",
        "AutoAttack reports it after each of its four attacks (APGD-CE, APGD-T, FAB-T, Square), each run only on "
        "the images the earlier ones left unfooled: the last figure is the model's robust accuracy, and each drop "
        "shows which attack found the rest. FAB looks for the smallest L∞ perturbation that fools the model and "
        "counts an image as fooled only when that size is at most ε.",
    ),
    "generation effect": (
        "A targeted averaged perturbation that, looked at alone, shows features of the target class.",
        "The attack aims every model and noisy copy at one target class (the Targeted toggle on Anatomy; "
        "`recognizability --targeted` in the CLI). The δ alone, display-normalised, goes to held-out judge models: the "
        "target class share is how often they name the target, the source class share how often they still name the "
        "image's own class. The effect is clearest between classes that differ by one feature (a slug and a snail); "
        "between unrelated classes each model draws something else and the average washes out.",
    ),
    "machine recognisability": (
        "The share of averaged perturbations that held-out judge models, shown δ alone, classify as the image's class.",
        "Each judge picks the highest of its logits over a few classes: the image's own and K − 1 others drawn with a "
        "seed, as the thesis' people and models chose among 20 (`recognizability --choices K` in the CLI; the domain "
        "default is 20 on the photos, every class on Fashion-MNIST). Among all 1,000 ImageNet classes almost no δ is "
        "named right (`--choices all`); among 20, chance is 5 %. `--source-counts 1 2 4 ...` gives it against the "
        "number of source models averaged.",
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
    "checkerboard period": (
        "The period, in pixels, of the grid in a noisy single-model average: the shortest one whose repeating part "
        "holds its periodic energy.",
        "Read once the object's own shape (below four cycles per side) is removed; the share is the part of what is "
        "left that repeats with that period, beyond what noise would. Strided layers leave grids of their strides "
        "(up to 32 px on a 224-px EfficientNet-Lite0, 4 or 8 px on the Fashion-MNIST zoo), lattices whose "
        "harmonics are as strong as the fundamental: the power spectrum's strongest peak, also shown, then reads "
        "a harmonic.",
    ),
    "perturbation quiz": (
        "Name the class of an image from its display-normalised perturbation alone, choosing among a few classes.",
        "The thesis' human test, for a class: each question's picture is the perturbation an attack made against one "
        "model (single-model) or averaged over several models and noisy copies (noisy multi-model), mixed in a seeded "
        "order and blinded until the end. The wrong choices are other classes of the same image set (on photos: the "
        "gallery's, as the thesis offered the classes of its own images), topped up at random from the rest. The "
        "score counts the answered questions only, per kind, with a 95 % exact binomial (Clopper–Pearson) interval, "
        "beside chance (1 in the number of choices) and the thesis' 80.7 % (people, ImageNet, noisy multi-model BIM, "
        "20 choices, 5 % chance). The same seed, number of questions and of choices give the same questions, so a "
        "filled answer sheet is scored without making the pictures again.",
    ),
    "machine taker": (
        "A held-out model answering the quiz from the same 8-bit pictures, restricted to the same choices.",
        "It picks the offered class with its highest logit, as the thesis' machine evaluation read only its 20 "
        "classes' outputs; a reference for a class's score, never one of the models that made the perturbations.",
    ),
    "patch distance": (
        "One fixed noise patch added at distance d from an image's Grad-CAM centre, in evenly spread directions.",
        "The patch (a side of s pixels, each value ±amplitude from a seeded pattern, or uniform noise within "
        "±amplitude) is the same at every placement, so only its position changes; the image plus patch is clipped "
        "to [0, 1]. A placement whose patch would leave the image is skipped and counted. Only images the model "
        "classifies correctly count. The curve gives, per distance, the mean and spread of the wrong-class "
        "confidence and of the margin, and the share of placements that flip the decision. This repeats the "
        "position experiment of the Mask-FGSM paper, which found the attack's effect fading with distance.",
    ),
    "heat-map centre": (
        "Where the distances start: the peak of the Grad-CAM map (the middle of a flat top), or its weighted centroid.",
        "The peak is the default: the centroid can fall between two hot regions, on pixels the model does not use, "
        "and diffuse heat pulls it towards the middle of the image. An all-zero map has no centre; that image is "
        "left out.",
    ),
    "wrong-class confidence": (
        "1 − p(true class): the probability the model gives all the other classes together.",
        "",
    ),
    "margin": (
        "p(true class) − the largest other class probability: the decision flips exactly where it falls below 0.",
        "",
    ),
    "random-position control": (
        "The same patch at uniformly random positions inside the image, as many per image as the rings had.",
        "If the patch does more near the heat-map centre than at random positions, position matters; if the curve "
        "stays at the random level, the distance effect is no more than chance. The comparison is made photo by "
        "photo (how much more p(true class) drops at a distance than at that photo's random positions, averaged "
        "over photos with its standard error), because placements on one photo are not independent. ρ is the "
        "Spearman rank correlation of distance with the drop of p(true class) from the clean image (negative: the "
        "effect fades with distance).",
    ),
    "JSMA hardness": (
        "How much distortion JSMA needs across success rates for one source/target pair (area under that curve).",
        "",
    ),
    "increasing vs decreasing JSMA": (
        "JSMA's two variants: θ = +1 raises the chosen pixel pairs to white, θ = −1 lowers them to black.",
        "The table attacks every image the model classifies correctly towards each other class, with at most Υ of "
        "the pixels changed; success is the share of those pairs that reach their target, distortion the share of "
        "pixels a success changed. The original paper searches every pair of pixels at each step; the engine by "
        "default searches pairs among the 64 most salient, which is much faster and succeeds somewhat less often.",
    ),
    "adversarial distance A(X, t)": (
        "1 minus the share of pixels whose saliency towards class t is positive: near 1, few pixels help the attack.",
        "A pixel has positive saliency when raising it raises class t's score and lowers the other classes' sum. "
        "It is read off one gradient, before any attack runs.",
    ),
    "robustness R(F)": (
        "The smallest adversarial distance over the images and target classes evaluated: the model's most exposed "
        "pair.",
        "It can only fall as more images are evaluated, so compare models over the same images.",
    ),
    "AA target image": (
        "The image whose layer features AA pulls the source towards, drawn from a bank of the target class.",
        "The bank holds only images the white-box model classifies as their class. Farthest (the paper's rule) takes "
        "the one whose features lie farthest from the source's at the attacked layer; nearest-mean the one closest "
        "to the class's mean features there, its most typical member; random any member, as a control.",
    ),
}


def help_text(term: str) -> str:
    """The one-line definition, for a tooltip."""
    return TERMS[term][0]


def render() -> str:
    lines = [
        "# Method guide",
        "",
        "Every term Perturbation Explorer shows, in its own words. The app shows the first sentence of each as",
        "the help beside the number; its *Method guide* page shows all of this.",
        "",
    ]
    for term, (short, long) in TERMS.items():
        lines.append(f"**{term}** — {short}" + (f" {long}" if long else ""))
        lines.append("")
    return "\n".join(lines)
