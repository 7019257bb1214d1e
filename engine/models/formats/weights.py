"""A weights file (a state_dict saved by torch.save, or safetensors) as a plain dict of tensors.

Nothing is unpickled beyond tensors: torch.load runs with `weights_only=True`, and a safetensors header is
checked here before the safetensors library reads the data, so that a corrupt or hostile file is refused with
one sentence. Common wrappers are unwrapped: {"state_dict": ...}, {"model": ...}, "module." prefixes.
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from collections import OrderedDict

import torch

from engine.models.formats.common import BadModelFile, sniff

# Where training scripts usually keep the weights inside a checkpoint dict, most specific first.
_WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model_state",
    "model",
    "state_dict_ema",
    "model_ema",
    "ema",
    "net",
    "network",
    "module",
    "weights",
    "params",
)
# DataParallel / DistributedDataParallel and torch.compile prefix every key with these.
_PREFIXES = ("module.", "_orig_mod.")
# A header larger than this is not a real safetensors header (the format itself caps it at 100 MB).
_MAX_HEADER = 100_000_000

_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}

_OTHER_FORMATS = {
    "torchscript": "a TorchScript file: choose TorchScript (or give the file without an architecture)",
    "export": "a torch.export program (.pt2): choose torch.export (or give the file without an architecture)",
    "onnx": "an ONNX graph: choose ONNX (or give the file without an architecture)",
    "zip": (
        "a zip archive but not a PyTorch weights file; a zipped Hugging Face folder is loaded as "
        "a Hugging Face model, without an architecture"
    ),
}


def _sentence(where: str, text: str) -> BadModelFile:
    return BadModelFile(f"{where}: {text}")


def check_safetensors(data: bytes, where: str, total: int | None = None) -> dict:
    """The parsed header of a safetensors file, after checking that it describes the bytes that follow it.

    `total`: the file's length when `data` holds only its beginning (at least the header)."""
    total = len(data) if total is None else total
    if total < 8 or len(data) < 8:
        raise _sentence(where, f"is {total} bytes long, too short for a safetensors file (truncated?)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > total - 8 or size > _MAX_HEADER:
        raise _sentence(
            where,
            f"declares a safetensors header of {size:,} bytes but only {total - 8:,} bytes "
            "follow; the file is truncated or not safetensors",
        )
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _sentence(
            where, "has a safetensors header that is not valid JSON; the file is corrupt, save it again"
        ) from err
    if not isinstance(header, dict):
        raise _sentence(where, "has a safetensors header that is not a JSON object; the file is corrupt")
    body = total - 8 - size
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise _sentence(
                where, f"the safetensors entry {key!r} lacks dtype, shape or data_offsets; the file is corrupt"
            )
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPE_BYTES:
            raise _sentence(where, f"the safetensors entry {key!r} has an unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _sentence(where, f"the safetensors entry {key!r} has a shape that is not a list of sizes")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise _sentence(where, f"the safetensors entry {key!r} has data_offsets that are not two integers")
        begin, end = offsets
        if not 0 <= begin <= end <= body:
            raise _sentence(
                where,
                f"the safetensors entry {key!r} points at bytes {begin:,}–{end:,} but the data "
                f"section holds {body:,} bytes; the file is truncated or corrupt",
            )
        if end - begin != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise _sentence(
                where,
                f"the safetensors entry {key!r} holds {end - begin:,} bytes for a "
                f"{'×'.join(map(str, shape)) or 'scalar'} {dtype} tensor; the file is corrupt",
            )
    return header


def _read_safetensors(data: bytes, where: str) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    check_safetensors(data, where)
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as err:
        raise _sentence(
            where, "is not a readable safetensors file (its tensors overlap or do not fit the data); save it again"
        ) from err


def _read_torch(data: bytes, where: str) -> object:
    import io

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for truncated or foreign files
        # weights_only refuses objects beyond tensors with an UnpicklingError that says the file "can still be
        # loaded" (by running its code: never here).
        if type(err).__name__ == "UnpicklingError" and (
            "unsupported global" in str(err).lower() or "can still be loaded" in str(err).lower()
        ):
            raise _sentence(
                where,
                "holds Python objects beyond tensors (a pickle); save `model.state_dict()` "
                "with torch.save or safetensors",
            ) from err
        raise _sentence(
            where,
            "is not a readable PyTorch weights file (truncated or another format); "
            "save it again with torch.save(model.state_dict(), ...)",
        ) from err


def _is_tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap(obj, where: str) -> dict:
    """The tensor dict inside a checkpoint: the dict itself, or one under a usual key, prefixes removed."""
    if not isinstance(obj, dict):
        raise _sentence(
            where,
            f"holds a {type(obj).__name__}, not a state_dict; save `model.state_dict()` with torch.save or safetensors",
        )
    state = obj
    for _ in range(3):  # {"model": {"state_dict": ...}} occurs; deeper nesting does not
        if _is_tensor_dict(state):
            break
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), dict) and state[k]), None)
        if inner is None:
            break
        state = inner
    if not state:
        raise _sentence(where, "holds an empty state_dict (no tensors)")
    stray = next(((k, v) for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if stray is not None:
        keys = ", ".join(repr(k) for k in list(obj)[:5])
        raise _sentence(
            where,
            f"holds {stray[0]!r} = a {type(stray[1]).__name__}, not a tensor (top-level keys: "
            f"{keys}); save `model.state_dict()` itself",
        )
    if not all(isinstance(k, str) for k in state):
        raise _sentence(where, "has state_dict keys that are not layer names (strings)")
    metadata = getattr(state, "_metadata", None)
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
            if isinstance(metadata, dict):
                metadata = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in metadata.items()}
    return with_metadata(state, metadata)


def with_metadata(state: dict, metadata) -> OrderedDict:
    """`state` carrying torch's per-module version record (`_metadata`), which some modules' loaders read
    (MNASNet refuses weights without it; batch norms of old files lack num_batches_tracked by it)."""
    out = OrderedDict(state)
    if isinstance(metadata, dict):
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def read_state_dict(data: bytes, where: str, filename: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a weights file (torch.save or safetensors), by layer name; BadModelFile otherwise."""
    if not data:
        raise _sentence(where, "is empty (0 bytes); choose the weights file itself")
    kind = sniff(data, filename)
    if kind in _OTHER_FORMATS:
        raise _sentence(where, f"this is {_OTHER_FORMATS[kind]}")
    # A safetensors file whose header length is broken is not recognised as safetensors by sniff; its JSON
    # header's opening brace still gives it away, and the header check then says what is wrong.
    if kind == "safetensors" or (kind == "unknown" and data[8:9] == b"{"):
        return unwrap(_read_safetensors(data, where), where)
    if kind == "unknown":
        raise _sentence(
            where,
            "is not a PyTorch weights file or safetensors (truncated or another format); "
            "save it again with torch.save(model.state_dict(), ...) or safetensors",
        )
    return unwrap(_read_torch(data, where), where)
