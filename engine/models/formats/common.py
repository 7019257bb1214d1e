"""What every format loader shares: the metadata fields, telling formats apart, and turning a network into a
`Classifier` with a layer catalogue.

Loaders raise `BadModelFile` with one plain sentence (the file, what is wrong, what to do); torch's, onnx's or
protobuf's own messages stay in the exception chain for a developer and never reach the page or the shell.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from engine import domains
from engine.models.classifier import Classifier
from engine.models.registry import ModelUnavailable


class BadModelFile(ModelUnavailable):
    """A model file that cannot be used; str() is one plain sentence for the UI/CLI (never torch's own text)."""


SIDECAR_FIELDS: dict[str, str] = {
    "input_size": "[C, H, W] the network's input (required unless the file states it: ONNX, a static .pt2)",
    "mean": "C floats, per-channel mean subtracted from [0, 1] pixels (required unless the format knows it)",
    "std": "C positive floats, per-channel divisor (required unless the format knows it)",
    "resize_size": "int ≥ H: photos' shorter side is resized to this before the centre crop (default H)",
    "class_names": "list of names, or a number of classes (names 'class 0', ...); default: the output width",
    "domain": "free-form domain name (default 'imagenet' for 1000 classes at 3×224×224, else 'custom')",
    "block_names": "dotted module names making up the layer catalogue (default: found automatically)",
    "cam_layer": "dotted module name for Grad-CAM (default: the last catalogue block)",
    "name": "display name (default: the file's stem or the entry point)",
}

# The batch of one probe image, named in messages when a forward fails.
_PROBE_BATCH = 1


# ---------------------------------------------------------------- metadata


def read_sidecar(path: str | Path) -> dict:
    """The JSON object in `path`, its fields checked (see SIDECAR_FIELDS); BadModelFile if it is not usable."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BadModelFile(f"sidecar {path} does not exist") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModelFile(f"sidecar {path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise BadModelFile(f"sidecar {path} must hold a JSON object, got {type(meta).__name__}")
    return check_meta(meta, where=f"sidecar {path}")


def check_meta(meta: dict, where: str = "model metadata") -> dict:
    """Types and lengths of the metadata fields, independent of the model (its outputs are checked by `wrap`)."""
    unknown = sorted(set(meta) - set(SIDECAR_FIELDS))
    if unknown:
        raise BadModelFile(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(SIDECAR_FIELDS)}")
    out = dict(meta)

    def ints(key, n=None):
        v = meta[key]
        if not isinstance(v, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v
        ):
            raise BadModelFile(f"{where}: {key!r} must be a list of positive integers, got {v!r}")
        if n is not None and len(v) != n:
            raise BadModelFile(f"{where}: {key!r} must have {n} entries (C, H, W), got {len(v)}")
        return tuple(v)

    def floats(key):
        v = meta[key]
        if (
            not isinstance(v, (list, tuple))
            or not v
            or not all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in v)
        ):
            raise BadModelFile(f"{where}: {key!r} must be a non-empty list of numbers, got {v!r}")
        return [float(i) for i in v]

    if "input_size" in meta:
        out["input_size"] = ints("input_size", 3)
    for key in ("mean", "std"):
        if key in meta:
            out[key] = floats(key)
    if "std" in out and any(s <= 0 for s in out["std"]):
        raise BadModelFile(f"{where}: 'std' entries must be positive, got {out['std']}")
    if "input_size" in out:
        channels = out["input_size"][0]
        for key in ("mean", "std"):
            if key in out and len(out[key]) != channels:
                raise BadModelFile(f"{where}: {key!r} has {len(out[key])} entries for {channels} input channel(s)")
    if "resize_size" in meta:
        v = meta["resize_size"]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise BadModelFile(f"{where}: 'resize_size' must be a positive integer, got {v!r}")
        if "input_size" in out and v < out["input_size"][1]:
            raise BadModelFile(f"{where}: 'resize_size' {v} is smaller than the input height {out['input_size'][1]}")
    if "class_names" in meta:
        v = meta["class_names"]
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise BadModelFile(f"{where}: 'class_names' as a count must be ≥ 1, got {v}")
            out["class_names"] = [f"class {i}" for i in range(v)]
        elif isinstance(v, (list, tuple)) and v and all(isinstance(n, str) for n in v):
            out["class_names"] = list(v)
        else:
            raise BadModelFile(f"{where}: 'class_names' must be a list of strings or a number of classes, got {v!r}")
    for key in ("domain", "cam_layer", "name"):
        if key in meta and (not isinstance(meta[key], str) or not meta[key]):
            raise BadModelFile(f"{where}: {key!r} must be a non-empty string, got {meta[key]!r}")
    if "block_names" in meta:
        v = meta["block_names"]
        if not isinstance(v, (list, tuple)) or not v or not all(isinstance(n, str) and n for n in v):
            raise BadModelFile(f"{where}: 'block_names' must be a non-empty list of dotted module names, got {v!r}")
        out["block_names"] = list(v)
    return out


# ---------------------------------------------------------------- telling formats apart


def zip_names(data: bytes) -> list[str] | None:
    """The entries of a zip archive, or None when `data` is not one (truncated archives included)."""
    try:
        return zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None


def _is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    (size,) = struct.unpack("<Q", data[:8])
    return 2 <= size <= len(data) - 8 and data[8:9] == b"{"


def _is_onnx(data: bytes) -> bool:
    # Protobuf parses much random data without complaint: ask for the fields every exporter writes.
    import onnx

    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: not ONNX
        return False
    return proto.ir_version > 0 and len(proto.graph.node) > 0 and len(proto.opset_import) > 0


def sniff(data: bytes, filename: str = "") -> str:
    """What a model file is, from its bytes first and its name second.

    'torchscript', 'export' (a torch.export .pt2), 'state_dict' (a torch.save file, zip or legacy pickle),
    'safetensors', 'onnx', 'zip' (any other zip, e.g. a zipped Hugging Face folder) or 'unknown'."""
    suffix = Path(filename).suffix.lower() if filename else ""
    if not data:
        return "unknown"
    names = zip_names(data)
    if names is not None:
        if any(n == "archive_format" or n.endswith("/archive_format") for n in names) or any(
            "/models/" in n and n.endswith(".json") for n in names
        ):
            return "export"
        if any("/code/" in n or n.startswith("code/") for n in names) and any(
            n.endswith("constants.pkl") for n in names
        ):
            return "torchscript"
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "state_dict"
        return "zip"
    if data[:1] == b"\x80" and suffix != ".onnx":  # a pickle (protocol ≥ 2): torch.save's legacy format
        return "state_dict"
    if _is_safetensors(data):
        return "safetensors"
    if (data[:1] == b"\x08" or suffix == ".onnx") and _is_onnx(data):
        return "onnx"
    if suffix == ".onnx":
        return "onnx"  # the ONNX loader says what is wrong with it
    if suffix == ".safetensors":
        return "safetensors"
    return "unknown"


def read_bytes(source, where: str) -> bytes:
    """The bytes of an upload or a file; BadModelFile for an unreadable or empty one."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise BadModelFile(
                f"{where} cannot be read ({err.strerror or type(err).__name__}); check the path"
            ) from err
    if not data:
        raise BadModelFile(f"{where} is empty (0 bytes); choose the model file itself")
    return data


# ---------------------------------------------------------------- the catalogue


def probe_calls(net: nn.Module, input_size: Sequence[int]) -> tuple[dict[str, list], list[str]]:
    """Every hookable submodule's calls in one probe forward of a zero image: name → [(input, output), ...], and
    the names in the order they were first called. The hooks live only for that forward."""
    calls: dict[str, list] = {}
    order: list[str] = []

    def hook(name):
        def record(_module, args, output):
            if name not in calls:
                order.append(name)
            calls.setdefault(name, []).append((args[0] if args else None, output))

        return record

    # Compiled TorchScript submodules hold parameters but take no hooks.
    handles = [
        m.register_forward_hook(hook(n))
        for n, m in net.named_modules()
        if n and not isinstance(m, torch.jit.ScriptModule)
    ]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_size))
    finally:
        for h in handles:
            h.remove()
    return calls, order


def wrap_catalogued(net: nn.Module, fields: dict, catalogue, *, name: str, where: str, kind: str) -> Classifier:
    """`wrap`, with the layer catalogue (and Grad-CAM layer) from `catalogue(net, input_size)` -> (blocks, why
    not) unless the metadata names the blocks."""
    layers_unavailable = None
    if "block_names" not in fields:
        blocks, layers_unavailable = catalogue(net, fields["input_size"])
        if blocks:
            fields = {**fields, "block_names": blocks, "cam_layer": fields.get("cam_layer", blocks[-1])}
    return wrap(net, fields, name=name, where=where, kind=kind, layers_unavailable=layers_unavailable)


def auto_blocks(net: nn.Module, input_size: Sequence[int]) -> list[str]:
    """Blocks with 4-D outputs along the main path, in execution order, found with one probe forward.

    Containers whose children form a plain chain (a Sequential: each child eats the previous child's
    output) are opened up; a module whose output goes straight into a following leaf of the same shape
    (a convolution into its batch norm, a batch norm into its ReLU) gives way to that leaf, so the
    catalogue holds post-activation maps; 1×1 outputs (global pools) are not maps; modules called more than
    once are left out (a hook would see only the last call). torchvision's resnet18 gives relu, maxpool,
    layer1.0, ..., layer4.1.
    """
    calls, order = probe_calls(net, input_size)
    modules = {n: m for n, m in net.named_modules() if not isinstance(m, torch.jit.ScriptModule)}

    def children_called(prefix: str) -> list[str]:
        if prefix not in modules:
            return []
        kids = [f"{prefix}.{c}" if prefix else c for c, _ in modules[prefix].named_children()]
        kids = [k for k in kids if k in calls]
        return sorted(kids, key=order.index)

    def is_chain(prefix: str, kids: list[str]) -> bool:
        if len(kids) < 2 or len(calls[prefix]) != 1 or any(len(calls[k]) != 1 for k in kids):
            return False
        inp, out = calls[prefix][0]
        if calls[kids[0]][0][0] is not inp or calls[kids[-1]][0][1] is not out:
            return False
        return all(calls[b][0][0] is calls[a][0][1] for a, b in zip(kids, kids[1:]))

    def expand(prefix: str) -> list[str]:
        out = []
        for kid in children_called(prefix):
            grand = children_called(kid)
            out += expand(kid) if is_chain(kid, grand) else [kid]
        return out

    entries = [e for e in expand("") if len(calls[e]) == 1]

    def four_d(e):
        o = calls[e][0][1]
        return isinstance(o, torch.Tensor) and o.dim() == 4 and o.shape[-1] * o.shape[-2] > 1  # not a global pool

    def is_leaf(e):
        return not any(True for _ in modules[e].children())

    keep = []
    for i, e in enumerate(entries):
        if not four_d(e):
            continue
        nxt = entries[i + 1] if i + 1 < len(entries) else None
        if (
            nxt is not None
            and is_leaf(nxt)
            and four_d(nxt)
            and calls[nxt][0][0] is calls[e][0][1]
            and calls[nxt][0][1].shape == calls[e][0][1].shape
        ):
            continue
        keep.append(e)
    return keep


# ---------------------------------------------------------------- network → Classifier


def _shape(size: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in size)


def wrap(
    net: nn.Module, fields: dict, *, name: str, where: str, kind: str, layers_unavailable: str | None = None
) -> Classifier:
    """`net` (taking normalised N×C×H×W input, returning N×K logits) as a Classifier.

    `fields`: checked metadata; input_size, mean and std are required, the rest optional. One probe forward
    checks the output; class names default to 'class i'; the domain to fields['domain'], else 'imagenet' for
    1000 classes at 3×224×224, else the record of models with the same classes ('custom' for the first; see
    `domains.adopt`); block_names to `auto_blocks`. `layers_unavailable` (why
    this network's layers cannot be hooked) makes a model without a catalogue."""
    missing = [k for k in ("input_size", "mean", "std") if fields.get(k) is None]
    if missing:
        raise BadModelFile(
            f"{where}: the {kind} file does not say its {', '.join(missing)}; give "
            f"{'them' if len(missing) > 1 else 'it'} in a sidecar JSON or the form"
        )
    fields = check_meta({**fields, "input_size": list(fields["input_size"])}, where=f"{where}: metadata")
    input_size = fields["input_size"]
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(_PROBE_BATCH, *input_size))
    except Exception as err:  # noqa: BLE001 - a user's network can raise anything; its text stays in the chain
        raise BadModelFile(
            f"{where}: the model fails on a batch of {_PROBE_BATCH} image of {_shape(input_size)} "
            "(C×H×W); check input_size against the size the model was trained on"
        ) from err
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != _PROBE_BATCH:
        got = _shape(out.shape) if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise BadModelFile(
            f"{where}: for {_PROBE_BATCH} image of {_shape(input_size)} the model returns {got}, not "
            f"{_PROBE_BATCH}×classes logits; load the classifier itself, not a feature extractor"
        )
    width = out.shape[1]
    class_names = fields.get("class_names") or [f"class {i}" for i in range(width)]
    if len(class_names) != width:
        raise BadModelFile(
            f"{where}: {len(class_names)} class names for a model with {width} outputs; give one name per output"
        )
    imagenet = width == 1000 and tuple(input_size) == (3, 224, 224)
    domain = fields.get("domain") or (domains.IMAGENET_NAME if imagenet else None)

    blocks = fields.get("block_names")
    cam = fields.get("cam_layer")
    if layers_unavailable:
        if blocks or cam:
            raise BadModelFile(f"{where}: block_names/cam_layer given, but {layers_unavailable}")
        blocks = []
    elif blocks is None:
        blocks = auto_blocks(net, input_size)
        if not blocks:
            layers_unavailable = (
                "no layer with an image-shaped (N×C×H×W) output was found on the model's main "
                "path; give block_names in the sidecar to name the layers for Grad-CAM and the "
                "feature views"
            )
    known = {n: m for n, m in net.named_modules() if n and not isinstance(m, torch.jit.ScriptModule)}
    for block in [*(blocks or []), *([cam] if cam else [])]:
        if block not in known:
            top = ", ".join(n for n in known if "." not in n)
            raise BadModelFile(
                f"{where}: {block!r} (block_names/cam_layer) is not a module of the model; "
                f"its top-level modules are: {top or 'none'}"
            )
    try:
        model = Classifier(
            net,
            name=name,
            domain=domain or "",
            input_size=input_size,
            class_names=class_names,
            mean=fields["mean"],
            std=fields["std"],
            block_names=blocks,
            cam_layer=cam if blocks else None,
            resize_size=fields.get("resize_size"),
            layers_unavailable=layers_unavailable,
        )
    except (AttributeError, ValueError) as err:
        raise BadModelFile(f"{where}: block_names/cam_layer must be dotted module names inside the model") from err
    try:  # the model's domain record, made now: its classes, shape, statistics and derived defaults
        domains.adopt(model, domain)
    except ValueError as err:
        raise BadModelFile(f"{where}: {err}") from None
    if blocks:
        try:
            model.layers()
        except KeyError as err:
            raise BadModelFile(
                f"{where}: block {err.args[0][4:]!r} is never called in a forward pass; name a layer the model runs"
            ) from err
    return model
