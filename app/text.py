"""Short explanations of each panel for presentation mode (one concept per screen), in our own words.
Term definitions live in engine/glossary.py (the Method guide)."""

EXPLAIN = {
    "attack": "An adversarial example is the clean image plus a perturbation δ too small to notice, chosen so that the "
    "white-box model changes its answer. Gradient attacks (FGSM, BIM, PGD, MI-FGSM) step along the sign of "
    "the loss gradient inside an L∞ ball of radius ε; C&W and DeepFool look for the smallest L2 change that "
    "crosses the decision boundary.",
    "perturbation": "δ itself, three ways: the signed map (red = brighter, blue = darker), |δ| amplified to full range "
    "(where the attack acts), and display-normalised (sign flipped, matched to the dataset's mean and "
    "spread), under which averaged perturbations can look like the object.",
    "heat": "Grad-CAM weighs a late convolutional layer's maps by the gradient of a class score: warm regions are the "
    "evidence for that class. Compare the clean image's evidence for its class with the adversarial image's "
    "evidence for the class the attack produced; the masked δ keeps the perturbation only where the model looks.",
    "spectrum": "The perturbation's 2-D power spectrum: frequency in cycles per pixel along each axis, zero in the "
    "centre (left blank), brighter = more power on a log scale. Noise spreads evenly; regular grids — "
    "checkerboard artefacts of strided convolutions — show up as bright off-centre peaks.",
    "models": "Top-5 predictions of every model before and after. Black-box models never saw the attack: when they are "
    "fooled too, the perturbation transfers.",
    "transfer": "Transfer lab: attack a white-box model and measure the black-box models. error = black-box "
    "misclassified; "
    "uTR = error among images the white-box model was fooled on; tSuc = black-box predicts the target; "
    "tTR = tSuc among white-box targeted successes. AA attacks an intermediate layer's features instead of "
    "the logits, which can transfer better.",
    "features": "Feature space: how far apart classes lie at each layer (angular separability), and a 2-D PCA plane of "
    "clean features at one layer with the source, the AA target and each AA iterate drawn on it.",
    "anatomy": "Averaging one attack's perturbations over several models and noisy copies of the image removes "
    "model-specific noise: what is left can look like the object and transfers better. Held-out models "
    "judge δ' = ε·sign(δ) on the object only vs the background only.",
    "patch": "Patch distance: the same small noise patch is added at growing distance from the Grad-CAM centre, in "
    "every direction, on many images. If the model's evidence sits where its heat map is hot, a patch there "
    "should hurt most and the effect should fade with distance; the same patch at random positions is the "
    "yardstick for 'anywhere'.",
    "checkerboard": "Noisy single-model averages at growing σ: the thesis saw a grid appear whose period grows with "
    "σ. The number is the grid's period (the shortest that holds what repeats, read after removing the object's "
    "shape), or 'no grid'; strided layers leave grids at their strides, and here σ mostly changes how strong the "
    "grid is.",
    "jsma": "JSMA changes a few pixels at a time, picking the pair whose gradients raise the target class most while "
    "lowering the others (saliency map); among a thousand classes it weighs the target against its strongest "
    "rival instead. The slider replays the pixels changed per iteration; hardness integrates distortion over "
    "success rate for each source/target pair.",
    "quiz": "The thesis asked people to name the class of an image from its perturbation alone: 80.7 % were right "
    "with 20 choices, where guessing gets 5 %. Here the same test: each picture is a display-normalised "
    "perturbation, from one model or averaged over several models and noisy copies (revealed at the end).",
    "sweeps": "A sweep runs the transfer experiment over a whole grid — attacks × white-box × black-box models × ε × "
    "layer — in shards of images, on every core or a Ray cluster. Each curve is one attack's transfer "
    "metric against ε (or AA's layer), pooled over the shards.",
}
