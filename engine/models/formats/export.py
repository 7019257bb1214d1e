"""torch.export programs (.pt2, `torch.export.save`).

`torch.export.unflatten` rebuilds the program's module hierarchy (InterpreterModules), so forward hooks on its
submodules fire and gradients flow to the input: Grad-CAM and the feature views work as on the original model.

Nothing is unpickled: the archive is checked before `torch.export.load` so that no entry reaches its pickle
paths (tensor subclasses, custom or opaque objects, legacy weights, sample inputs that weights_only cannot
read, AOTInductor code).
"""

from __future__ import annotations

import io
import json
import zipfile

import torch
from torch import nn

from engine.models.classifier import Classifier
from engine.models.formats.common import BadModelFile, check_meta, sniff, wrap

_DYNAMIC_BATCH = "torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))"


def check_archive(data: bytes, where: str) -> None:
    """Refuse every .pt2 entry that torch.export.load would unpickle."""
    from torch.export.pt2_archive import constants as pc

    archive = zipfile.ZipFile(io.BytesIO(data))
    for name in archive.namelist():
        if pc.AOTINDUCTOR_DIR in name:
            raise BadModelFile(
                f"{where} holds AOTInductor compiled code ({name}); save the exported program "
                "itself with torch.export.save"
            )
        weights_or_constants = pc.WEIGHTS_DIR in name or pc.CONSTANTS_DIR in name
        if weights_or_constants and name.endswith(".pt"):
            raise BadModelFile(
                f"{where} stores its weights in the legacy pickled format ({name}); "
                "re-save it with torch.export.save from a current torch"
            )
        if weights_or_constants and name.endswith(".json"):
            try:
                config = json.loads(archive.read(name)).get("config", {})
                entries = list(config.items())
            except (ValueError, AttributeError) as err:
                raise BadModelFile(f"{where}: its entry {name} is not valid JSON; save the program again") from err
            for fqn, entry in entries:
                if not isinstance(entry, dict):
                    raise BadModelFile(f"{where}: its entry {name} is malformed; save the program again")
                if entry.get("use_pickle"):
                    raise BadModelFile(
                        f"{where}: {fqn} is stored pickled (a tensor subclass), and pickles are never "
                        "loaded here; export the model with plain tensors"
                    )
                path = str(entry.get("path_name", ""))
                if pc.CONSTANTS_DIR in name and not path.startswith(pc.TENSOR_CONSTANT_FILENAME_PREFIX):
                    raise BadModelFile(
                        f"{where}: constant {fqn} is a pickled Python or TorchScript object, and "
                        "pickles are never loaded here; export the model with tensor constants only"
                    )
        if pc.SAMPLE_INPUTS_DIR in name and not name.endswith("/"):
            # torch.export.load falls back to weights_only=False when weights_only=True fails: make sure it cannot.
            try:
                torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001
                raise BadModelFile(
                    f"{where}: its sample inputs ({name}) are not plain tensors, and pickles are "
                    "never loaded here; save the program without custom sample inputs"
                ) from err


def _program(data: bytes, where: str):
    kind = sniff(data, "")
    if kind != "export":
        what = {"torchscript": "a TorchScript archive", "state_dict": "a torch.save file (a state_dict)"}.get(kind)
        advice = f" but {what}; choose that format instead" if what else "; save it with torch.export.save"
        raise BadModelFile(f"{where} is not a torch.export program{advice}")
    check_archive(data, where)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged archive
        raise BadModelFile(
            f"{where} is a damaged or unsupported torch.export program; save it again with "
            "torch.export.save from this torch version"
        ) from err
    inputs = program.graph_signature.user_inputs
    if len(inputs) != 1:
        raise BadModelFile(
            f"{where}: the program takes {len(inputs)} inputs; a classifier takes one image batch, "
            "export it with a single input"
        )
    return program


def input_shape(program) -> tuple | None:
    """The program's input shape, None for each dynamic dimension."""
    name = program.graph_signature.user_inputs[0]
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == name:
            val = node.meta.get("val")
            if val is not None and hasattr(val, "shape"):
                return tuple(d if isinstance(d, int) else None for d in val.shape)
    return None


def describe(data: bytes, *, where: str) -> dict:
    """{'input_size': [C, H, W]} when the program's image shape is static."""
    shape = input_shape(_program(data, where))
    if shape is not None and len(shape) == 4 and None not in shape[1:]:
        return {"input_size": list(shape[1:])}
    return {}


def _check_batch(net: nn.Module, input_size, where: str) -> None:
    """A program exported at batch 1 without dynamic_shapes may bake that batch into its graph."""
    x = torch.rand(2, *input_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            both = net(x)
            singles = torch.cat([net(x[:1]), net(x[1:])])
        ok = both.shape == singles.shape and torch.allclose(both, singles, rtol=1e-4, atol=1e-5)
    except Exception:  # noqa: BLE001
        ok = False
    if not ok:
        raise BadModelFile(
            f"{where}: the program only runs at the batch size it was exported with; re-export it "
            f"with a dynamic batch: {_DYNAMIC_BATCH}"
        )


def load(data: bytes, fields: dict, *, name: str, where: str) -> Classifier:
    """A .pt2 program as a Classifier with its module hierarchy (and so a layer catalogue)."""
    program = _program(data, where)
    shape = input_shape(program)
    fields = dict(fields)
    if shape is not None and len(shape) == 4:
        static = tuple(shape[1:])
        given = fields.get("input_size")
        if given is None and None not in static:
            fields["input_size"] = static
        elif given is not None and any(s is not None and s != i for s, i in zip(static, given)):
            raise BadModelFile(
                f"{where}: input_size {list(given)} does not match the program's input "
                f"{[s if s is not None else 'any' for s in static]}; fix the sidecar or the form"
            )
    elif shape is not None:
        raise BadModelFile(
            f"{where}: the program's input has {len(shape)} dimensions; a classifier takes an N×C×H×W image batch"
        )
    try:
        net = torch.export.unflatten(program)
    except Exception as err:  # noqa: BLE001
        raise BadModelFile(
            f"{where}: the program's module hierarchy cannot be rebuilt; export it again "
            "with torch.export.export (strict=False)"
        ) from err
    # Shapes are fitted by Classifier.fit_input; the batch dimension is probed below.
    net.check_input_constraints = False
    net.eval()
    if fields.get("input_size") is not None:
        _check_batch(net, check_meta(fields, where=f"{where}: metadata")["input_size"], where)
    return wrap(net, fields, name=name, where=where, kind="torch.export")
