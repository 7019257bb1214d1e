"""A Hugging Face image-classification folder (config.json, model.safetensors or pytorch_model.bin,
preprocessor_config.json), or the bytes of a .zip of one, as a Classifier.

Loading is strictly offline and runs only code that ships with transformers: a folder whose config names its
own Python code (`auto_map`) is refused, and `from_pretrained` gets `local_files_only=True` and
`trust_remote_code=False`. Input size, mean and std come from preprocessor_config.json (its rescale and
normalise switches folded into the [0, 1] pixels the engine works in), class names from config.id2label.
The layer catalogue is the encoder's stages where they output N×C×H×W maps (convolutional models); the
layers of transformer models pass token sequences, and such a model has no catalogue.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import torch
from torch import nn

from engine.models.classifier import Classifier
from engine.models.formats.common import BadModelFile, probe_calls, wrap_catalogued
from engine.models.formats.weights import check_safetensors, read_state_dict

_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_JSON_LIMIT = 10_000_000  # config and preprocessor files are kilobytes
# An uploaded zip: no more entries, and no more bytes once unpacked, than a large classifier needs.
MAX_ENTRIES = 512
MAX_UNZIPPED = 8 * 1024**3
_DEFAULT_LABEL = re.compile(r"^LABEL_(\d+)$")
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


class LogitsOnly(nn.Module):
    """A transformers image classifier taking a pixel batch and returning its logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits


# ---------------------------------------------------------------- the folder and its JSON files


def _json(path: Path, where: str, required: bool = True) -> dict | None:
    if not path.is_file():
        if required:
            raise BadModelFile(
                f"{where}: {path.name} is missing; a Hugging Face model folder holds config.json "
                "and the weights (model.safetensors or pytorch_model.bin) saved by save_pretrained"
            )
        return None
    if path.stat().st_size > _JSON_LIMIT:
        raise BadModelFile(f"{where}: {path.name} is {path.stat().st_size:,} bytes, too large for a configuration file")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModelFile(
            f"{where}: {path.name} is not valid JSON; save the model again with save_pretrained"
        ) from err
    if not isinstance(value, dict):
        raise BadModelFile(f"{where}: {path.name} must hold a JSON object")
    return value


def _check_config(config: dict, where: str) -> str:
    """The model type of a config transformers itself can build as an image classifier; BadModelFile else."""
    if config.get("auto_map") or config.get("trust_remote_code"):
        raise BadModelFile(
            f"{where}: config.json names its own Python code (auto_map), which is never run here; "
            "only architectures built into transformers load"
        )
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
        raise BadModelFile(
            f"{where}: config.json's model_type {model_type!r} is not one transformers knows; "
            "models needing their own code are not loaded"
        )
    if model_type not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        raise BadModelFile(
            f"{where}: a {model_type} model is not an image classifier transformers can load "
            "(AutoModelForImageClassification); save an image-classification model"
        )
    return model_type


def _check_weights(folder: Path, where: str) -> None:
    """Refuse a folder without weights, and read a single weights file as this app reads weights (a pickle
    beyond tensors, a corrupt safetensors header) before transformers opens it."""
    present = [n for n in (*_WEIGHTS, *_INDEXES) if (folder / n).is_file()]
    if not present:
        raise BadModelFile(
            f"{where}: no weights in the folder (model.safetensors or pytorch_model.bin); "
            "save the model with save_pretrained"
        )
    if present[0] == "model.safetensors":
        path = folder / present[0]
        with path.open("rb") as handle:
            head = handle.read(8)
            declared = int.from_bytes(head, "little") if len(head) == 8 else 0
            head += handle.read(min(declared, 100_000_000))
        check_safetensors(head, f"{where}: {path.name}", total=path.stat().st_size)
    elif present[0] == "pytorch_model.bin":
        read_state_dict((folder / present[0]).read_bytes(), f"{where}: pytorch_model.bin", "pytorch_model.bin")


def _labels(config: dict) -> list[str] | None:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        ordered = sorted(((int(k), str(v)) for k, v in id2label.items()))
    except (TypeError, ValueError):
        return None
    if [i for i, _ in ordered] != list(range(len(ordered))):
        return None
    return [f"class {m.group(1)}" if (m := _DEFAULT_LABEL.match(v)) else v for _, v in ordered]


def _side(value) -> tuple[int | None, bool]:
    """(the size in pixels, whether it is the shorter side) of a processor's size or crop_size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, False
    if isinstance(value, dict):
        if isinstance(value.get("shortest_edge"), int):
            return value["shortest_edge"], True
        if isinstance(value.get("height"), int):
            return value["height"], False
    return None, False


def preprocessing(processor: dict | None, config: dict) -> dict:
    """input_size, resize_size, mean and std (for [0, 1] pixels) from a preprocessor_config.json."""
    out: dict = {}
    channels = config.get("num_channels") if isinstance(config.get("num_channels"), int) else 3
    processor = processor or {}
    size, shortest = _side(processor.get("size"))
    crop, _ = _side(processor.get("crop_size"))
    crop_pct = processor.get("crop_pct")
    if processor.get("do_center_crop", crop is not None) and crop:
        height, resize = crop, size or crop
    elif size and shortest and isinstance(crop_pct, (int, float)) and 0 < crop_pct <= 1 and size < 384:
        # ConvNeXt's processor: shorter side to size / crop_pct, then a centre crop of size.
        height, resize = size, math.floor(size / crop_pct)
    elif size:
        height, resize = size, size
    else:
        image_size = config.get("image_size")
        height = (
            image_size
            if isinstance(image_size, int)
            else (
                image_size[0]
                if isinstance(image_size, list) and image_size and isinstance(image_size[0], int)
                else None
            )
        )
        resize = height
    if height:
        out["input_size"] = [channels, int(height), int(height)]
        out["resize_size"] = max(int(height), int(resize or height))
    # The processor maps 0–255 pixel values p to ((p · rescale) − mean) / std; the engine's pixels are p / 255.
    factor = processor.get("rescale_factor", 1 / 255) if processor.get("do_rescale", True) else 1.0
    scale = 255.0 * float(factor)
    mean, std = processor.get("image_mean"), processor.get("image_std")
    if not processor.get("do_normalize", True):
        mean, std = [0.0] * channels, [1.0] * channels
    if isinstance(mean, (int, float)):
        mean = [mean] * channels
    if isinstance(std, (int, float)):
        std = [std] * channels
    if isinstance(mean, list) and isinstance(std, list) and scale > 0:
        out["mean"] = [float(m) / scale for m in mean]
        out["std"] = [float(s) / scale for s in std]
    return out


# ---------------------------------------------------------------- zip uploads


def _unsafe(name: str) -> str | None:
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a path that leaves the folder (..)"
    return None


def _entries(data: bytes, where: str) -> tuple[zipfile.ZipFile, str, list[zipfile.ZipInfo]]:
    """(the archive, the folder inside it holding config.json, that folder's files), after the safety checks."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise BadModelFile(f"{where} is not a readable zip archive; zip the model folder again") from err
    if len(infos) > MAX_ENTRIES:
        raise BadModelFile(f"{where}: the zip holds {len(infos):,} entries; a model folder holds a handful")
    for info in infos:
        why = _unsafe(info.filename)
        if why:
            raise BadModelFile(f"{where}: the zip holds {why} ({info.filename[:80]}); refused, nothing was unpacked")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise BadModelFile(
                f"{where}: the zip holds a symbolic link ({info.filename[:80]}); refused, nothing was unpacked"
            )
    if sum(info.file_size for info in infos) > MAX_UNZIPPED:
        raise BadModelFile(f"{where}: the zip unpacks to more than {MAX_UNZIPPED // 1024**3} GiB; refused")
    configs = sorted(
        (
            i.filename
            for i in infos
            if PurePosixPath(i.filename).name == "config.json" and not i.filename.startswith("__MACOSX/")
        ),
        key=lambda n: (n.count("/"), n),
    )
    if not configs:
        raise BadModelFile(
            f"{where}: the zip holds no config.json; zip a Hugging Face model folder "
            "(config.json, model.safetensors, preprocessor_config.json)"
        )
    if len(configs) > 1 and configs[0].count("/") == configs[1].count("/"):
        raise BadModelFile(
            f"{where}: the zip holds more than one model folder ({configs[0]}, {configs[1]}); zip one folder"
        )
    prefix = configs[0][: -len("config.json")]
    files = [
        i for i in infos if i.filename.startswith(prefix) and not i.is_dir() and "/" not in i.filename[len(prefix) :]
    ]
    return archive, prefix, files


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limit: int) -> bytes:
    try:
        with archive.open(info) as handle:
            data = handle.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as err:
        raise BadModelFile(f"{where}: {info.filename} cannot be unpacked (corrupt or encrypted zip)") from err
    if len(data) > limit:
        raise BadModelFile(f"{where}: {info.filename} unpacks to more bytes than the zip declares; refused")
    return data


@contextlib.contextmanager
def unpacked(data: bytes, where: str):
    """A temporary folder holding the model folder of a zip upload; removed afterwards."""
    archive, prefix, files = _entries(data, where)
    folder = Path(tempfile.mkdtemp(prefix="hf-upload-"))
    try:
        budget = MAX_UNZIPPED
        for info in files:
            content = _read_member(archive, info, where, min(info.file_size, budget))
            budget -= len(content)
            (folder / PurePosixPath(info.filename[len(prefix) :]).name).write_bytes(content)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- loading


@contextlib.contextmanager
def _offline_and_quiet():
    from transformers.utils import logging as hf_logging

    saved_env = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _shape(shape) -> str:
    return "×".join(str(int(d)) for d in shape) or "a scalar"


def _from_pretrained(folder: Path, where: str) -> nn.Module:
    from transformers import AutoModelForImageClassification

    try:
        with _offline_and_quiet():
            model, info = AutoModelForImageClassification.from_pretrained(
                str(folder),
                local_files_only=True,
                trust_remote_code=False,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                dtype=torch.float32,
            )
    except BadModelFile:
        raise
    except Exception as err:  # noqa: BLE001 - transformers raises many types; its text stays in the chain
        raise BadModelFile(
            f"{where}: transformers cannot build the model from config.json and its weights "
            f"({type(err).__name__}); the folder may be incomplete or saved by an incompatible "
            "transformers version"
        ) from err
    order = {k: i for i, k in enumerate(model.state_dict())}
    mismatched = sorted(info.get("mismatched_keys") or [], key=lambda m: (order.get(m[0], len(order)), m[0]))
    if mismatched:
        key, theirs, ours = mismatched[0]
        raise BadModelFile(
            f"{where}: {key} is {_shape(theirs)} in the weights but {_shape(ours)} in the model "
            "config.json describes; the weights belong to another configuration"
        )
    missing = sorted(info.get("missing_keys") or [], key=lambda k: (order.get(k, len(order)), k))
    if missing:
        raise BadModelFile(
            f"{where}: the weights lack {missing[0]}"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, which config.json's "
            "model has; the weights belong to another model or are a backbone without its head"
        )
    return model.eval()


def _called_once_outputs(net: nn.Module, input_size) -> tuple[dict[str, object], list[str]]:
    calls, order = probe_calls(net, input_size)
    return {n: c[-1][1] for n, c in calls.items() if len(c) == 1}, order


def catalogue(net: nn.Module, input_size) -> tuple[list[str], str | None]:
    """(the stages of the encoder that output N×C×H×W maps, why there are none).

    Stages are the children of the outermost module list whose every child returns a 4-D tensor whose
    second dimension is the width of the last convolution inside it (so channels-last maps do not pass)."""
    try:
        outputs, order = _called_once_outputs(net, input_size)
    except Exception:  # noqa: BLE001 - `wrap` runs the same forward and says what is wrong
        return [], None
    modules = dict(net.named_modules())

    def channels_first(name: str) -> bool:
        out = outputs.get(name)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[-1] * out.shape[-2] <= 1:
            return False
        convs = [
            m
            for n, m in modules.items()
            if (n == name or n.startswith(name + ".")) and isinstance(m, nn.Conv2d) and n in outputs
        ]
        return bool(convs) and convs[-1].out_channels == out.shape[1]

    lists = [n for n, m in modules.items() if n and isinstance(m, (nn.ModuleList, nn.Sequential))]
    for name in sorted(lists, key=lambda n: n.count(".")):
        kids = [f"{name}.{c}" for c, _ in modules[name].named_children()]
        called = sorted((k for k in kids if k in outputs), key=order.index)
        if len(called) >= 2 and len(called) == len(kids) and all(channels_first(k) for k in called):
            return called, None
    tokens = any(isinstance(o, torch.Tensor) and o.dim() == 3 for o in outputs.values())
    if tokens:
        return [], (
            "its layers pass token sequences (N×tokens×channels), not N×C×H×W maps, so there is no layer "
            "for Grad-CAM or the feature views"
        )
    return [], (
        "no stage with N×C×H×W outputs was found in it; give block_names in a sidecar to name the layers "
        "for Grad-CAM and the feature views"
    )


def _read_folder(folder: Path, where: str) -> tuple[dict, dict | None]:
    if not folder.is_dir():
        raise BadModelFile(f"{where} is not a folder; give the Hugging Face model folder (or a zip of it)")
    config = _json(folder / "config.json", where)
    _check_config(config, where)
    return config, _json(folder / "preprocessor_config.json", where, required=False)


def _defaults(config: dict, processor: dict | None, fields: dict, where: str) -> dict:
    out = {**preprocessing(processor, config), **fields}
    if "resize_size" in out and "input_size" in fields and "resize_size" not in fields:
        out["resize_size"] = max(int(fields["input_size"][1]), out["resize_size"])
    if "class_names" not in fields and _labels(config):
        out["class_names"] = _labels(config)
    missing = [k for k in ("input_size", "mean", "std") if k not in out]
    if missing:
        raise BadModelFile(
            f"{where}: the folder does not say its {', '.join(missing)} "
            f"(preprocessor_config.json {'is missing' if processor is None else 'lacks them'}); "
            "give them in a sidecar JSON or the form"
        )
    return out


def _load_folder(folder: Path, fields: dict, *, name: str, where: str) -> Classifier:
    config, processor = _read_folder(folder, where)
    _check_weights(folder, where)
    fields = _defaults(config, processor, fields, where)
    net = LogitsOnly(_from_pretrained(folder, where))
    return wrap_catalogued(net, fields, catalogue, name=name, where=where, kind="Hugging Face")


def _is_bytes(source) -> bool:
    return isinstance(source, (bytes, bytearray, memoryview))


def _folder_of(source) -> Path:
    text = str(source)
    path = Path(text)
    if text.startswith("hf:") and not path.exists():
        path = Path(text[len("hf:") :])
    return path


def load(source: str | Path | bytes, fields: dict, *, name: str, where: str) -> Classifier:
    """A Hugging Face image classifier from a folder path (or 'hf:PATH') or the bytes of a zip of the folder."""
    if _is_bytes(source):
        with unpacked(bytes(source), where) as folder:
            return _load_folder(folder, fields, name=name, where=where)
    return _load_folder(_folder_of(source), fields, name=name, where=where)


def describe(source) -> dict:
    """What the folder (or zip) says about the model, for prefilling a form; no weights are read."""
    if _is_bytes(source):
        where = "the uploaded zip"
        archive, prefix, files = _entries(bytes(source), where)
        texts = {PurePosixPath(i.filename).name: i for i in files}
        config = _json_bytes(_read_member(archive, texts["config.json"], where, _JSON_LIMIT), "config.json", where)
        processor = (
            _json_bytes(
                _read_member(archive, texts["preprocessor_config.json"], where, _JSON_LIMIT),
                "preprocessor_config.json",
                where,
            )
            if "preprocessor_config.json" in texts
            else None
        )
        _check_config(config, where)
    else:
        folder = _folder_of(source)
        config, processor = _read_folder(folder, str(folder))
    out = preprocessing(processor, config)
    labels = _labels(config)
    if labels:
        out["class_names"] = labels
    archs = config.get("architectures")
    out["arch"] = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else config["model_type"]
    return out


def _json_bytes(data: bytes, filename: str, where: str) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModelFile(f"{where}: {filename} is not valid JSON; save the model again with save_pretrained") from err
    if not isinstance(value, dict):
        raise BadModelFile(f"{where}: {filename} must hold a JSON object")
    return value
