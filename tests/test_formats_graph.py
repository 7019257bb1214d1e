"""A user's own model file as a Classifier (engine.models.formats): ONNX, TorchScript, torch.export programs and
entry points, the dispatcher that tells them apart, and the one-sentence refusals of files that cannot be used."""

import io
import json
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import hooks_left
from onnx import helper, numpy_helper
from torch import nn
from user_model_factory import MEAN, STD, make

from engine import attacks, heatmaps
from engine.analysis import panels
from engine.analysis.target_images import features
from engine.heatmaps import grad_cam
from engine.models import Classifier, ModelUnavailable, formats
from engine.models.formats import BadModelFile, auto_blocks, read_sidecar, sniff
from engine.models.formats.torchscript import LAYERS_UNAVAILABLE

ROOT = Path(__file__).resolve().parent.parent
META = {"input_size": [3, 32, 32], "mean": MEAN, "std": STD, "class_names": 10, "domain": "toy"}
NORM = {"mean": MEAN, "std": STD}
PLAIN = {"mean": [0.0] * 3, "std": [1.0] * 3}
BLOCKS = ["features.1", "features.2", "features.4", "features.5"]
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning", "ignore::UserWarning")


def plain(message: str) -> str:
    """A refusal for people: no traceback and no torch internals (naming torch's export functions is advice)."""
    assert "Traceback" not in message, message
    assert not re.search(r"torch\.(?!export\b|onnx\.export\b|jit\.save\b)", message), message
    return message


def refused(call, *needles):
    with pytest.raises(BadModelFile) as info:
        call()
    message = plain(str(info.value))
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def save_script(net, mode="trace", shape=(3, 32, 32)):
    if mode == "script":
        scripted = _quiet(torch.jit.script, net)
    else:
        scripted = _quiet(torch.jit.trace, net, torch.zeros(1, *shape))
    buf = io.BytesIO()
    _quiet(torch.jit.save, scripted, buf)
    return buf.getvalue()


def save_export(net, shape=(3, 32, 32), dynamic=True):
    x = torch.zeros(2 if dynamic else 1, *shape)
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic else None)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def save_onnx(net, shape=(3, 32, 32), dynamic=True, path=None, **kwargs):
    target = path if path is not None else io.BytesIO()
    axes = {"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    _quiet(
        torch.onnx.export,
        net,
        (torch.zeros(1, *shape),),
        target,
        dynamo=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=17,
        **kwargs,
    )
    return target.getvalue() if path is None else Path(path).read_bytes()


@pytest.fixture(scope="module")
def net():
    return make()


@pytest.fixture(scope="module")
def reference(net):
    return Classifier(
        net,
        name="reference",
        domain="toy",
        input_size=(3, 32, 32),
        class_names=[str(i) for i in range(10)],
        mean=MEAN,
        std=STD,
        block_names=BLOCKS,
    )


@pytest.fixture(scope="module")
def archives(net):
    return {
        "script": save_script(net, "script"),
        "trace": save_script(net, "trace"),
        "export": save_export(net),
        "onnx": save_onnx(net),
        "onnx-fixed-batch": save_onnx(net, dynamic=False),
    }


@pytest.fixture(scope="module", params=["script", "trace", "export", "onnx", "onnx-fixed-batch", "entrypoint"])
def loaded(request, archives):
    if request.param == "entrypoint":
        return formats.load("user_model_factory:make", meta=META)
    return formats.load(archives[request.param], filename="model.bin", meta=META, name=f"user {request.param}")


@pytest.fixture(scope="module")
def x():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_auto_catalogue_of_the_small_cnn(net):
    assert auto_blocks(net, (3, 32, 32)) == BLOCKS


def test_same_logits_gradients_and_layers(loaded, reference, x):
    assert loaded.domain == "toy" and loaded.class_names[3] == "class 3" and loaded.input_size == (3, 32, 32)
    assert torch.allclose(loaded(x), reference(x), atol=1e-5)
    assert not any(p.requires_grad for p in loaded.parameters())
    grads = []
    for model in (loaded, reference):
        xv = x.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(model(xv)[:, 3].sum(), xv)[0])
    assert grads[0].abs().sum() > 0 and torch.allclose(*grads, atol=1e-6)
    assert [info.shape for info in loaded.layers()] == [info.shape for info in reference.layers()]
    assert loaded.layers()[-1].shape == (16, 8, 8) and loaded.cam_layer == loaded.layers()[-1].name


def test_grad_cam_features_and_attacks(loaded, reference, x):
    for layer in (None, 0):
        cam = grad_cam(loaded, x, layer=layer)
        assert cam.shape == (4, 32, 32)
        assert torch.allclose(cam, grad_cam(reference, x, layer=layer), atol=1e-5)
    assert torch.allclose(features(loaded, x, 1), features(reference, x, 1), atol=1e-5)
    result = attacks.run("pgd", loaded, x, eps=0.03, steps=3)
    assert (result.x_adv - x).abs().max() <= 0.03 + 1e-6 and 0 <= result.x_adv.min() and result.x_adv.max() <= 1
    with torch.no_grad():
        target = (loaded(x).argmax(1) + 1) % 10
    result = attacks.run("aa", loaded, x, target=target, target_images=x.flip(0), eps=0.05, steps=2, layer=1)
    assert (result.x_adv - x).abs().max() <= 0.05 + 1e-6
    assert hooks_left(loaded) == 0


# ---------------------------------------------------------------- ONNX


def test_onnx_reads_its_input_size_and_metadata_and_matches_torch(net, x, tmp_path):
    data = save_onnx(net)
    proto = onnx.load_from_string(data)
    helper.set_model_props(proto, {"class_names": json.dumps(list("abcdefghij")), "std": "not json"})
    path = tmp_path / "cnn.onnx"
    onnx.save(proto, path)
    assert formats.describe(path) == {
        "kind": "onnx",
        "name": "cnn",
        "input_size": [3, 32, 32],
        "class_names": list("abcdefghij"),
    }
    model = formats.load(path, meta=NORM)
    assert model.name == "cnn" and model.input_size == (3, 32, 32) and model.class_names[1] == "b"
    assert model.channels_last
    assert all(not isinstance(m, torch.jit.ScriptModule) for m in model.modules())
    with torch.no_grad():
        assert torch.allclose(model.net(x), net(x), atol=1e-5)
    xv = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(model(xv).logsumexp(1).sum(), xv)[0]
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_onnx_sidecar_names_its_layers(archives, tmp_path, x):
    (tmp_path / "m.onnx").write_bytes(archives["onnx"])
    modules = [n for n, _ in formats.load(tmp_path / "m.onnx", meta=NORM).net.named_modules()]
    relu = next(n for n in modules if n.endswith("/1/Relu"))
    (tmp_path / "m.json").write_text(json.dumps({**NORM, "block_names": [relu], "cam_layer": relu}))
    model = formats.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in model.layers()] == [f"net.{relu}"] and grad_cam(model, x).shape == (4, 32, 32)
    refused(
        lambda: formats.load(archives["onnx"], filename="m.onnx", meta={**NORM, "input_size": [3, 28, 28]}),
        "m.onnx",
        "input_size [3, 28, 28] does not match the graph's input [3, 32, 32]",
    )


class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(self.conv(x).view(1, -1))


def test_onnx_with_a_batch_baked_into_its_graph_is_refused():
    data = save_onnx(FixedBatch().eval(), dynamic=False)
    refused(
        lambda: formats.load(data, filename="fixed.onnx", meta=META),
        "fixed.onnx",
        "exported for one image at a time",
        "re-export it with a dynamic batch axis",
        "dynamic_axes",
    )


def _graph(*nodes, inputs=None, initializers=(), opset=17):
    inputs = inputs or [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3, 4, 4])]
    output = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", "k"])
    graph = helper.make_graph(list(nodes), "g", inputs, [output], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_onnx_operators_that_cannot_be_converted_are_named_together():
    proto = _graph(
        helper.make_node("Hardmax", ["x"], ["h"]),
        helper.make_node("Det", ["h"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
        opset=13,
    )
    message = refused(
        lambda: formats.load(proto.SerializeToString(), filename="odd.onnx", meta=PLAIN),
        "odd.onnx",
        "Det, Hardmax",
        "cannot be converted",
    )
    assert "Relu" not in message


def test_onnx_tensor_declaring_a_huge_size_is_refused_before_allocating():
    huge = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[2**20, 2**20], raw_data=b"\0" * 16)
    proto = _graph(helper.make_node("Add", ["x", "w"], ["y"]), initializers=[huge])
    refused(
        lambda: formats.load(proto.SerializeToString(), filename="huge.onnx", meta=META),
        "huge.onnx",
        "tensor 'w' declares 1048576×1048576 elements",
        "damaged or hostile",
    )
    lying = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4096, 4096], raw_data=b"\0" * 16)
    proto = _graph(helper.make_node("Add", ["x", "w"], ["y"]), initializers=[lying])
    refused(
        lambda: formats.load(proto.SerializeToString(), filename="lying.onnx", meta=META), "more than the file holds"
    )


def _external(location: str) -> bytes:
    weight = numpy_helper.from_array(np.ones((1, 3, 4, 4), np.float32), "w")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    for key, value in {"location": location, "offset": "0", "length": str(4 * 48)}.items():
        weight.external_data.add(key=key, value=value)
    proto = _graph(
        helper.make_node("Add", ["x", "w"], ["a"]), helper.make_node("Flatten", ["a"], ["y"]), initializers=[weight]
    )
    return proto.SerializeToString()


def test_onnx_external_data_stays_in_the_model_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    np.full(48, 2, np.float32).tofile(folder / "weights.bin")
    np.full(48, 2, np.float32).tofile(tmp_path / "outside.bin")
    (folder / "ok.onnx").write_bytes(_external("weights.bin"))
    meta = {"input_size": [3, 4, 4], **PLAIN}
    with torch.no_grad():
        assert torch.equal(
            formats.load(folder / "ok.onnx", meta=meta).net(torch.zeros(1, 3, 4, 4)), torch.full((1, 48), 2.0)
        )
    for location in ("../outside.bin", str(tmp_path / "outside.bin"), "sub/../../outside.bin"):
        (folder / "bad.onnx").write_bytes(_external(location))
        refused(
            lambda: formats.load(folder / "bad.onnx", meta=meta),
            "outside the model's folder",
            "keep external weight files beside the .onnx file",
        )
    refused(
        lambda: formats.load(_external("weights.bin"), filename="up.onnx", meta=meta),
        "up.onnx keeps its weights in separate files",
        "save the model with its weights inside the file",
    )
    (folder / "gone.onnx").write_bytes(_external("missing.bin"))
    refused(lambda: formats.load(folder / "gone.onnx", meta=meta), "needs the file 'missing.bin'")


def test_onnx_graphs_that_are_not_classifiers(archives):
    two = _graph(
        helper.make_node("Add", ["x", "z"], ["y"]),
        inputs=[helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["b", 3, 4, 4]) for n in "xz"],
    )
    refused(
        lambda: formats.load(two.SerializeToString(), filename="two.onnx", meta=META),
        "two.onnx: the graph takes 2 inputs",
        "single input",
    )
    same = _graph(helper.make_node("Relu", ["x"], ["y"]))
    refused(
        lambda: formats.load(same.SerializeToString(), filename="maps.onnx", meta={**META, "input_size": [3, 4, 4]}),
        "maps.onnx: for 1 image of 3×4×4 the model returns 1×3×4×4",
        "not 1×classes logits",
    )
    refused(
        lambda: formats.load(archives["onnx"], filename="m.onnx", meta={"input_size": [3, 32, 32]}),
        "m.onnx: the ONNX file does not say its mean, std",
        "sidecar JSON or the form",
    )
    refused(
        lambda: formats.load(archives["onnx"][:-200], filename="cut.onnx", meta=META), "cut.onnx", "export it again"
    )
    invalid = _graph(helper.make_node("Relu", ["nowhere"], ["y"]))
    refused(
        lambda: formats.load(invalid.SerializeToString(), filename="invalid.onnx", meta=PLAIN),
        "invalid.onnx is not a valid ONNX model (the ONNX checker refuses it)",
    )


# ---------------------------------------------------------------- TorchScript


class HidesItsLayers(nn.Module):
    """Data-dependent control flow: torch's ONNX exporter writes an If that cannot be converted back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        y = self.conv(x)
        if bool(y.mean() > 100.0):
            y = y * 0.5
        return self.fc(y.flatten(1))


def test_torchscript_that_hides_its_layers_refuses_the_layer_views_only(x):
    model = formats.load(save_script(HidesItsLayers().eval(), "script"), filename="opaque.pt", meta=META)
    assert model.layers_unavailable == LAYERS_UNAVAILABLE and isinstance(model.net, torch.jit.ScriptModule)
    assert "hookable layers" in LAYERS_UNAVAILABLE
    assert "torch.export.save(torch.export.export(model, (x,))" in LAYERS_UNAVAILABLE
    with torch.no_grad():
        target = (model(x).argmax(1) + 1) % 10
    for call in (
        model.layers,
        lambda: grad_cam(model, x),
        lambda: features(model, x, 0),
        lambda: attacks.run("aa", model, x, target=target, target_images=x.flip(0)),
    ):
        with pytest.raises(ValueError, match="hookable layers") as info:
            call()
        plain(str(info.value).replace(LAYERS_UNAVAILABLE, ""))
    result = attacks.run("pgd", model, x, eps=0.03, steps=3)
    assert (result.x_adv - x).abs().max() <= 0.03 + 1e-6 and (result.x_adv != x).any()
    # The Explorer's heat maps: no CAM, but the attributions need only the input's gradient.
    assert panels.usable_methods(model) == list(heatmaps.ATTRIBUTION_METHODS)
    assert panels.heat_panel(model, result, "gradcam")["heat"] is None
    assert panels.heat_panel(model, result, "saliency")["heat"]["clean · source"].shape == x.shape[-2:]
    refused(
        lambda: formats.load(
            save_script(HidesItsLayers().eval(), "script"), filename="opaque.pt", meta={**META, "block_names": ["conv"]}
        ),
        "opaque.pt: block_names/cam_layer are given",
    )


def test_torchscript_layers_take_the_source_module_names(archives):
    model = formats.load(
        archives["trace"], filename="t.pt", meta={**META, "block_names": ["features/0/Conv", "features/4/Relu"]}
    )
    assert [(i.name, i.shape) for i in model.layers()] == [
        ("net.features/0/Conv", (8, 32, 32)),
        ("net.features/4/Relu", (16, 16, 16)),
    ]
    refused(
        lambda: formats.load(archives["trace"], filename="t.pt", meta={**META, "block_names": ["features.1"]}),
        "t.pt: 'features.1' (block_names/cam_layer) is not a module of the model",
    )


# ---------------------------------------------------------------- torch.export


@pytest.mark.slow
def test_resnet18_export_catalogue():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    model = formats.load(save_export(net, (3, 64, 64)), filename="rn.pt2", meta={"mean": [0.5] * 3, "std": [0.25] * 3})
    assert model.input_size == (3, 64, 64)  # from the program's input shape
    names = [info.name for info in model.layers()]
    assert names == ["net.relu", "net.maxpool"] + [f"net.layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert model.cam_layer == "net.layer4.1" and model.num_classes == 7
    assert grad_cam(model, torch.rand(1, 3, 64, 64)).shape == (1, 64, 64)


@pytest.mark.slow
def test_resnet18_onnx_catalogue_is_torchvisions():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    model = formats.load(save_onnx(net, (3, 64, 64)), filename="rn.onnx", meta={"mean": [0.5] * 3, "std": [0.25] * 3})
    names = [info.name for info in model.layers()]
    assert names == ["net.relu/Relu", "net.maxpool/MaxPool"] + [
        f"net.layer{s}/{b}/relu_1/Relu" for s in range(1, 5) for b in range(2)
    ]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.net(x), net(x), atol=1e-4)
    assert grad_cam(model, x).shape == (2, 64, 64) and hooks_left(model) == 0


def test_sidecar_beside_the_file_and_explicit(tmp_path, archives):
    (tmp_path / "model.pt2").write_bytes(archives["export"])
    (tmp_path / "model.json").write_text(
        json.dumps({**META, "class_names": list("abcdefghij"), "block_names": ["features.5"]})
    )
    model = formats.load(tmp_path / "model.pt2")
    assert model.name == "model" and model.class_names[0] == "a"
    assert [i.name for i in model.layers()] == ["net.features.5"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**META, "resize_size": 36, "cam_layer": "features.2"}))
    model = formats.load(str(tmp_path / "model.pt2"), sidecar=other)
    assert model.resize_size == 36 and model.cam_layer == "net.features.2"
    assert read_sidecar(other)["input_size"] == (3, 32, 32)
    assert formats.describe(tmp_path / "model.pt2") == {"kind": "export", "name": "model", "input_size": [3, 32, 32]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mean": None}, "the torch.export file does not say its mean"),
        ({"mean": [0.5, 0.5]}, "'mean' has 2 entries for 3 input channel(s)"),
        ({"std": [0.2, 0.0, 0.2]}, "'std' entries must be positive"),
        ({"input_size": [3, 32]}, "must have 3 entries"),
        ({"class_names": 5}, "5 class names for a model with 10 outputs"),
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"input_size": [3, 28, 28]}, "does not match the program's input"),
        (
            {"block_names": ["features.9"]},
            "'features.9' (block_names/cam_layer) is not a module of the model; its top-level modules are: "
            "features, classifier",
        ),
        ({"cam_layer": "head"}, "'head' (block_names/cam_layer) is not a module"),
        ({"resize_size": 16}, "smaller than the input height"),
    ],
)
def test_bad_sidecars(tmp_path, archives, change, message):
    fields = {k: v for k, v in {**META, **change}.items() if v is not None}
    (tmp_path / "model.json").write_text(json.dumps(fields))
    (tmp_path / "model.pt2").write_bytes(archives["export"])
    refused(lambda: formats.load(tmp_path / "model.pt2"), message)


def test_sidecar_not_json(tmp_path):
    (tmp_path / "bad.json").write_text("{mean: ")
    refused(lambda: read_sidecar(tmp_path / "bad.json"), "not valid JSON")
    (tmp_path / "list.json").write_text("[1, 2]")
    refused(lambda: read_sidecar(tmp_path / "list.json"), "JSON object")


def _rewrite(data: bytes, edit) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, edit(item.filename, src.read(item.filename)))
    return out.getvalue()


def test_pt2_entries_that_would_be_unpickled_are_refused(archives):
    def pickled_weight(name, body):
        if name.endswith("model_weights_config.json"):
            config = json.loads(body)
            next(iter(config["config"].values()))["use_pickle"] = True
            return json.dumps(config).encode()
        return body

    refused(
        lambda: formats.load(_rewrite(archives["export"], pickled_weight), filename="p.pt2", meta=META),
        "p.pt2",
        "is stored pickled",
        "pickles are never loaded",
    )

    def odd_sample_inputs(name, body):
        return b"not a weights_only pickle" if "sample_inputs" in name else body

    refused(
        lambda: formats.load(_rewrite(archives["export"], odd_sample_inputs), filename="s.pt2", meta=META),
        "s.pt2: its sample inputs",
        "not plain tensors",
    )


def test_export_with_a_baked_in_batch_is_refused():
    refused(
        lambda: formats.load(save_export(FixedBatch().eval(), dynamic=False), filename="b.pt2", meta=META),
        "b.pt2",
        "only runs at the batch size it was exported with",
        "re-export it with a dynamic batch",
    )


# ---------------------------------------------------------------- the dispatcher and bad files


def test_sniff_tells_formats_apart_by_content(archives, net):
    state = io.BytesIO()
    torch.save(net.state_dict(), state)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    safetensors = len(header).to_bytes(8, "little") + header + b"\0" * 4
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("folder/config.json", "{}")
    kinds = {"script": "torchscript", "trace": "torchscript", "export": "export", "onnx": "onnx"}
    for key, kind in kinds.items():
        assert sniff(archives[key], "model.pt") == kind  # the name does not decide
    assert sniff(state.getvalue()) == "state_dict" and sniff(safetensors) == "safetensors"
    assert sniff(zipped.getvalue()) == "zip" and sniff(b"hello", "x.bin") == "unknown" and sniff(b"") == "unknown"
    assert sniff(b"garbage", "m.onnx") == "onnx"  # so the ONNX loader says what is wrong
    for key, kind in kinds.items():
        assert formats.describe(archives[key], filename="up.pt")["kind"] == kind


def test_a_file_named_for_another_format_loads_by_its_content(tmp_path, archives):
    (tmp_path / "really-torchscript.pt2").write_bytes(archives["script"])
    (tmp_path / "really-onnx.pt").write_bytes(archives["onnx"])
    assert formats.load(tmp_path / "really-torchscript.pt2", meta=META).num_classes == 10
    assert formats.load(tmp_path / "really-onnx.pt", meta=META).num_classes == 10


@pytest.mark.slow  # the first guess of an architecture builds each candidate once (seconds)
def test_a_state_dict_alone_asks_for_its_architecture(tmp_path, net):
    state = io.BytesIO()
    torch.save(net.state_dict(), state)
    refused(
        lambda: formats.load(state.getvalue(), filename="up.pt", meta=META),
        "up.pt is a state_dict (weights only)",
        "choose its architecture",
    )
    (tmp_path / "w.pth").write_bytes(state.getvalue())
    refused(
        lambda: formats.load(tmp_path / "w.pth", meta=META),
        "is a state_dict (weights only)",
        "give its architecture, ARCH=FILE, e.g. resnet18=",
    )


def test_bad_files_get_one_sentence(tmp_path, archives):
    cases = [
        (b"", "up.pt is empty (0 bytes)"),
        (bytes(range(256)) * 8, "up.pt is not a model file this app reads"),
        (archives["script"][: len(archives["script"]) // 2], "up.pt is not a model file this app reads"),
        (archives["export"][: len(archives["export"]) // 2], "may be truncated"),
    ]
    for data, message in cases:
        refused(lambda data=data: formats.load(data, filename="up.pt", meta=META), message)
    refused(lambda: formats.load(tmp_path / "missing.pt", meta=META), "is neither a model file nor a spec")
    refused(lambda: formats.load("nocolon", meta=META), "'nocolon' is neither a model file nor a spec")
    refused(lambda: formats.describe(b"\x01\x02junk", filename="j.bin"), "j.bin is not a model file this app reads")
    for data, wrong in [(archives["export"], "torchscript"), (archives["script"], "export")]:
        loader = __import__(f"engine.models.formats.{wrong}", fromlist=["load"]).load
        refused(
            lambda loader=loader, data=data: loader(data, META, name="n", where="w.pt"),
            "w.pt is not a",
            "choose that format instead",
        )


def test_a_forward_that_fails_names_the_shape_it_tried(archives):
    refused(
        lambda: formats.load(archives["script"], filename="s.pt", meta={**META, "input_size": [3, 20, 20]}),
        "s.pt: the model fails on a batch of 1 image of 3×20×20",
        "check input_size",
    )


def test_entry_points():
    ready = formats.load("user_model_factory:make_classifier")
    assert ready.name == "ready-made" and [i.name for i in ready.layers()] == ["net.features.2", "net.features.5"]
    assert formats.describe("user_model_factory:make") == {"kind": "entrypoint", "name": "user_model_factory:make"}
    for spec, message in [
        ("os:system", "not a Python function or class"),
        ("user_model_factory:not_a_model", "returned a int, not a PyTorch nn.Module"),
        ("user_model_factory:needs_args", "callable without arguments"),
        ("user_model_factory:nothing", "has no attribute 'nothing'"),
        ("no_such_module_here:make", "cannot be imported"),
    ]:
        refused(lambda spec=spec: formats.load(spec, meta=META), f"entry point {spec}", message)


def test_kinds_cover_every_loader():
    assert issubclass(BadModelFile, ModelUnavailable)  # the CLI and the app already catch ModelUnavailable
    assert set(formats.KINDS) == {"torchvision", "timm", "onnx", "hf", "export", "torchscript", "entrypoint"}
    assert all(isinstance(v, str) and v for v in formats.KINDS.values())


@pytest.mark.slow
def test_bench_quick_mode_prints_the_ratio():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "onnx_overhead.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"onnx/torchvision", done.stdout) and re.search(r"\d+\.\d+×", done.stdout), done.stdout
