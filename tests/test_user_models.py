"""A user's own model (engine.models.user): TorchScript, torch.export and entry points as Classifiers."""
import io
import json
import warnings
import zipfile

import pytest
import torch
from torch import nn

from conftest import hooks_left
from engine import attacks
from engine.analysis.gradcam import grad_cam
from engine.models import Classifier, ModelUnavailable
from engine.models.user import auto_blocks, load_user_model, read_sidecar
from user_model_factory import MEAN, STD, make

META = {"input_size": [3, 32, 32], "mean": MEAN, "std": STD, "class_names": 10, "domain": "toy"}
BLOCKS = ["features.1", "features.2", "features.4", "features.5"]
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _save_script(net, mode):
    scripted = torch.jit.script(net) if mode == "script" else torch.jit.trace(net, torch.zeros(1, 3, 32, 32))
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    return buf.getvalue()


def _save_export(net, shape=(3, 32, 32), dynamic=True):
    x = torch.zeros(2 if dynamic else 1, *shape)
    program = torch.export.export(net, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic else None)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def net():
    return make()


@pytest.fixture(scope="module")
def reference(net):
    return Classifier(net, name="reference", domain="toy", input_size=(3, 32, 32), class_names=[str(i) for i in range(10)],
                      mean=MEAN, std=STD, block_names=BLOCKS)


@pytest.fixture(scope="module")
def archives(net):
    return {"script": _save_script(net, "script"), "trace": _save_script(net, "trace"), "export": _save_export(net)}


@pytest.fixture(scope="module", params=["script", "trace", "export", "entrypoint"])
def loaded(request, archives):
    if request.param == "entrypoint":
        return load_user_model("user_model_factory:make", meta=META)
    return load_user_model(archives[request.param], meta=META, name=f"user {request.param}")


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
    assert torch.allclose(*grads, atol=1e-6)
    assert [(info.name, info.shape) for info in loaded.layers()] == [(info.name, info.shape) for info in reference.layers()]
    assert loaded.layers()[-1].shape == (16, 8, 8) and loaded.cam_layer == "net.features.5"


def test_grad_cam_matches_the_original(loaded, reference, x):
    for layer in (None, 0):
        cam = grad_cam(loaded, x, layer=layer)
        assert cam.shape == (4, 32, 32)
        assert torch.allclose(cam, grad_cam(reference, x, layer=layer), atol=1e-5)
    assert hooks_left(loaded) == 0


def test_attacks_run(loaded, x):
    result = attacks.run("pgd", loaded, x, eps=0.03, steps=3)
    assert (result.x_adv - x).abs().max() <= 0.03 + 1e-6 and 0 <= result.x_adv.min() and result.x_adv.max() <= 1
    with torch.no_grad():
        target = (loaded(x).argmax(1) + 1) % 10
    result = attacks.run("aa", loaded, x, target=target, target_images=x.flip(0), eps=0.05, steps=2, layer=1)
    assert (result.x_adv - x).abs().max() <= 0.05 + 1e-6
    assert hooks_left(loaded) == 0


def test_resnet18_export_catalogue():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    model = load_user_model(_save_export(net, (3, 64, 64)), meta={"mean": [0.5] * 3, "std": [0.25] * 3})
    assert model.input_size == (3, 64, 64)  # from the program's input shape
    names = [info.name for info in model.layers()]
    assert names == ["net.relu", "net.maxpool"] + [f"net.layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert model.cam_layer == "net.layer4.1" and model.domain == "custom" and model.num_classes == 7
    assert grad_cam(model, torch.rand(1, 3, 64, 64)).shape == (1, 64, 64)


def test_sidecar_beside_the_file_and_explicit(tmp_path, archives):
    (tmp_path / "model.pt2").write_bytes(archives["export"])
    (tmp_path / "model.json").write_text(json.dumps({**META, "class_names": list("abcdefghij"), "block_names": ["features.5"]}))
    model = load_user_model(tmp_path / "model.pt2")
    assert model.name == "model" and model.class_names[0] == "a" and [i.name for i in model.layers()] == ["net.features.5"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**META, "resize_size": 36, "cam_layer": "features.2"}))
    model = load_user_model(str(tmp_path / "model.pt2"), sidecar=other, kind="export")
    assert model.resize_size == 36 and model.cam_layer == "net.features.2"
    assert read_sidecar(other)["input_size"] == (3, 32, 32)


@pytest.mark.parametrize("change, message", [
    ({"mean": None}, "missing metadata field(s) mean"),
    ({"mean": [0.5, 0.5]}, "'mean' has 2 entries for 3 input channel(s)"),
    ({"std": [0.2, 0.0, 0.2]}, "'std' entries must be positive"),
    ({"input_size": [3, 32]}, "must have 3 entries"),
    ({"class_names": 5}, "5 class names for a model with 10 outputs"),
    ({"colour": "red"}, "unknown field(s) colour"),
    ({"input_size": [3, 28, 28]}, "does not match the program's input"),
    ({"block_names": ["features.9"]}, "'features.9' (block_names/cam_layer) is not a module of the model; its top-level modules are: features, classifier"),
    ({"cam_layer": "head"}, "'head' (block_names/cam_layer) is not a module"),
    ({"resize_size": 16}, "smaller than the input height"),
])
def test_bad_sidecars(tmp_path, archives, change, message):
    fields = {k: v for k, v in {**META, **change}.items() if v is not None}
    (tmp_path / "model.json").write_text(json.dumps(fields))
    (tmp_path / "model.pt2").write_bytes(archives["export"])
    with pytest.raises(ModelUnavailable, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_user_model(tmp_path / "model.pt2")


def test_sidecar_not_json(tmp_path):
    (tmp_path / "bad.json").write_text("{mean: ")
    with pytest.raises(ModelUnavailable, match="not valid JSON"):
        read_sidecar(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ModelUnavailable, match="JSON object"):
        read_sidecar(tmp_path / "list.json")


def test_corrupt_files(tmp_path, archives, net):
    state = io.BytesIO()
    torch.save(net.state_dict(), state)
    cases = [
        (b"", "empty"),
        (bytes(range(256)) * 8, "not a zip archive"),
        (state.getvalue(), "pickled torch.save file"),
        (archives["script"][: len(archives["script"]) // 2], "not a zip archive"),
        (archives["export"][: len(archives["export"]) // 2], "not a zip archive"),
    ]
    for data, message in cases:
        with pytest.raises(ModelUnavailable, match=message):
            load_user_model(data, meta=META, kind="torchscript")
    with pytest.raises(ModelUnavailable, match="is a export archive, not torchscript"):
        load_user_model(archives["export"], meta=META, kind="torchscript")
    with pytest.raises(ModelUnavailable, match="cannot be read"):
        load_user_model(tmp_path / "missing.pt", meta=META)


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

    with pytest.raises(ModelUnavailable, match="stored pickled"):
        load_user_model(_rewrite(archives["export"], pickled_weight), meta=META)

    def odd_sample_inputs(name, body):
        return b"not a weights_only pickle" if "sample_inputs" in name else body

    with pytest.raises(ModelUnavailable, match="sample inputs"):
        load_user_model(_rewrite(archives["export"], odd_sample_inputs), meta=META)


class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(self.conv(x).view(1, -1))


def test_export_with_a_baked_in_batch_is_refused():
    with pytest.raises(ModelUnavailable, match="re-export it with a dynamic batch"):
        load_user_model(_save_export(FixedBatch().eval(), dynamic=False), meta=META)


def _scaled_eager(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    _scaled = torch.jit.script(_scaled_eager)


class CallsAFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(_scaled(self.conv(x)).flatten(1))


def test_opaque_torchscript_loads_without_a_catalogue(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.jit.save(torch.jit.script(CallsAFunction().eval()), buf)
    model = load_user_model(buf.getvalue(), meta=META)
    assert "do not take Python forward hooks" in model.layers_unavailable
    assert "prim::CallFunction" in model.layers_unavailable
    for call in (model.layers, lambda: grad_cam(model, x), lambda: attacks.run("aa", model, x, target=(model(x).argmax(1) + 1) % 10, target_images=x.flip(0))):
        with pytest.raises(ValueError, match="no layer catalogue"):
            call()
    result = attacks.run("pgd", model, x, eps=0.03, steps=3)
    assert (result.x_adv - x).abs().max() <= 0.03 + 1e-6


def test_torchscript_block_names_must_be_hookable(archives):
    with pytest.raises(ModelUnavailable, match="'torchscript.features.1' .* is not a module"):
        load_user_model(archives["script"], meta={**META, "block_names": ["torchscript.features.1"]})
    model = load_user_model(archives["trace"], meta={**META, "block_names": ["features.0", "classifier.1"]})
    assert [i.shape for i in model.layers()] == [(8, 32, 32), (10,)]


def test_entry_points():
    ready = load_user_model("user_model_factory:make_classifier")
    assert ready.name == "ready-made" and [i.name for i in ready.layers()] == ["net.features.2", "net.features.5"]
    for spec, message in [
        ("os:system", "not a Python function or class"),
        ("user_model_factory:not_a_model", "returned a int, not a torch.nn.Module"),
        ("user_model_factory:needs_args", "callable without arguments"),
        ("user_model_factory:nothing", "has no attribute 'nothing'"),
        ("no_such_module_here:make", "cannot be imported"),
    ]:
        with pytest.raises(ModelUnavailable, match=message):
            load_user_model(spec, meta=META)
    with pytest.raises(ModelUnavailable, match="not of the form 'package.module:factory'"):
        load_user_model("nocolon", kind="entrypoint", meta=META)
    with pytest.raises(ModelUnavailable, match="neither a model file nor an entry point"):
        load_user_model("nocolon", meta=META)
