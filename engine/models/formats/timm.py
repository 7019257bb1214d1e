"""A timm architecture with a local checkpoint (`timm:ARCH=FILE`: .safetensors, or .pth/.bin read as weights only).

Nothing is downloaded: the network is built with `pretrained=False` at the checkpoint's head size, and input size,
mean, std and crop come from timm's pretrained configuration for the architecture (bundled with timm), unless
the metadata says otherwise. The layer catalogue is the model's `feature_info` stages where they output
N×C×H×W maps; Grad-CAM uses the last of them.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
import time
import warnings

import torch
from torch import nn

from engine.domains import IMAGENET_NAME
from engine.models.classifier import Classifier
from engine.models.formats.common import BadModelFile, wrap_catalogued
from engine.models.formats.torchvision import _EmptyOnMeta, _on_meta, first_misfit, headless
from engine.models.formats.weights import read_state_dict, with_metadata

_PROBE_CLASSES = (1000, 7)
_COUNTER = "num_batches_tracked"
# Looking for the architecture a checkpoint is for is a courtesy in an error message; it stops after this long.
_GUESS_SECONDS = 2.0
_signatures: dict[str, tuple[dict[str, tuple[int, ...]], frozenset[str]]] = {}


def _timm():
    import timm

    return timm


def check_arch(arch: str, where: str = "") -> str:
    timm = _timm()
    if timm.models.is_model(arch):
        return arch
    prefix = (re.match(r"[A-Za-z]+", str(arch)) or [""])[0].lower()
    close = difflib.get_close_matches(str(arch).lower(), timm.list_models(), n=5, cutoff=0.6)
    if not close and prefix:
        close = timm.list_models(f"*{prefix}*")[:5]
    hint = f"; close matches: {', '.join(close)}" if close else "; timm.list_models() lists them"
    raise BadModelFile(f"{where + ': ' if where else ''}{arch!r} is not a timm architecture{hint}")


def _build(arch: str, num_classes: int, meta: bool) -> nn.Module:
    timm = _timm()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if meta:
            # Some builders compute with tensors, which the meta device cannot run: try the milder mode, then
            # a real build.
            for mode in (lambda: torch.device("meta"), _EmptyOnMeta):
                try:
                    with mode():
                        return timm.create_model(arch, pretrained=False, num_classes=num_classes)
                except (NotImplementedError, RuntimeError):
                    pass
        return timm.create_model(arch, pretrained=False, num_classes=num_classes)


def _signature(arch: str) -> tuple[dict[str, tuple[int, ...]], frozenset[str]]:
    """(shape of every state_dict entry at 1000 classes, the entries that are the classification head)."""
    if arch not in _signatures:
        shapes = [
            {k: tuple(v.shape) for k, v in _build(arch, n, meta=True).state_dict().items()} for n in _PROBE_CLASSES
        ]
        _signatures[arch] = (shapes[0], frozenset(k for k in shapes[0] if shapes[0][k] != shapes[1][k]))
    return _signatures[arch]


def _num_classes(arch: str, state: dict) -> int | None:
    _, head = _signature(arch)
    for key in sorted(head):
        if isinstance(state.get(key), torch.Tensor) and state[key].dim() >= 1:
            return int(state[key].shape[0])
    return None


def _fits(arch: str, state: dict) -> bool:
    try:
        shapes, head = _signature(arch)
    except Exception:  # noqa: BLE001 - an architecture that does not build here is not the answer
        return False
    keys = {k for k in state if not k.endswith(_COUNTER)}
    theirs = {k for k in shapes if not k.endswith(_COUNTER)}
    return keys == theirs and all(tuple(state[k].shape) == shapes[k] for k in theirs if k not in head)


def guess_architecture(state: dict, like: str) -> str | None:
    """A timm architecture of the same family as `like` (same leading letters) that the state_dict fits,
    looked for within a couple of seconds; None otherwise."""
    prefix = (re.match(r"[A-Za-z]+", like) or [""])[0].lower()
    if not prefix:
        return None
    deadline = time.monotonic() + _GUESS_SECONDS
    candidates = sorted(_timm().list_models(f"{prefix}*"), key=lambda a: a not in _signatures)
    for arch in candidates:
        if arch != like and _fits(arch, state):
            return arch
        if time.monotonic() > deadline:
            break
    return None


def _misfit(arch: str, state: dict, expected: dict[str, tuple[int, ...]]) -> str | None:
    problem = first_misfit(arch, state, expected, noun="checkpoint")
    if problem is None:
        return None
    guess = guess_architecture(state, arch)
    if guess:
        return f"{problem}: the checkpoint is for another architecture (it looks like timm's {guess})"
    return f"{problem}: the checkpoint is for another architecture, or not a plain {arch} state_dict"


def _filtered(net: nn.Module, state: dict) -> dict | None:
    """The checkpoint through the architecture's own converter (timm ships one for the original authors'
    key names), or None when there is none or it fails."""
    convert = getattr(sys.modules.get(type(net).__module__), "checkpoint_filter_fn", None)
    if convert is None:
        return None
    try:
        out = convert(dict(state), net)
    except Exception:  # noqa: BLE001 - the converter expects its own authors' files; this one is not
        return None
    return out if isinstance(out, dict) and all(isinstance(v, torch.Tensor) for v in out.values()) else None


def build(arch: str, state: dict, where: str) -> tuple[nn.Module, int]:
    """The architecture at the checkpoint's head size with its weights; BadModelFile naming the first misfit."""
    arch = check_arch(arch, where)
    num_classes = _num_classes(arch, state) or 1000
    skeleton = _build(arch, num_classes, meta=True)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    headless(arch, state, expected, _signature(arch)[1], where, noun="checkpoint")
    if first_misfit(arch, state, expected) is not None:
        converted = _filtered(skeleton, state)
        if converted is not None and first_misfit(arch, converted, expected) is None:
            state = converted
        else:
            raise BadModelFile(f"{where}: {_misfit(arch, state, expected)}")
    reference = skeleton.state_dict()
    state = with_metadata(
        {k: v.to(reference[k].dtype) if v.dtype != reference[k].dtype else v for k, v in state.items()},
        getattr(state, "_metadata", None) or reference._metadata,
    )
    net = skeleton
    net.load_state_dict(state, strict=True, assign=True)
    if _on_meta(net):  # buffers outside the state_dict (position indices, ...): build it for real
        net = _build(arch, num_classes, meta=False)
        net.load_state_dict(state, strict=True)
    return net.eval(), num_classes


def _config(arch: str) -> dict:
    cfg = _timm().models.get_pretrained_cfg(arch)
    if cfg is not None:
        return cfg.to_dict()
    return dict(getattr(_build(arch, 1000, meta=True), "pretrained_cfg", {}) or {})


def _defaults(arch: str, num_classes: int, fields: dict) -> dict:
    cfg = _config(arch)
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    out = dict(fields)
    size = list(cfg.get("input_size") or (3, 224, 224))
    out.setdefault("input_size", [size[0], size[1], size[1]])
    if "resize_size" not in fields:
        height = int(out["input_size"][1])
        out["resize_size"] = max(height, math.floor(height / crop_pct))
    out.setdefault("mean", [float(v) for v in cfg.get("mean") or (0.485, 0.456, 0.406)])
    out.setdefault("std", [float(v) for v in cfg.get("std") or (0.229, 0.224, 0.225)])
    if "class_names" not in fields:
        labels = cfg.get("label_names")
        if labels and len(labels) == num_classes:
            out["class_names"] = list(labels)
        elif num_classes == 1000:
            import torchvision.models as tvm

            out["class_names"] = list(tvm.ResNet18_Weights.DEFAULT.meta["categories"])
        else:
            out["class_names"] = [f"class {i}" for i in range(num_classes)]
    if "domain" not in fields and num_classes == 1000:
        out["domain"] = IMAGENET_NAME
    return out


def catalogue(net: nn.Module, input_size) -> tuple[list[str], str | None]:
    """(feature_info stages that output N×C×H×W maps, why there are none)."""
    info = getattr(net, "feature_info", None)
    stages = (
        [(f["module"], f.get("num_chs")) for f in info if isinstance(f, dict) and f.get("module")]
        if isinstance(info, list)
        else []
    )
    if not stages:
        return [], None
    modules = dict(net.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, _ in stages:
        if name in modules:
            handles.append(
                modules[name].register_forward_hook(lambda _m, _a, out, name=name: outputs.setdefault(name, out))
            )
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_size))
    except Exception:  # noqa: BLE001 - `wrap` runs the same forward and says what is wrong
        return [], None
    finally:
        for h in handles:
            h.remove()
    maps = [
        name
        for name, chs in stages
        if isinstance(outputs.get(name), torch.Tensor)
        and outputs[name].dim() == 4
        and (chs is None or outputs[name].shape[1] == chs)
    ]
    if maps:
        return maps, None
    return [], (
        "its stages output token sequences or channels-last maps, not N×C×H×W maps, so there is no layer "
        "for Grad-CAM or the feature views"
    )


def load(arch: str, data: bytes, fields: dict, *, name: str, where: str, filename: str = "") -> Classifier:
    """A timm `arch` with the checkpoint in `data` as a Classifier."""
    arch = check_arch(arch, where)
    net, num_classes = build(arch, read_state_dict(data, where, filename), where)
    fields = _defaults(arch, num_classes, fields)
    return wrap_catalogued(net, fields, catalogue, name=name, where=where, kind="timm")


def describe(arch: str, data: bytes | None = None) -> dict:
    """What timm (and the checkpoint, when given) says about a model, for prefilling a form."""
    where = "the checkpoint"
    arch = check_arch(arch, where)
    num_classes = 1000
    if data:
        state = read_state_dict(data, where)
        num_classes = _num_classes(arch, state) or 1000
        problem = _misfit(
            arch, state, {k: tuple(v.shape) for k, v in _build(arch, num_classes, meta=True).state_dict().items()}
        )
        if problem:
            raise BadModelFile(f"{where}: {problem}")
    fields = _defaults(arch, num_classes, {})
    return {
        "kind": "timm",
        "arch": arch,
        "input_size": list(fields["input_size"]),
        "mean": fields["mean"],
        "std": fields["std"],
        "resize_size": fields["resize_size"],
        "class_names": fields["class_names"] if num_classes == 1000 else num_classes,
    }
