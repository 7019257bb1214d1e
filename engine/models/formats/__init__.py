"""A researcher's own model file, in any common format, as the engine's `Classifier`.

    model = formats.load("net.onnx")                      # + net.json beside it (the sidecar), when there
    model = formats.load("resnet18=weights.pth")          # a torchvision architecture with a state_dict
    model = formats.load("timm:convnext_tiny=ckpt.safetensors")
    model = formats.load("hf:path/to/folder")             # a Hugging Face image-classification folder
    model = formats.load("mypkg.models:make", meta=...)   # the operator's own code: CLI / Python API only
    model = formats.load(data, filename="net.pt2", meta={"mean": [...], "std": [...]})   # an upload's bytes

Each format has one small loader (a module here) behind `load`; which one runs is decided by the file's bytes
(`common.sniff`), not by its name. Metadata (input size, normalisation, class names, layer catalogue) comes
from what the file itself says, overridden by the sidecar JSON, overridden by `meta`. Every refusal is a
`BadModelFile` whose text is one sentence naming the file, what is wrong with it and what to do.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from engine.models.classifier import Classifier
from engine.models.formats.common import (
    SIDECAR_FIELDS,
    BadModelFile,
    auto_blocks,
    check_meta,
    read_bytes,
    read_sidecar,
    sniff,
    wrap,
)
from engine.models.formats.entrypoint import ENTRY_POINT

__all__ = [
    "BadModelFile",
    "KINDS",
    "SIDECAR_FIELDS",
    "auto_blocks",
    "check_meta",
    "describe",
    "load",
    "read_sidecar",
    "sniff",
    "wrap",
]

KINDS: dict[str, str] = {
    "torchvision": "a torchvision architecture (resnet18, …) with your state_dict (.pt/.pth/.safetensors)",
    "timm": "a timm architecture with your checkpoint (.pth/.safetensors)",
    "onnx": "an ONNX graph (.onnx) with its weights inside the file",
    "hf": "a Hugging Face image-classification folder (config.json + weights), or that folder zipped",
    "export": "a torch.export program (.pt2, torch.export.save)",
    "torchscript": "a TorchScript archive (torch.jit.save: .pt/.ts)",
    "entrypoint": "your own Python factory, package.module:function (command line only)",
}

_ARCH = re.compile(r"^[A-Za-z_][\w.\-]*$")
_BYTES = (bytes, bytearray, memoryview)


def _other(module: str):
    """A loader module written alongside this one, imported when first needed (its libraries are heavy)."""
    try:
        return importlib.import_module(f"engine.models.formats.{module}")
    except ModuleNotFoundError as err:
        if err.name != f"engine.models.formats.{module}":
            raise
        raise BadModelFile(
            f"{KINDS.get(module, module)} cannot be loaded in this installation; choose another format"
        ) from err


def _split_arch(spec: str) -> tuple[str, str, str] | None:
    """('timm' or 'torchvision', arch, file) for 'timm:ARCH=FILE' / 'ARCH=FILE', else None."""
    family = "torchvision"
    rest = spec
    if spec.startswith("timm:"):
        family, rest = "timm", spec[len("timm:") :]
    arch, sep, file = rest.partition("=")
    if sep and file and _ARCH.match(arch):
        return family, arch, file
    return None


def _fields(where: str, sidecar, meta: dict | None) -> dict:
    fields: dict = {}
    if sidecar is not None:
        fields.update(read_sidecar(sidecar))
    if meta:
        fields.update(check_meta(meta, where=f"{where}: metadata"))
    return check_meta(fields, where=f"{where}: metadata")


def _beside(path: Path) -> Path | None:
    json_path = path.with_suffix(".json")
    return json_path if json_path != path and json_path.is_file() else None


def _state_dict_hint(data: bytes, where: str, filename: str, uploaded: bool, kind: str) -> BadModelFile:
    try:
        weights, torchvision = _other("weights"), _other("torchvision")
    except BadModelFile:
        guess = None
    else:  # a file that is no plain state_dict after all gets the weights reader's own sentence
        guess = torchvision.guess_architecture(weights.read_state_dict(data, where, filename))
    what = "a safetensors file" if kind == "safetensors" else "a state_dict"
    example = guess or "resnet18"
    looks = f"it looks like {guess}; " if guess else ""
    if uploaded:
        return BadModelFile(
            f"{where} is {what} (weights only): {looks}choose its architecture (torchvision or timm) to load it"
        )
    return BadModelFile(
        f"{where} is {what} (weights only): {looks}give its architecture, ARCH=FILE, e.g. {example}={where}"
    )


def _by_content(
    data: bytes, fields: dict, *, name: str, where: str, filename: str, folder: Path | None, uploaded: bool
) -> Classifier:
    kind = sniff(data, filename)
    if kind == "onnx":
        return _other("onnx").load(data, fields, name=name, where=where, folder=folder)
    if kind == "torchscript":
        return _other("torchscript").load(data, fields, name=name, where=where)
    if kind == "export":
        return _other("export").load(data, fields, name=name, where=where)
    if kind in ("state_dict", "safetensors"):
        raise _state_dict_hint(data, where, filename, uploaded, kind)
    if kind == "zip":
        return _other("hf").load(data, fields, name=name, where=where)
    raise BadModelFile(
        f"{where} is not a model file this app reads (TorchScript, torch.export .pt2, ONNX, "
        "a state_dict or safetensors with its architecture, or a Hugging Face folder); "
        "it may be truncated or another format: save it again"
    )


def _with_arch(family: str, arch: str, data: bytes, fields: dict, *, name: str, where: str, filename: str):
    if family == "timm":
        return _other("timm").load(arch, data, fields, name=name, where=where, filename=filename)
    return _other("torchvision").load(arch, data, fields, name=name, where=where)


def load(
    source: str | Path | bytes,
    *,
    filename: str = "",
    meta: dict | None = None,
    sidecar=None,
    name: str | None = None,
    arch: str | None = None,
) -> Classifier:
    """A user's model as a CPU Classifier; BadModelFile (a ModelUnavailable) with one sentence otherwise.

    `source`: a spec or path (see the module docstring), or the bytes of an upload (`filename`: its name).
    `arch`: the architecture for weights-only bytes or a file, 'resnet18' (torchvision) or 'timm:NAME'.
    `sidecar`: a JSON file of metadata (default: FILE.json beside a FILE, when there); `meta` overrides it."""
    if isinstance(source, _BYTES):
        where = filename or "the uploaded model"
        fields = _fields(where, sidecar, meta)
        name = name or fields.get("name") or (Path(filename).stem if filename else "uploaded model")
        data = read_bytes(source, where)
        if arch:
            family, _, arch_name = arch.rpartition(":")
            return _with_arch(
                family or "torchvision", arch_name, data, fields, name=name, where=where, filename=filename
            )
        return _by_content(data, fields, name=name, where=where, filename=filename, folder=None, uploaded=True)

    spec = str(source)
    path = Path(spec)
    if arch and not path.exists():
        raise BadModelFile(f"{spec} does not exist; give the weights file of the {arch} model")
    if arch:
        family, _, arch_name = arch.rpartition(":")
        fields = _fields(spec, sidecar if sidecar is not None else _beside(path), meta)
        name = name or fields.get("name") or f"{arch_name} ({path.name})"
        return _with_arch(
            family or "torchvision",
            arch_name,
            read_bytes(path, spec),
            fields,
            name=name,
            where=spec,
            filename=path.name,
        )
    if path.is_dir() or spec.startswith("hf:"):
        folder = Path(spec[len("hf:") :]) if spec.startswith("hf:") and not path.exists() else path
        fields = _fields(spec, sidecar, meta)
        name = name or fields.get("name") or folder.name
        return _other("hf").load(folder, fields, name=name, where=str(folder))
    if path.is_file():
        fields = _fields(spec, sidecar if sidecar is not None else _beside(path), meta)
        name = name or fields.get("name") or path.stem
        return _by_content(
            read_bytes(path, spec),
            fields,
            name=name,
            where=spec,
            filename=path.name,
            folder=path.resolve().parent,
            uploaded=False,
        )
    split = _split_arch(spec)
    if split is None and spec.startswith("timm:"):
        raise BadModelFile(
            f"{spec!r} names no weights file; give timm:ARCH=WEIGHTS, e.g. timm:resnet50=model.safetensors"
        )
    if split is not None:
        family, arch_name, file = split
        file_path = Path(file)
        fields = _fields(spec, sidecar if sidecar is not None else _beside(file_path), meta)
        name = name or fields.get("name") or f"{arch_name} ({file_path.name})"
        return _with_arch(
            family, arch_name, read_bytes(file_path, file), fields, name=name, where=file, filename=file_path.name
        )
    if ENTRY_POINT.match(spec):
        fields = _fields(spec, sidecar, meta)
        return _other("entrypoint").load(
            spec, fields, name=name or fields.get("name") or spec, where=f"entry point {spec}"
        )
    raise BadModelFile(
        f"{spec!r} is neither a model file nor a spec: give a file (.onnx, .pt2, TorchScript), "
        "ARCH=WEIGHTS, timm:ARCH=WEIGHTS, hf:FOLDER or an entry point package.module:factory"
    )


def describe(source: str | Path | bytes, *, filename: str = "") -> dict:
    """What a model file says about itself, for prefilling a form: {'kind': ..., plus any of input_size, mean,
    std, class_names, resize_size, name, arch}. Weights without an architecture give kind 'state_dict' or
    'safetensors' ('torchvision' with the arch when they fit one). A merely incomplete file gives what there is;
    a corrupt or hostile one raises BadModelFile."""
    if isinstance(source, _BYTES):
        where = filename or "the uploaded model"
        return _describe_bytes(read_bytes(source, where), where, filename, None)
    spec = str(source)
    path = Path(spec)
    if path.is_dir() or (spec.startswith("hf:") and not path.exists()):
        folder = Path(spec[len("hf:") :]) if spec.startswith("hf:") and not path.exists() else path
        return {"kind": "hf", "name": folder.name, **_other("hf").describe(folder)}
    if path.is_file():
        return _describe_bytes(read_bytes(path, spec), spec, path.name, path.resolve().parent)
    split = _split_arch(spec)
    if split is not None:
        family, arch_name, file = split
        data = read_bytes(file, file) if Path(file).is_file() else None
        return {**_other(family).describe(arch_name, data), "kind": family}
    if ENTRY_POINT.match(spec):
        return {"kind": "entrypoint", "name": spec}
    raise BadModelFile(
        f"{spec!r} is neither a model file nor a spec: give a file (.onnx, .pt2, TorchScript), "
        "ARCH=WEIGHTS, timm:ARCH=WEIGHTS, hf:FOLDER or an entry point package.module:factory"
    )


def _describe_bytes(data: bytes, where: str, filename: str, folder: Path | None) -> dict:
    kind = sniff(data, filename)
    out: dict = {"name": Path(filename).stem} if filename else {}
    if kind == "onnx":
        return {**out, **_other("onnx").describe(data, where=where, folder=folder), "kind": "onnx"}
    if kind == "export":
        return {**out, **_other("export").describe(data, where=where), "kind": "export"}
    if kind == "torchscript":
        return {**out, "kind": "torchscript"}
    if kind in ("state_dict", "safetensors"):
        torchvision = _other("torchvision")
        guess = torchvision.guess_architecture(_other("weights").read_state_dict(data, where, filename))
        if guess:  # weights that fit a torchvision architecture: what that architecture says
            return {**out, **torchvision.describe(guess, data), "kind": "torchvision"}
        return {**out, "kind": kind}
    if kind == "zip":
        return {**out, **_other("hf").describe(data), "kind": "hf"}
    raise BadModelFile(
        f"{where} is not a model file this app reads (TorchScript, torch.export .pt2, ONNX, "
        "a state_dict or safetensors with its architecture, or a Hugging Face folder); "
        "it may be truncated or another format: save it again"
    )
