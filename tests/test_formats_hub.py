"""Weights on a known architecture (torchvision, timm), Hugging Face folders, and reading weights files
(engine.models.formats: torchvision, timm, hf, weights). Everything is built here; nothing is downloaded."""

import gzip
import io
import json
import math
import struct
import zipfile

import pytest
import torch
import torchvision
import torchvision.models as tvm
from conftest import hooks_left
from safetensors.torch import save as save_safetensors

from engine import attacks
from engine.analysis.target_images import features
from engine.heatmaps import grad_cam
from engine.models.formats import BadModelFile, check_meta
from engine.models.formats import hf as hf_format
from engine.models.formats import timm as timm_format
from engine.models.formats import torchvision as tv_format
from engine.models.formats.weights import read_state_dict

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SMALL = check_meta({"input_size": [3, 64, 64]})
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _sentence(err) -> str:
    """The refusal's text, checked to be a plain sentence rather than a library's own message."""
    text = str(err.value)
    for leak in ("Traceback", "torch.Size", "In PyTorch 2.6", "Error(s) in loading", "\n"):
        assert leak not in text, text
    return text


def _x(n=2, size=64):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return tvm.resnet18(num_classes=10).eval()


@pytest.fixture(scope="module")
def resnet18_files(resnet18):
    state = resnet18.state_dict()
    return {"pth": _torch_bytes(state), "safetensors": save_safetensors(state)}


# ---------------------------------------------------------------- torchvision


@pytest.mark.parametrize("suffix", ["pth", "safetensors"])
def test_fine_tuned_resnet18_takes_its_head_from_the_file(resnet18, resnet18_files, suffix):
    model = tv_format.load("resnet18", resnet18_files[suffix], dict(SMALL), name="mine", where=f"mine.{suffix}")
    assert model.num_classes == 10 and model.class_names[3] == "class 3"
    assert model.input_size == (3, 64, 64) and model.resize_size == 73  # torchvision's 256/224, at 64 px
    assert model.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    assert model.std.flatten().tolist() == pytest.approx(IMAGENET_STD)
    x = _x()
    with torch.no_grad():
        assert torch.allclose(model(x), resnet18((x - model.mean) / model.std), atol=1e-4)
    assert model.cam_layer == "net.layer4" and model.layers()[0].name == "net.relu"


def test_the_dispatcher_loads_an_arch_spec_and_an_upload(resnet18_files, tmp_path):
    from engine.models import formats

    path = tmp_path / "ft.safetensors"
    path.write_bytes(resnet18_files["safetensors"])
    model = formats.load(f"resnet18={path}", meta={"input_size": [3, 64, 64]})
    assert model.num_classes == 10 and model.input_size == (3, 64, 64)
    uploaded = formats.load(resnet18_files["pth"], filename="ft.pth", arch="resnet18", meta={"input_size": [3, 64, 64]})
    assert uploaded.num_classes == 10
    with pytest.raises(BadModelFile) as err:
        formats.load(str(path))
    assert "it looks like resnet18" in _sentence(err)


def test_architecture_is_guessed_from_the_state_dict(resnet18):
    assert tv_format.guess_architecture(resnet18.state_dict()) == "resnet18"
    assert "resnet18" in tv_format.ARCHITECTURES and "squeezenet1_1" in tv_format.ARCHITECTURES
    assert not any(a.startswith(("fasterrcnn", "fcn_", "r3d", "quantized", "raft")) for a in tv_format.ARCHITECTURES)
    info = tv_format.describe(None, _torch_bytes(resnet18.state_dict()))
    assert info["arch"] == "resnet18" and info["class_names"] == 10 and info["input_size"] == [3, 224, 224]
    assert info["resize_size"] == 256 and info["mean"] == pytest.approx(IMAGENET_MEAN)
    assert len(tv_format.describe("resnet18")["class_names"]) == 1000


@pytest.mark.parametrize("arch", ["resnet18", "googlenet", "densenet121", "regnet_x_400mf"])
def test_the_committed_signatures_are_this_torchvisions(arch):
    """The file the guess reads instead of building 80 models: measured on the installed torchvision, every
    architecture in it, and each the same as building it now (GoogLeNet's aux heads, DenseNet's keys, RegNet's
    tensor-computed widths)."""
    stored = json.loads(gzip.decompress(tv_format.SIGNATURES.read_bytes()))
    assert stored["torchvision"] == torchvision.__version__, "rerun: python scripts/torchvision_signatures.py"
    assert sorted(stored["signatures"]) == tv_format.ARCHITECTURES
    shapes, head = tv_format.measure(arch)
    assert stored["signatures"][arch] == [{k: list(v) for k, v in shapes.items()}, sorted(head)]
    assert head  # a head is found, so a fine-tuned file's width can be read


def test_weights_of_another_architecture_name_the_layer_and_the_likely_one(resnet18_files):
    with pytest.raises(BadModelFile) as err:
        tv_format.load("resnet34", resnet18_files["pth"], {}, name="x", where="ft.pth")
    text = _sentence(err)
    assert text.startswith("ft.pth: resnet34 has a layer layer1.2.conv1.weight (64×64×3×3)")
    assert "(it looks like resnet18)" in text


def test_a_shape_mismatch_names_both_shapes():
    small = tvm.shufflenet_v2_x0_5(num_classes=3).state_dict()
    with pytest.raises(BadModelFile) as err:
        tv_format.load("shufflenet_v2_x1_0", _torch_bytes(small), {}, name="x", where="s.pth")
    text = _sentence(err)
    assert "in the file but" in text and "in shufflenet_v2_x1_0" in text
    assert "(it looks like shufflenet_v2_x0_5)" in text


def test_a_backbone_without_its_head_and_an_unknown_arch_are_refused(resnet18):
    headless = {k: v for k, v in resnet18.state_dict().items() if not k.startswith("fc.")}
    with pytest.raises(BadModelFile) as err:
        tv_format.load("resnet18", _torch_bytes(headless), {}, name="x", where="b.pth")
    assert "every layer of resnet18 but its classifier head (fc.bias)" in _sentence(err)
    with pytest.raises(BadModelFile) as err:
        tv_format.load("resnet19", b"unused", {}, name="x", where="b.pth")
    assert "did you mean resnet18" in _sentence(err)


@pytest.fixture(scope="module")
def mobilenet():
    """An architecture the old upload path did not offer, at a small input size."""
    torch.manual_seed(1)
    net = tvm.mobilenet_v3_small(num_classes=5).eval()
    meta = check_meta({"input_size": [3, 64, 64], "class_names": ["a", "b", "c", "d", "e"]})
    return net, tv_format.load(
        "mobilenet_v3_small", save_safetensors(net.state_dict()), meta, name="mnv3", where="mnv3.safetensors"
    )


def test_an_architecture_beyond_the_old_six_supports_every_analysis(mobilenet):
    net, model = mobilenet
    x = _x(3)
    with torch.no_grad():
        assert torch.allclose(model(x), net((x - model.mean) / model.std), atol=1e-4)
    assert model.class_names == ["a", "b", "c", "d", "e"]
    layers = model.layers()
    assert [info.name for info in layers] == [f"net.features.{i}" for i in range(13)]
    assert model.cam_layer == "net.features.12" and layers[-1].shape == (576, 2, 2)
    cam = grad_cam(model, x)
    assert cam.shape == (3, 64, 64) and torch.isfinite(cam).all()
    assert features(model, x, 4).shape == (3, math.prod(layers[4].shape))
    result = attacks.run("pgd", model, x, eps=0.03, steps=2)
    assert (result.x_adv - x).abs().max() <= 0.03 + 1e-6
    assert hooks_left(model) == 0


@pytest.mark.parametrize(
    "arch, cam",
    [
        ("squeezenet1_1", "net.features.12"),
        ("regnet_x_400mf", "net.trunk_output.block4"),
        ("shufflenet_v2_x0_5", "net.conv5"),
    ],
)
def test_family_catalogues(arch, cam):
    net = tvm.get_model(arch, weights=None, num_classes=4)
    model = tv_format.load(arch, save_safetensors(net.state_dict()), dict(SMALL), name=arch, where=arch)
    assert model.cam_layer == cam and model.layers()[-1].name == cam
    assert grad_cam(model, _x(1)).shape == (1, 64, 64)


# ---------------------------------------------------------------- timm


@pytest.fixture(scope="module")
def timm_net():
    import timm

    torch.manual_seed(2)
    return timm.create_model("test_efficientnet", pretrained=False, num_classes=10).eval()


@pytest.mark.parametrize("suffix", ["safetensors", "pth"])
def test_timm_checkpoint_loads_with_timm_preprocessing(timm_net, suffix):
    state = timm_net.state_dict()
    data = (
        save_safetensors(state)
        if suffix == "safetensors"
        else _torch_bytes({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}})
    )  # a training script's checkpoint
    model = timm_format.load("test_efficientnet", data, {}, name="t", where=f"t.{suffix}", filename=f"t.{suffix}")
    assert model.input_size == (3, 160, 160) and model.resize_size == 168  # timm's crop_pct 0.95
    assert model.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN) and model.num_classes == 10
    x = _x(2, 160)
    with torch.no_grad():
        assert torch.allclose(model(x), timm_net((x - model.mean) / model.std), atol=1e-4)
    assert [info.name for info in model.layers()] == [f"net.blocks.{i}" for i in range(5)]
    assert model.cam_layer == "net.blocks.4"
    assert grad_cam(model, x[:1]).shape == (1, 160, 160)


def test_timm_describe_and_metadata_override(timm_net):
    info = timm_format.describe("test_vit")
    assert info["mean"] == [0.5, 0.5, 0.5] and info["input_size"] == [3, 160, 160] and len(info["class_names"]) == 1000
    data = save_safetensors(timm_net.state_dict())
    assert timm_format.describe("test_efficientnet", data)["class_names"] == 10
    model = timm_format.load(
        "test_efficientnet", data, check_meta({"input_size": [3, 64, 64], "mean": [0.5] * 3}), name="t", where="t"
    )
    assert model.input_size == (3, 64, 64) and model.resize_size == 67 and model.mean.flatten().tolist() == [0.5] * 3


def test_timm_checkpoint_of_another_architecture_and_unknown_names(timm_net):
    data = save_safetensors(timm_net.state_dict())
    with pytest.raises(BadModelFile) as err:
        timm_format.load("test_convnext", data, {}, name="t", where="t.safetensors")
    text = _sentence(err)
    assert text.startswith("t.safetensors: test_convnext has a layer stem.0.weight")
    assert "it looks like timm's test_efficientnet" in text
    with pytest.raises(BadModelFile) as err:
        timm_format.load("efficientnet_b9", data, {}, name="t", where="t.safetensors")
    assert "'efficientnet_b9' is not a timm architecture; close matches: efficientnet_b8" in _sentence(err)


def test_timm_token_model_says_why_it_has_no_catalogue():
    import timm

    vit = timm.create_model("test_vit", pretrained=False, num_classes=3)
    model = timm_format.load("test_vit", _torch_bytes(vit.state_dict()), {}, name="v", where="v.pth")
    assert "token sequences" in model.layers_unavailable and model.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    x = _x(1, 160)
    assert attacks.run("fgsm", model, x, eps=0.01).x_adv.shape == x.shape


# ---------------------------------------------------------------- Hugging Face


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_zip_paths_leaving_the_folder_are_refused():
    config = json.dumps({"model_type": "resnet"}).encode()
    for bad in ("../evil.txt", "/etc/evil", "model/../../evil", "C:/evil", "..\\evil"):
        with pytest.raises(BadModelFile) as err:
            hf_format.load(_zip({"model/config.json": config, bad: b"x"}), {}, name="z", where="up.zip")
        assert "refused, nothing was unpacked" in _sentence(err)
    link = zipfile.ZipInfo("model/weights")
    link.external_attr = 0o120777 << 16  # a symbolic link, as `zip -y` stores one
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("model/config.json", config)
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(BadModelFile) as err:
        hf_format.load(buf.getvalue(), {}, name="z", where="up.zip")
    assert "a symbolic link" in _sentence(err)
    with pytest.raises(BadModelFile) as err:
        hf_format.load(_zip({"readme.txt": b"hello"}), {}, name="z", where="up.zip")
    assert "no config.json" in _sentence(err)
    with pytest.raises(BadModelFile) as err:
        hf_format.load(b"PK\x03\x04 truncated", {}, name="z", where="up.zip")
    assert "not a readable zip" in _sentence(err)


def test_remote_code_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "mine",
                "auto_map": {"AutoModelForImageClassification": "modeling_mine.MineForImageClassification"},
            }
        )
    )
    with pytest.raises(BadModelFile) as err:
        hf_format.load(tmp_path, {}, name="m", where="mine")
    assert "names its own Python code (auto_map), which is never run here" in _sentence(err)
    with pytest.raises(BadModelFile):
        hf_format.describe(_zip({"config.json": (tmp_path / "config.json").read_bytes()}))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(3)
    labels = {i: f"kind {i}" for i in range(10)}
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_labels=10,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    net = ResNetForImageClassification(config).eval()
    folder = tmp_path_factory.mktemp("hf") / "tiny-resnet"
    net.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "ConvNextImageProcessor",
                "do_resize": True,
                "size": {"shortest_edge": 64},
                "crop_pct": 0.875,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": IMAGENET_MEAN,
                "image_std": IMAGENET_STD,
            }
        )
    )
    return net, folder


@pytest.mark.slow
def test_hf_folder_and_its_zip_load(hf_folder, tmp_path):
    from engine.models import formats

    net, folder = hf_folder
    model = hf_format.load(folder, {}, name="tiny", where=str(folder))
    assert model.input_size == (3, 64, 64) and model.resize_size == 73 and model.class_names[2] == "kind 2"
    x = _x()
    with torch.no_grad():
        assert torch.allclose(model(x), net(pixel_values=(x - model.mean) / model.std).logits, atol=1e-5)
    assert [i.name for i in model.layers()] == [f"net.model.resnet.encoder.stages.{i}" for i in range(2)]
    assert grad_cam(model, x).shape == (2, 64, 64)
    assert attacks.run("pgd", model, x, eps=0.03, steps=2).x_adv.shape == x.shape

    zipped = _zip({f"tiny-resnet/{p.name}": p.read_bytes() for p in folder.iterdir()})
    from_zip = formats.load(zipped, filename="tiny.zip")
    with torch.no_grad():
        assert torch.allclose(from_zip(x), model(x))
    assert formats.load(f"hf:{folder}").num_classes == 10
    info = hf_format.describe(zipped)
    assert info["input_size"] == [3, 64, 64] and info["arch"] == "ResNetForImageClassification"


@pytest.mark.slow
def test_hf_preprocessing_switches_and_refusals(hf_folder, tmp_path):
    import shutil

    _, folder = hf_folder
    config = json.loads((folder / "config.json").read_text())
    assert hf_format.preprocessing(
        {"size": {"height": 32, "width": 32}, "do_rescale": False, "image_mean": [127.5] * 3, "image_std": [127.5] * 3},
        config,
    ) == {"input_size": [3, 32, 32], "resize_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}
    assert (
        hf_format.preprocessing(
            {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}, "do_normalize": False}, config
        )["mean"]
        == [0.0] * 3
    )

    other = tmp_path / "other"
    shutil.copytree(folder, other)
    (other / "config.json").write_text(json.dumps({**config, "hidden_sizes": [8, 32]}))
    with pytest.raises(BadModelFile) as err:
        hf_format.load(other, {}, name="o", where="other")
    assert "in the weights but" in _sentence(err) and "×" in str(err.value)

    (other / "config.json").write_text(json.dumps(config))
    (other / "preprocessor_config.json").unlink()
    with pytest.raises(BadModelFile) as err:
        hf_format.load(other, {}, name="o", where="other")
    assert "preprocessor_config.json is missing" in _sentence(err)

    (other / "model.safetensors").unlink()
    (other / "pytorch_model.bin").write_bytes(_torch_bytes({"w": torch.zeros(1), "opt": torch.optim.SGD}))
    with pytest.raises(BadModelFile) as err:
        hf_format.load(
            other, check_meta({"input_size": [3, 64, 64], "mean": [0.5] * 3, "std": [0.5] * 3}), name="o", where="other"
        )
    assert "holds Python objects beyond tensors" in _sentence(err)


@pytest.mark.slow
def test_hf_token_model_has_no_catalogue(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    vit = ViTForImageClassification(
        ViTConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
            num_labels=3,
        )
    )
    vit.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"size": {"height": 32, "width": 32}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    )
    model = hf_format.load(tmp_path, {}, name="vit", where="vit")
    assert "token sequences" in model.layers_unavailable and model.class_names == ["class 0", "class 1", "class 2"]
    x = _x(1, 32)
    assert attacks.run("fgsm", model, x, eps=0.01).x_adv.shape == x.shape


# ---------------------------------------------------------------- reading weights


def _safetensors(header: dict | bytes, body: bytes = b"", declared: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if declared is None else declared) + raw + body


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, declared=10**6),
            "declares a safetensors header of 1,000,000 bytes",
        ),
        (_safetensors(b"{not json at all}"), "header that is not valid JSON"),
        (
            _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
            "points at bytes 0–16 but the data section holds 8 bytes",
        ),
        (
            _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8),
            "holds 8 bytes for a 4 F32 tensor",
        ),
        (_safetensors({"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}, b"\0"), "unknown dtype"),
        (_safetensors({"w": [1, 2]}), "lacks dtype, shape or data_offsets"),
        (b"\x05\0\0", "too short for a safetensors file"),
    ],
)
def test_corrupt_safetensors_headers_are_sentences(data, expected):
    with pytest.raises(BadModelFile) as err:
        read_state_dict(data, "w.safetensors", "w.safetensors")
    assert expected in _sentence(err)


def test_weights_unwrap_common_checkpoint_shapes():
    w = torch.arange(4.0)
    assert read_state_dict(_torch_bytes({"model": {"module.fc.weight": w}, "epoch": 1}), "c.pth")["fc.weight"].equal(w)
    assert set(read_state_dict(save_safetensors({"a": w, "b": w.clone()}), "c.safetensors")) == {"a", "b"}
    with pytest.raises(BadModelFile) as err:
        read_state_dict(_torch_bytes({"fc.weight": w, "step": 3}), "c.pth")
    assert "'step' = a int, not a tensor" in _sentence(err)
    with pytest.raises(BadModelFile) as err:
        read_state_dict(b"", "c.pth")
    assert "is empty" in _sentence(err)
    with pytest.raises(BadModelFile) as err:
        read_state_dict(b"definitely not weights", "c.pth", "c.pth")
    assert "not a PyTorch weights file or safetensors" in _sentence(err)
    with pytest.raises(BadModelFile) as err:
        read_state_dict(_torch_bytes({"w": w})[:200], "c.pth", "c.pth")
    assert "(truncated or another format)" in _sentence(err)


class _Config:
    """A Python object saved next to tensors: what weights_only refuses."""

    size = 3


def test_other_files_picked_as_weights_say_what_they_are(resnet18):
    with pytest.raises(BadModelFile) as err:
        read_state_dict(_torch_bytes({"w": torch.zeros(1), "config": _Config()}), "p.pt", "p.pt")
    assert "holds Python objects beyond tensors (a pickle); save `model.state_dict()`" in _sentence(err)
    with pytest.raises(BadModelFile) as err:
        read_state_dict(_torch_bytes(torch.nn.Linear(2, 2)), "m.pt", "m.pt")
    assert "holds Python objects beyond tensors" in _sentence(err)

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    with pytest.raises(BadModelFile) as err:
        tv_format.load("resnet18", buf.getvalue(), {}, name="x", where="s.pt")
    assert "this is a TorchScript file: choose TorchScript (or give the file without an architecture)" in _sentence(err)

    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    with pytest.raises(BadModelFile) as err:
        read_state_dict(helper.make_model(graph).SerializeToString(), "n.onnx", "n.onnx")
    assert "this is an ONNX graph: choose ONNX" in _sentence(err)

    buf = io.BytesIO()
    torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),)), buf)
    with pytest.raises(BadModelFile) as err:
        timm_format.load("test_efficientnet", buf.getvalue(), {}, name="x", where="p.pt2")
    assert "torch.export program" in _sentence(err)
