"""Heat maps (also Mask-FGSM's mask S): one table of methods, one entry point.

`compute(model, x, method, layer=None, target=None, **options)` returns N×H×W maps in [0, 1] for class
`target` (default: each image's predicted class). CAM methods (gradcam, gradcam++, scorecam, layercam, xgradcam,
eigencam) combine a layer's feature maps; attribution methods (saliency, smoothgrad, integrated-gradients) work
on the input pixels. `METHODS` describes each one; `grad_cam()` stays the CAM entry point.

Every method is a function over a batch with no state kept between calls. A CAM layer's activation is captured
with a forward hook that exists only inside `capture_activations` and only while the model's lock is held, so
concurrent app sessions never see each other's hooks; Score-CAM's masked forwards and the attribution methods
need no hook and run without the lock. Maps are upsampled (bilinear) to the input size and min–max normalised
per image, as pytorch-grad-cam does.

Our own small functions, with pytorch-grad-cam, torchcam and captum as test oracles only
(tests/test_heatmap_methods.py): pytorch-grad-cam and torchcam call model.eval() and keep hooks on the shared
module for their object's lifetime (unsafe across sessions), move maps through NumPy on the CPU, and
pytorch-grad-cam's EigenCAM has no fixed sign; captum's attributions are stateless, but its NoiseTunnel
draws from the global random generator, which every session shares, and it would be a runtime dependency for
three functions of a dozen lines each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import attribution, cam
from .common import normalise, resolve_target

__all__ = [
    "ATTRIBUTION_METHODS",
    "CAM_METHODS",
    "METHODS",
    "Method",
    "compute",
    "grad_cam",
    "normalise",
    "passes",
    "saliency",
]


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    kind: str  # "cam": from a layer's feature maps; "attribution": from the input's gradient
    summary: str
    options: dict[str, tuple[object, str]] = field(default_factory=dict)  # option → (default, meaning)
    run: Callable = field(repr=False, default=None)
    gradients: bool = True  # CAM methods: whether the class score is backpropagated to the layer

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "summary": self.summary,
            "options": {k: {"default": d, "meaning": m} for k, (d, m) in self.options.items()},
        }


_BATCH = (None, "rows per forward/backward (default: a memory budget, engine.attacks.chunks)")

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "gradcam", "Grad-CAM", "cam", "feature maps weighted by the spatial mean of their gradient", {}, cam.gradcam
        ),
        Method(
            "gradcam++",
            "Grad-CAM++",
            "cam",
            "feature maps weighted by positive gradients, each scaled by second- and third-order terms",
            {},
            cam.gradcam_pp,
        ),
        Method(
            "scorecam",
            "Score-CAM",
            "cam",
            "each feature map masks the input; its weight is the softmax of the masked images' class logits",
            {"batch_size": _BATCH},
            cam.scorecam,
            gradients=False,
        ),
        Method(
            "layercam",
            "LayerCAM",
            "cam",
            "feature maps weighted position by position by their positive gradient",
            {},
            cam.layercam,
        ),
        Method(
            "xgradcam",
            "XGrad-CAM",
            "cam",
            "feature maps weighted by their gradient, averaged with the map's own activations as weights",
            {},
            cam.xgradcam,
        ),
        Method(
            "eigencam",
            "Eigen-CAM",
            "cam",
            "the feature maps' first principal component: class-independent",
            {},
            cam.eigencam,
            gradients=False,
        ),
        Method(
            "saliency",
            "Saliency",
            "attribution",
            "|∂ class score / ∂ pixel|, the largest over colour channels",
            {"batch_size": _BATCH},
            attribution.saliency,
        ),
        Method(
            "smoothgrad",
            "SmoothGrad",
            "attribution",
            "the saliency map averaged over copies of the image with Gaussian noise added",
            {
                "samples": (25, "noisy copies per image"),
                "noise": (0.15, "the noise's standard deviation on the 0-1 pixel scale"),
                "seed": (0, "seed of the noise (a generator made for the call)"),
                "batch_size": _BATCH,
            },
            attribution.smoothgrad,
        ),
        Method(
            "integrated-gradients",
            "Integrated Gradients",
            "attribution",
            "gradients integrated along the straight path from a black image, times the pixel change",
            {
                "steps": (32, "quadrature points on the path"),
                "rule": ("gausslegendre", "gausslegendre or riemann_trapezoid"),
                "baseline": (0.0, "grey level of the baseline image (0: black)"),
                "batch_size": _BATCH,
            },
            attribution.integrated_gradients,
        ),
    )
}
CAM_METHODS = tuple(n for n, m in METHODS.items() if m.kind == "cam")
ATTRIBUTION_METHODS = tuple(n for n, m in METHODS.items() if m.kind == "attribution")


def passes(method: str, channels: int = 0) -> float:
    """One image's cost of `method` with its default options, in forward+backward passes (a forward alone
    counts a third): what prices a run of several methods. `channels` is the CAM layer's, for Score-CAM."""
    record = _method(method)
    if method == "scorecam":
        return (channels + 1) / 3
    if method == "smoothgrad":
        return float(record.options["samples"][0])
    if method == "integrated-gradients":
        return float(record.options["steps"][0])
    return 1.0 if record.gradients else 1 / 3


def _method(method: str, kinds=("cam", "attribution")) -> Method:
    record = METHODS.get(method)
    if record is None or record.kind not in kinds:
        names = [n for n, m in METHODS.items() if m.kind in kinds]
        raise ValueError(f"unknown heat-map method {method!r}; choose one of {', '.join(names)}")
    return record


def compute(model, x: torch.Tensor, method: str, layer: int | str | None = None, target=None, **options):
    """N×H×W heat maps in [0, 1] of `x` (N×C×H×W in [0, 1]) by `method` (a key of METHODS).

    `layer` (catalogue index or name, default the model's cam_layer) is for CAM methods only; `target` is a
    class index or one per image (default: predicted). `options` are the method's (METHODS[method].options).
    """
    record = _method(method)
    unknown = sorted(set(options) - set(record.options))
    if unknown:
        known = ", ".join(record.options) or "none"
        raise ValueError(f"{method} has no option {', '.join(unknown)} (its options: {known})")
    if record.kind == "cam":
        return cam.run(record.run, model, x, layer, target, record.gradients, **options)
    if layer is not None:
        raise ValueError(f"{method} attributes the input pixels: it takes no layer")
    index = resolve_target(model, x, target)
    return normalise(record.run(model, x.detach(), index, **options))


def grad_cam(
    model, x: torch.Tensor, layer: int | str | None = None, target=None, method: str = "gradcam", **options
) -> torch.Tensor:
    """N×H×W CAM heat maps in [0, 1] for class `target` (default: predicted) at catalogue `layer` (default:
    cam_layer); `method` is one of CAM_METHODS."""
    _method(method, kinds=("cam",))
    return compute(model, x, method, layer=layer, target=target, **options)


def saliency(model, x: torch.Tensor, target=None) -> torch.Tensor:
    """|∂ score / ∂x|, max over channels, normalised per image: the plain input-gradient map."""
    return compute(model, x, "saliency", target=target)
