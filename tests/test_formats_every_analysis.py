"""Every model format, built here from a small network, through every kind of analysis: a gradient attack,
Grad-CAM, the activation attack (AA) and a layer's features. Each format's own checks (metadata, refusals,
agreement with the network) are in tests/test_formats_graph.py and tests/test_formats_hub.py."""

import io
import json
import warnings

import own_world
import pytest
import torch

from engine import attacks
from engine.analysis.target_images import features
from engine.heatmaps import grad_cam
from engine.models import formats

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]  # a model per format
CLASSES = own_world.META["class_names"]
SMALL = {"input_size": [3, 32, 32], "class_names": CLASSES}


def _safetensors(state) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


def _torchvision():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return formats.load(buf.getvalue(), filename="resnet18-10.pth", arch="resnet18", meta=SMALL)


def _timm():
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=10).eval()
    return formats.load(_safetensors(net.state_dict()), filename="r10t.safetensors", arch="timm:resnet10t", meta=SMALL)


def _hf(tmp_path):
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    labels = dict(enumerate(CLASSES))
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_labels=10,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    folder = tmp_path / "tiny-resnet"
    ResNetForImageClassification(config).eval().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_resize": True,
                "size": {"height": 32, "width": 32},
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.5] * 3,
                "image_std": [0.25] * 3,
            }
        )
    )
    return formats.load(f"hf:{folder}")


def _onnx():
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            own_world.net("white"),
            (torch.zeros(1, 3, 32, 32),),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return formats.load(buf.getvalue(), filename="white.onnx", meta=own_world.META)


BUILD = {
    "torchvision": lambda tmp: _torchvision(),
    "timm": lambda tmp: _timm(),
    "hf": _hf,
    "onnx": lambda tmp: _onnx(),
    "export": lambda tmp: formats.load(own_world.export_bytes(), filename="white.pt2", meta=own_world.META),
    "torchscript": lambda tmp: formats.load(own_world.torchscript_bytes(), filename="white.pt", meta=own_world.META),
}


@pytest.mark.parametrize("kind", list(BUILD))
def test_every_format_takes_every_analysis(kind, tmp_path):
    model = BUILD[kind](tmp_path)
    assert model.num_classes == 10 and model.class_names == CLASSES
    assert model.domain not in ("imagenet", "fashion-mnist")  # a world of its own, made at load time
    x = torch.rand(4, *model.input_size, generator=torch.Generator().manual_seed(1))
    eps = 0.05
    pgd = attacks.run("pgd", model, x, eps=eps, steps=5, seed=0)
    assert float((pgd.x_adv - x).abs().max()) <= eps + 1e-6
    noise = (x + eps * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(2)))).clamp(0, 1)
    with torch.no_grad():
        y = model(x).argmax(1)
        loss = lambda z: torch.nn.functional.cross_entropy(model(z), y).item()  # noqa: E731
        assert loss(pgd.x_adv) > loss(noise)  # the attack beats noise of the same size
    cam = grad_cam(model, x)
    assert cam.shape == (4, *model.input_size[1:]) and torch.isfinite(cam).all() and float(cam.max()) <= 1 + 1e-6
    layers = model.layers()
    assert len(layers) >= 2
    assert features(model, x, len(layers) // 2).shape[0] == 4
    target = (y + 1) % 10
    aa = attacks.run("aa", model, x, target=target, target_images=x.flip(0), eps=eps, steps=3, layer=len(layers) // 2)
    assert float((aa.x_adv - x).abs().max()) <= eps + 1e-6 and bool((aa.x_adv != x).any())
