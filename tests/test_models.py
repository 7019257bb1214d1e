import pytest
import torch
import torchvision.models as tvm
from conftest import hooks_left

from engine import images, models
from engine.models import ModelUnavailable, torchvision_zoo
from engine.models.efficientnet_lite import package_model

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
CUP_CLASSES = {"cup", "espresso", "coffee mug"}


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_lite_models_recognise_skimage_photos(name):
    model = models.load(name, device="cpu")
    for photo, expected in [("chelsea", CAT_CLASSES), ("coffee", CUP_CLASSES)]:
        x = images.load(images.gallery()[photo], model)
        with torch.no_grad():
            label = model.class_names[int(model(x).argmax())]
        assert label in expected, f"{name} calls {photo} {label!r}"


def test_lite_wrapper_matches_the_package_model(lite0):
    x = torch.rand(2, 3, 224, 224)
    reference = package_model(0)
    with torch.no_grad():
        ours = lite0(x)
        theirs = reference((x - lite0.mean) / lite0.std)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_classifier_metadata_and_layer_catalogue(lite0):
    assert lite0.name == "efficientnet-lite0" and lite0.domain == "imagenet"
    assert lite0.input_size == (3, 224, 224) and len(lite0.class_names) == 1000
    assert not lite0.training and not any(p.requires_grad for p in lite0.parameters())
    layers = lite0.layers()
    assert [info.index for info in layers] == list(range(len(layers)))
    assert layers[0].shape == (32, 112, 112) and layers[-1].shape == (1280, 7, 7)
    for info in layers:
        lite0.get_submodule(info.name)
    # Spatial size shrinks (or stays) from input to output.
    sizes = [info.shape[-1] for info in layers]
    assert sizes == sorted(sizes, reverse=True)
    assert lite0.layer(3) == layers[3] and lite0.layer(layers[5].name) == layers[5]
    assert hooks_left(lite0) == 0


def test_layer_lookup_errors_name_the_problem(lite0):
    with pytest.raises(ValueError, match="out of range"):
        lite0.layer(99)
    with pytest.raises(ValueError, match="does not exist"):
        lite0.layer("net.nothing")


def test_forward_resizes_and_converts_channels(lite0):
    x = torch.rand(1, 3, 240, 240)
    with torch.no_grad():
        assert lite0(x).shape == (1, 1000)
        assert lite0(x[:, :1]).shape == (1, 1000)
    with pytest.raises(ValueError, match="channels"):
        lite0(torch.rand(1, 2, 224, 224))


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("efficientnet-lite0", domain="imagenet")(lambda: None)
    with pytest.raises(ValueError, match="unknown model"):
        models.load("no-such-model")
    rows = {r["name"]: r for r in models.available()}
    assert all(rows[f"efficientnet-lite{k}"]["available"] for k in range(3))
    for arch in ("resnet50", "densenet121", "vgg16_bn", "mobilenet_v3_large"):
        assert arch in rows


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def test_missing_torchvision_weights_name_url_and_path(torch_home):
    row = next(r for r in models.available() if r["name"] == "resnet50")
    assert not row["available"]
    with pytest.raises(ModelUnavailable) as err:
        models.load("resnet50")
    message = str(err.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert str(torch_home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in message


@pytest.mark.parametrize("arch", ["mobilenet_v3_large", "densenet121"])
def test_torchvision_model_loads_a_cached_state_dict(torch_home, arch):
    torch.manual_seed(0)
    reference = tvm.get_model(arch, weights=None).eval()
    state = reference.state_dict()
    if arch.startswith("densenet"):
        # Published DenseNet checkpoints use the old "norm.1" key style; the loader must rename them.
        state = {
            k.replace("norm1.", "norm.1.")
            .replace("conv1.", "conv.1.")
            .replace("norm2.", "norm.2.")
            .replace("conv2.", "conv.2.")
            if "denselayer" in k
            else k: v
            for k, v in state.items()
        }
    path = torchvision_zoo.checkpoint_path(arch)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    model = models.load(arch, device="cpu")
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference((x - model.mean) / model.std)
        assert torch.allclose(model(x), expected, atol=1e-4)
    assert model.layers()[-1].name == model.cam_layer


def test_corrupt_torchvision_weights_are_reported(torch_home):
    path = torchvision_zoo.checkpoint_path("mobilenet_v3_large")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="could not be read"):
        models.load("mobilenet_v3_large")


def test_weights_of_another_architecture_are_rejected(torch_home):
    path = torchvision_zoo.checkpoint_path("mobilenet_v3_large")
    path.parent.mkdir(parents=True)
    torch.save(tvm.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ModelUnavailable, match="do not fit"):
        models.load("mobilenet_v3_large")


def test_unknown_device_is_a_value_error():
    with pytest.raises(ValueError):
        models.load("efficientnet-lite0", device="tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            models.load("efficientnet-lite0", device="cuda")


def test_bf16_autocast_keeps_predictions_and_attack_budgets():
    """Mixed precision on the CPU: same top-1 on the test split, float32 logits,
    and a PGD run under bf16 stays in its budget and still fools the float32 model."""
    from engine import attacks
    from engine.datasets import fashion_mnist

    x = fashion_mnist.test_split()[0][:256]
    full = models.load("fmnist-lenet-0", device="cpu")
    half = models.load("fmnist-lenet-0", device="cpu", precision="bf16")
    with torch.no_grad():
        a, b = full(x), half(x)
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # autocast really ran in bf16
    assert float((a.argmax(1) == b.argmax(1)).float().mean()) >= 0.98  # measured 256/256
    y = a.argmax(1)
    adv = attacks.run("pgd", half, x[:64], y=y[:64], eps=0.1, steps=5).x_adv
    assert float((adv - x[:64]).abs().max()) <= 0.1 + 1e-6
    with torch.no_grad():
        assert float((full(adv).argmax(1) != y[:64]).float().mean()) >= 0.8  # measured 64/64


def test_unknown_precision_is_a_value_error():
    with pytest.raises(ValueError, match="precision 'fp8'"):
        models.load("fmnist-lenet-0", device="cpu", precision="fp8")
