"""Short explanations of each panel for presentation mode, drawn from SPEC.md (one concept per screen)."""

EXPLAIN = {
    "attack": "An adversarial example is the clean image plus a perturbation δ too small to notice, chosen so that the "
              "white-box model changes its answer. Gradient attacks (FGSM, BIM, PGD, MI-FGSM) step along the sign of "
              "the loss gradient inside an L∞ ball of radius ε; C&W and DeepFool look for the smallest L2 change that "
              "crosses the decision boundary (SPEC §1).",
    "perturbation": "δ itself, shown three ways: the signed map (red = brighter, blue = darker), |δ| amplified to full "
                    "range (where the attack acts), and the thesis' display normalisation (×−1, matched to the dataset's "
                    "mean and std, SPEC §3), under which averaged perturbations can look like the object.",
    "heat": "Grad-CAM weighs a late convolutional layer's maps by the gradient of a class score: warm regions are the "
            "evidence for that class. Compare the clean image's evidence for its class with the adversarial image's "
            "evidence for the class the attack produced; the masked δ keeps the perturbation only where the model looks "
            "(SPEC §6).",
    "spectrum": "The perturbation's 2-D power spectrum (zero frequency in the centre). Regular grids — checkerboard "
                "artefacts of strided convolutions — show up as bright off-centre peaks (SPEC §3).",
    "models": "Top-5 predictions of every model before and after. Black-box models never saw the attack: when they are "
              "fooled too, the perturbation transfers (SPEC §2).",
    "transfer": "Transfer lab: attack a white-box model and measure the black-box models. error = black-box misclassified; "
                "uTR = error among images the white-box model was fooled on; tSuc = black-box predicts the target; "
                "tTR = tSuc among white-box targeted successes. AA attacks an intermediate layer's features instead of "
                "the logits, which the seed finds transfers better (SPEC §2).",
    "features": "Feature space: how far apart classes lie at each layer (angular separability), and a 2-D PCA plane of "
                "clean features at one layer with the source, the AA target and each AA iterate drawn on it (SPEC §2).",
    "anatomy": "Averaging one attack's perturbations over several models and noisy copies of the image (Eq 4.1) removes "
               "model-specific noise: what is left can look like the object (masking effect) and transfers better. "
               "Test models judge δ' = ε·sign(δ) on the object only vs the background only (SPEC §3).",
    "checkerboard": "Noisy single-model averages at growing σ: a grid pattern appears whose period grows with σ; the "
                    "number is the dominant period of the 2-D power spectrum (SPEC §3).",
    "jsma": "JSMA changes a few pixels at a time, picking the pair whose gradients raise the target class most while "
            "lowering the others (saliency map). The slider replays the pixels changed per iteration; hardness "
            "integrates distortion over success rate for each source/target pair (SPEC §4).",
    "sweeps": "A sweep runs the transfer experiment over a whole grid — attacks × white-box × black-box models × ε × "
              "layer — in shards of images, on every core or a Ray cluster. Each curve is one attack's transfer "
              "metric against ε (or AA's layer), pooled over the shards (SPEC §2).",
}
