"""Every heat-map method of engine.heatmaps against its reference implementation, map by map.

CAM methods against pytorch-grad-cam 1.5.7 (LayerCAM and XGrad-CAM also against torchcam 0.5.0), attributions
against captum 0.9.0 with the same settings: the same target class, layer, baseline (black), quadrature rule
and step count, and for SmoothGrad the same noise (captum draws it from the global generator seeded with the
same seed in the same layout, so the two average identical samples: a bound of 0.99 holds with few samples).
The pass mark is a Pearson correlation ≥ 0.99 for every map, on the digits CNN and on Lite0.
"""

import numpy as np
import pytest
import torch
from conftest import hooks_left, require

from engine import heatmaps, images
from engine.heatmaps.common import to_input_size

pytestmark = pytest.mark.oracle

CAMS = ("gradcam", "gradcam++", "scorecam", "layercam", "xgradcam", "eigencam")
BOUND = 0.99


def correlations(ours: torch.Tensor, theirs) -> list[float]:
    """Per map; a pair of all-zero maps (no positive evidence in either) counts as 1, one of them alone as 0."""
    out = []
    for a, b in zip(ours.detach().cpu().numpy(), np.asarray(theirs)):
        flat_a, flat_b = a.max() - a.min() < 1e-6, b.max() - b.min() < 1e-6
        out.append(float(flat_a and flat_b) if flat_a or flat_b else float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
    return out


@pytest.fixture(scope="module")
def grad_cam_reference():
    pgc = require("pytorch_grad_cam", "bash scripts/test.sh installs grad-cam==1.5.7 --no-deps")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    class SignedEigenCAM(pgc.EigenCAM):
        """EigenCAM with the library's own sign correction: a bare SVD's sign is whatever LAPACK returns."""

        def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
            return get_2d_projection_with_sign_correction(activations)

    classes = {
        "gradcam": pgc.GradCAM,
        "gradcam++": pgc.GradCAMPlusPlus,
        "scorecam": pgc.ScoreCAM,
        "layercam": pgc.LayerCAM,
        "xgradcam": pgc.XGradCAM,
        "eigencam": SignedEigenCAM,
    }

    def maps(model, x, layer_name, targets, method):
        with classes[method](model=model, target_layers=[model.get_submodule(layer_name)]) as cam:
            cam.batch_size = 64  # Score-CAM's masked images per forward
            # Our weights are frozen, so the graph must start at the input for their backward() to work.
            return cam(
                input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(t)) for t in targets]
            )

    return maps


@pytest.fixture(scope="module")
def captum_attr():
    require("captum", "bash scripts/test.sh installs captum==0.9.0 --no-deps")
    import captum.attr

    return captum.attr


def reference_attribution(attr, model, x, targets, case, options):
    """captum's attributions with our `options`, reduced per pixel as ours: max |·| over channels, or |Σ channels|
    for IG."""
    targets = [int(t) for t in targets]
    if case == "saliency":
        raw = attr.Saliency(model).attribute(x.clone().requires_grad_(True), target=targets, abs=True).amax(1)
    elif case == "smoothgrad":
        torch.manual_seed(options["seed"])
        raw = attr.NoiseTunnel(attr.Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=options["samples"], stdevs=options["noise"], target=targets
        )
        raw = raw.amax(1)
    else:
        ig = attr.IntegratedGradients(model)
        raw = ig.attribute(
            x, baselines=torch.zeros_like(x), target=targets, n_steps=options["steps"], method=options["rule"]
        )
        raw = raw.sum(1).abs()
    return heatmaps.normalise(raw.detach())


OUR_OPTIONS = {
    "saliency": ("saliency", {}),
    "smoothgrad": ("smoothgrad", {"samples": 4, "noise": 0.15, "seed": 5}),
    "ig-gausslegendre": ("integrated-gradients", {"steps": 6, "rule": "gausslegendre"}),
    "ig-riemann_trapezoid": ("integrated-gradients", {"steps": 6, "rule": "riemann_trapezoid"}),
}


@pytest.mark.parametrize("method", CAMS)
def test_cams_match_pytorch_grad_cam_on_digits(digits, grad_cam_reference, method):
    model, x, y = digits
    x, y = x[:16], y[:16]
    for layer in ("net.features.6", "net.features.3"):
        ours = heatmaps.compute(model, x, method, layer=layer, target=y)
        theirs = grad_cam_reference(model, x, layer, y, method)
        assert ours.shape == (16, 8, 8) and float(ours.min()) >= 0 and float(ours.max()) <= 1
        assert min(correlations(ours, theirs)) >= BOUND, (method, layer)
    assert hooks_left(model) == 0


@pytest.mark.parametrize("method", ["layercam", "xgradcam"])
def test_cams_match_torchcam_on_digits(digits, method):
    require("torchcam", "bash scripts/test.sh installs torchcam==0.5.0 --no-deps")
    from torchcam.methods import LayerCAM, XGradCAM

    model, x, y = digits
    x, y = x[:16], y[:16]
    with {"layercam": LayerCAM, "xgradcam": XGradCAM}[method](model, "net.features.6", input_shape=(1, 8, 8)) as ext:
        scores = model(x.clone().requires_grad_(True))
        raw = ext(class_idx=[int(t) for t in y], scores=scores)[0]
    theirs = to_input_size(raw.detach().clamp_min(0), x.shape[-2:])  # torchcam stops at layer resolution
    assert min(correlations(heatmaps.compute(model, x, method, target=y), theirs)) >= BOUND
    assert hooks_left(model) == 0


@pytest.mark.parametrize("method", CAMS)
def test_cams_match_pytorch_grad_cam_on_lite0(lite0, grad_cam_reference, method):
    x = images.load(images.gallery()["chelsea"], lite0)
    # At the 7×7 head Grad-CAM, XGrad-CAM, Grad-CAM++ and LayerCAM correlate > 0.98 with one another, so the head
    # alone would not tell them apart; at the 14×14 block 9 no two of the five exceed 0.6. Score-CAM costs one
    # forward per channel: an early 16-channel block instead of the 1280-channel head.
    layers = [lite0.layer(1).name] if method == "scorecam" else [lite0.cam_layer, lite0.layer(9).name]
    for layer in layers:
        ours = heatmaps.compute(lite0, x, method, layer=layer, target=285)
        theirs = grad_cam_reference(lite0, x, layer, [285], method)
        assert ours.shape == (1, 224, 224)
        assert min(correlations(ours, theirs)) >= BOUND, layer
    assert hooks_left(lite0) == 0


@pytest.mark.parametrize("case", list(OUR_OPTIONS))
def test_attributions_match_captum_on_digits(digits, captum_attr, case):
    model, x, y = digits
    x, y = x[:16], y[:16]
    method, options = OUR_OPTIONS[case]
    ours = heatmaps.compute(model, x, method, target=y, **options)
    theirs = reference_attribution(captum_attr, model, x, y, case, options)
    assert ours.shape == (16, 8, 8) and float(ours.max()) == pytest.approx(1.0, abs=1e-5)
    assert min(correlations(ours, theirs)) >= BOUND


@pytest.mark.parametrize("case", ["saliency", "smoothgrad", "ig-gausslegendre"])
def test_attributions_match_captum_on_lite0(lite0, captum_attr, case):
    x = images.load(images.gallery()["chelsea"], lite0)
    method, options = OUR_OPTIONS[case]
    # Fewer samples and steps than on digits: each is a forward and backward at 224 px, for us and for captum.
    options = {**options, **{k: 3 for k in ("samples", "steps") if k in options}}
    ours = heatmaps.compute(lite0, x, method, target=285, **options)
    assert min(correlations(ours, reference_attribution(captum_attr, lite0, x, [285], case, options))) >= BOUND


def test_smoothgrad_noise_is_its_own():
    """The seed decides the noise; the global generator is neither read nor advanced."""
    from tiny_models import load_digits_classifier

    model = load_digits_classifier(0)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    a = heatmaps.compute(model, x, "smoothgrad", samples=3, seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a, heatmaps.compute(model, x, "smoothgrad", samples=3, seed=1))
    assert not torch.equal(a, heatmaps.compute(model, x, "smoothgrad", samples=3, seed=2))


def test_table_and_errors(digits):
    model, x, y = digits
    assert set(heatmaps.METHODS) == {*CAMS, "saliency", "smoothgrad", "integrated-gradients"}
    assert {m.kind for m in heatmaps.METHODS.values()} == {"cam", "attribution"}
    assert all(m.as_dict()["title"] and m.summary for m in heatmaps.METHODS.values())
    with pytest.raises(ValueError, match="unknown heat-map method"):
        heatmaps.compute(model, x[:1], "rise")
    with pytest.raises(ValueError, match="has no option"):
        heatmaps.compute(model, x[:1], "gradcam", steps=3)
    with pytest.raises(ValueError, match="takes no layer"):
        heatmaps.compute(model, x[:1], "saliency", layer=2)
    with pytest.raises(ValueError, match="unknown integration rule"):
        heatmaps.compute(model, x[:1], "integrated-gradients", rule="simpson")
    # Batched Score-CAM and IG give the maps one image at a time gives, whatever the chunk size.
    cases = (("scorecam", {}, {"batch_size": 7}), ("integrated-gradients", {"steps": 5}, {"batch_size": 3}))
    for method, options, chunked in cases:
        together = heatmaps.compute(model, x[:4], method, target=y[:4], **options, **chunked)
        alone = [heatmaps.compute(model, x[i : i + 1], method, target=y[i : i + 1], **options) for i in range(4)]
        assert torch.allclose(together, torch.cat(alone), atol=1e-5)
    assert hooks_left(model) == 0


def test_concurrent_sessions_get_their_own_maps(digits):
    """Threads sharing one model (app sessions) get the maps they would get alone, and no hook outlives a call."""
    from concurrent.futures import ThreadPoolExecutor

    model, x, y = digits
    jobs = [(m, x[i : i + 4], y[i : i + 4]) for i, m in enumerate(["gradcam", "scorecam", "layercam", "saliency"] * 2)]
    alone = [heatmaps.compute(model, xs, m, target=ys) for m, xs, ys in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: heatmaps.compute(model, job[1], job[0], target=job[2]), jobs))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(alone, together))
    assert hooks_left(model) == 0
