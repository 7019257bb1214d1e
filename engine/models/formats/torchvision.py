"""A torchvision classification architecture with the user's own weights (a state_dict or safetensors file).

    model = load("resnet18", data, {"input_size": [3, 64, 64]}, name="my resnet", where="net.pth")

Every classification architecture of `torchvision.models` is offered. The head size comes from the file (a
ResNet-18 fine-tuned to 10 classes loads as one), normalisation and image size from torchvision's weights
transforms unless the metadata says otherwise, the layer catalogue from `torchvision_zoo.block_names` where a
family has a rule, else from `common.auto_blocks`. Weights of another architecture are refused with the first
layer that does not fit and, when it is recognisable, the architecture the file is for.

GoogLeNet and Inception-v3 are built as torchvision builds them for its pretrained weights (transform_input
on), which is how a fine-tuned copy of those weights behaves.
"""

from __future__ import annotations

import difflib
import gzip
import json
import warnings
from pathlib import Path

import torch
import torchvision
import torchvision.models as tvm
from torch import nn
from torch.overrides import TorchFunctionMode

from engine.domains import IMAGENET_NAME
from engine.models.classifier import Classifier
from engine.models.formats.common import BadModelFile, wrap
from engine.models.formats.weights import read_state_dict, with_metadata
from engine.models.torchvision_zoo import _DENSENET_KEY, block_names

# Top-level `torchvision.models` only: detection, segmentation, video, optical flow and quantized models
# live in submodules and are not image classifiers of this kind.
ARCHITECTURES: list[str] = sorted(tvm.list_models(module=tvm))
_AUX = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
_TOKENS = ("vit_",)  # encoders whose layers pass token sequences, not maps
_PROBE_CLASSES = (1000, 7)
_COUNTER = "num_batches_tracked"
# A top-level module name in a state_dict → the architecture family it suggests (an ordering hint only).
_FAMILY_HINTS = {
    "layer1": ("resnet", "resnext", "wide_resnet"),
    "trunk_output": ("regnet",),
    "stage2": ("shufflenet",),
    "inception3a": ("googlenet",),
    "Mixed_5b": ("inception_v3",),
    "conv_proj": ("vit_",),
    "layers": ("mnasnet",),
    "blocks": ("maxvit",),
    "features": ("vgg", "alexnet", "densenet", "mobilenet", "efficientnet", "convnext", "squeezenet", "swin"),
}
_signatures: dict[str, tuple[dict[str, tuple[int, ...]], frozenset[str]]] = {}
# Every architecture's signature, measured once for the pinned torchvision (scripts/torchvision_signatures.py):
# measuring means building the model twice, and a file that matches none of them would otherwise wait for all
# 80 builds (tens of seconds on two cores) to be told to pick its architecture.
SIGNATURES = Path(__file__).resolve().parents[3] / "assets" / "torchvision_signatures.json.gz"


def _shape(shape) -> str:
    return "×".join(str(int(d)) for d in shape) or "a scalar"


def check_arch(arch: str, where: str = "") -> str:
    if arch in ARCHITECTURES:
        return arch
    close = difflib.get_close_matches(str(arch).lower(), ARCHITECTURES, n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; choose one of {', '.join(ARCHITECTURES[:6])}, …"
    raise BadModelFile(
        f"{where + ': ' if where else ''}{arch!r} is not a torchvision classification architecture{hint}"
    )


def _kwargs(arch: str, num_classes: int, aux: bool = False) -> dict:
    kw: dict = {"num_classes": num_classes}
    if arch in _AUX:
        kw.update(aux_logits=aux, transform_input=True, init_weights=False)
    return kw


class _EmptyOnMeta(TorchFunctionMode):
    """`torch.empty` (how layers allocate their weights) on the meta device, other tensors where they were: for
    builders (RegNet's) that compute their layer widths with tensors, which `torch.device('meta')` cannot run.
    A mode, unlike patching nn.Module, holds for this thread only."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.empty:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def _build_meta(arch: str, **kw) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet/Inception's notes on their default initialisation
        try:
            with torch.device("meta"):
                return tvm.get_model(arch, weights=None, **kw)
        except (NotImplementedError, RuntimeError):
            with _EmptyOnMeta():
                return tvm.get_model(arch, weights=None, **kw)


def measure(arch: str) -> tuple[dict[str, tuple[int, ...]], frozenset[str]]:
    """(shape of every state_dict entry at 1000 classes, the entries that are the classification head), by building
    the architecture on the meta device at two head widths."""
    shapes = [
        {k: tuple(v.shape) for k, v in _build_meta(arch, **_kwargs(arch, n)).state_dict().items()}
        for n in _PROBE_CLASSES
    ]
    return shapes[0], frozenset(k for k in shapes[0] if shapes[0][k] != shapes[1][k])


def _measured() -> None:
    """Fill the signatures from the committed file once, when it was measured on this torchvision."""
    try:
        stored = json.loads(gzip.decompress(SIGNATURES.read_bytes()))
    except (OSError, ValueError):
        return
    if stored.get("torchvision") != torchvision.__version__:
        return
    for arch, (shapes, head) in stored["signatures"].items():
        _signatures.setdefault(arch, ({k: tuple(v) for k, v in shapes.items()}, frozenset(head)))


def _signature(arch: str) -> tuple[dict[str, tuple[int, ...]], frozenset[str]]:
    if not _signatures:
        _measured()
    if arch not in _signatures:
        _signatures[arch] = measure(arch)
    return _signatures[arch]


def _normalised(arch: str, state: dict) -> dict:
    if arch.startswith("densenet"):
        return with_metadata(
            {_DENSENET_KEY.sub(r"\1\2", k): v for k, v in state.items()}, getattr(state, "_metadata", None)
        )
    return state


def _has_aux(arch: str, state: dict) -> bool:
    return arch in _AUX and any(k.startswith(_AUX[arch]) for k in state)


def _without_aux(arch: str, state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith(_AUX[arch])} if arch in _AUX else state


def guess_architecture(state: dict) -> str | None:
    """The torchvision classification architecture whose layers (all but the head's width) the state_dict
    matches exactly, or None."""
    keys = {_DENSENET_KEY.sub(r"\1\2", k) for k in state if not k.endswith(_COUNTER)}
    top = {k.split(".", 1)[0] for k in keys}
    likely = tuple(p for name, families in _FAMILY_HINTS.items() if name in top for p in families)
    # Measuring an architecture means building it (on the meta device); likely families and those already
    # measured go first, so that a guess rarely builds more than a few.
    for arch in sorted(
        ARCHITECTURES, key=lambda a: (not a.startswith(likely) if likely else True, a not in _signatures)
    ):
        shapes, head = _signature(arch)
        ours = {k for k in keys if not (arch in _AUX and k.startswith(_AUX[arch]))}
        theirs = {k for k in shapes if not k.endswith(_COUNTER)}
        if len(ours) != len(theirs) or ours != theirs:
            continue
        named = _without_aux(arch, _normalised(arch, state))
        if all(tuple(named[k].shape) == shapes[k] for k in theirs if k not in head):
            return arch
    return None


def _num_classes(arch: str, state: dict) -> int | None:
    _, head = _signature(arch)
    for key in sorted(head):
        value = state.get(key)
        if isinstance(value, torch.Tensor) and value.dim() >= 1:
            return int(value.shape[0])
    return None


def first_misfit(arch: str, state: dict, expected: dict[str, tuple[int, ...]], noun: str = "file") -> str | None:
    """The first layer where the weights and the architecture differ, as a clause; None when they fit."""
    for key, shape in expected.items():
        if key not in state:
            return f"{arch} has a layer {key} ({_shape(shape)}), which the {noun} lacks"
        if tuple(state[key].shape) != shape:
            return f"{key} is {_shape(state[key].shape)} in the {noun} but {_shape(shape)} in {arch}"
    extra = next((k for k in state if k not in expected), None)
    return None if extra is None else f"the {noun} has a layer {extra}, which {arch} does not have"


def headless(arch: str, state: dict, expected: dict, head: frozenset, where: str, noun: str = "file") -> None:
    """BadModelFile when the weights are the architecture's all but its classification head."""
    if (
        head
        and not any(k in state for k in head)
        and first_misfit(arch, state, {k: v for k, v in expected.items() if k not in head}, noun) is None
    ):
        raise BadModelFile(
            f"{where}: the {noun} has every layer of {arch} but its classifier head "
            f"({sorted(head)[0]}); save the whole classifier, not its feature extractor"
        )


def _mismatch(arch: str, state: dict, expected: dict[str, tuple[int, ...]]) -> str | None:
    problem = first_misfit(arch, state, expected)
    if problem is None:
        return None
    try:
        guess = guess_architecture(state)
    except Exception:  # noqa: BLE001 - the guess is a courtesy; the sentence stands without it
        guess = None
    if guess and guess != arch:
        return f"{problem}: the file is for another architecture (it looks like {guess})"
    return f"{problem}: the file is for another architecture, or not a plain {arch} state_dict"


def _on_meta(net: nn.Module) -> bool:
    return any(t.is_meta for t in [*net.parameters(), *net.buffers()]) or any(
        isinstance(v, torch.Tensor) and v.is_meta for m in net.modules() for v in vars(m).values()
    )


def _checked(arch: str, state: dict, where: str) -> tuple[dict, nn.Module, dict]:
    """(the state_dict with torchvision's key names, the architecture on the meta device at the file's head
    size, its builder's arguments); BadModelFile naming the first layer that does not fit."""
    state = _normalised(arch, state)
    kw = _kwargs(arch, _num_classes(arch, state) or 1000, _has_aux(arch, state))
    skeleton = _build_meta(arch, **kw)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    headless(arch, state, expected, _signature(arch)[1], where)
    untracked = [k for k in expected if k.endswith(_COUNTER) and k not in state]
    if untracked:  # files from before batch norms counted their batches
        state = with_metadata({**state, **{k: torch.tensor(0) for k in untracked}}, getattr(state, "_metadata", None))
    problem = _mismatch(arch, state, expected)
    if problem:
        raise BadModelFile(f"{where}: {problem}")
    return state, skeleton, kw


def build(arch: str, state: dict, where: str) -> tuple[nn.Module, int]:
    """The architecture with the file's weights and head size, and that size."""
    arch = check_arch(arch, where)
    state, net, kw = _checked(arch, state, where)
    reference = net.state_dict()
    # A safetensors file has no module version record; the skeleton's is right for weights that fit it.
    state = with_metadata(
        {k: v.to(reference[k].dtype) if v.dtype != reference[k].dtype else v for k, v in state.items()},
        getattr(state, "_metadata", None) or reference._metadata,
    )
    # Taking the file's tensors as they are skips initialising weights only to overwrite them.
    net.load_state_dict(state, strict=True, assign=True)
    if _on_meta(net):  # a module keeping a tensor outside its state_dict: build it for real
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = tvm.get_model(arch, weights=None, **kw)
        net.load_state_dict(state, strict=True)
    if kw.get("aux_logits"):
        net.aux_logits = False  # the auxiliary heads only matter in training
    return net.eval(), kw["num_classes"]


def _defaults(arch: str, num_classes: int, fields: dict) -> dict:
    """What torchvision's weights say about inputs and classes, under what the user gave."""
    transforms = tvm.get_model_weights(arch).DEFAULT.transforms()
    crop, resize = int(transforms.crop_size[0]), int(transforms.resize_size[0])
    out = dict(fields)
    if "input_size" not in fields:
        out["input_size"] = [3, crop, crop]
    elif "resize_size" not in fields:
        # A smaller or larger input keeps torchvision's ratio of resize to crop.
        height = int(fields["input_size"][1])
        out["resize_size"] = max(height, round(height * resize / crop))
    out.setdefault("resize_size", resize)
    out.setdefault("mean", list(transforms.mean))
    out.setdefault("std", list(transforms.std))
    if "class_names" not in fields:
        out["class_names"] = (
            list(tvm.get_model_weights(arch).DEFAULT.meta["categories"])
            if num_classes == 1000
            else [f"class {i}" for i in range(num_classes)]
        )
    if "domain" not in fields and num_classes == 1000:
        out["domain"] = IMAGENET_NAME
    return out


def load(arch: str, data: bytes, fields: dict, *, name: str, where: str) -> Classifier:
    """`data` (a state_dict or safetensors file) on torchvision's `arch` as a Classifier."""
    arch = check_arch(arch, where)
    net, num_classes = build(arch, read_state_dict(data, where), where)
    fields = _defaults(arch, num_classes, fields)
    layers_unavailable = None
    if arch.startswith(_TOKENS):
        if "block_names" not in fields:
            layers_unavailable = (
                f"{arch}'s encoder passes token sequences (N×tokens×channels), not N×C×H×W "
                "maps, so there is no layer for Grad-CAM or the feature views"
            )
    elif "block_names" not in fields:
        try:
            blocks, cam = block_names(arch, net)
        except ValueError:
            pass  # no family rule: `wrap` finds the blocks with common.auto_blocks
        else:
            fields["block_names"] = blocks
            fields.setdefault("cam_layer", cam)
    return wrap(net, fields, name=name, where=where, kind="torchvision", layers_unavailable=layers_unavailable)


def describe(arch: str | None, data: bytes | None = None) -> dict:
    """What torchvision (and the file, when given) says about a model, for prefilling a form."""
    where = "the weights file"
    state = read_state_dict(data, where) if data else None
    if arch is None:
        if state is None:
            raise BadModelFile("give a torchvision architecture or a weights file to describe")
        arch = guess_architecture(state)
        if arch is None:
            raise BadModelFile(
                f"{where} matches no torchvision classification architecture; choose its "
                "architecture (torchvision or timm)"
            )
    arch = check_arch(arch, where)
    num_classes = 1000 if state is None else _checked(arch, state, where)[2]["num_classes"]
    fields = _defaults(arch, num_classes, {})
    names = fields["class_names"]
    return {
        "kind": "torchvision",
        "arch": arch,
        "input_size": list(fields["input_size"]),
        "mean": fields["mean"],
        "std": fields["std"],
        "resize_size": fields["resize_size"],
        "class_names": names if num_classes == 1000 else num_classes,
    }
