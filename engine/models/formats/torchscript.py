"""TorchScript archives (torch.jit.save: .pt, .ts, ...), read with `torch.jit.load` and run by their own forward.

ScriptModules refuse Python forward hooks, so the archive's layers cannot be watched directly. Where torch's
ONNX exporter can write the loaded module out (most traced and plain scripted CNNs), the ONNX graph is
converted back into PyTorch modules (see formats.onnx) and used instead, once its outputs and input gradients
match the archive's own on a probe batch; its layers carry the source modules' names ('features/1/Relu').
Otherwise the archive runs as it is: pixel-space attacks work (gradients flow through a ScriptModule), and the
model has no layer catalogue, with `LAYERS_UNAVAILABLE` saying how to get one.

Nothing is unpickled by Python: TorchScript's own loader reads the archive (its restricted unpickler builds
only TorchScript values and runs only TorchScript code).
"""

from __future__ import annotations

import io
import threading
import warnings

import torch
from torch import nn

from engine.models.classifier import Classifier
from engine.models.formats.common import BadModelFile, check_meta, sniff, wrap

LAYERS_UNAVAILABLE = (
    "a TorchScript model hides its layers, and the layer views (Grad-CAM, activation attack, feature plots) need "
    "hookable layers: export it with torch.export (`torch.export.save(torch.export.export(model, (x,)), "
    "'model.pt2')`) or ONNX instead"
)

# The ONNX stand-in must reproduce the archive: float rounding only.
_RTOL, _ATOL = 1e-4, 1e-5
# torch's TorchScript-based ONNX exporter keeps its state in module globals: one export at a time (app sessions).
_EXPORT_LOCK = threading.Lock()


def _script(data: bytes, where: str):
    kind = sniff(data, "")
    if kind != "torchscript":
        what = {
            "export": "a torch.export program (.pt2)",
            "state_dict": "a torch.save file (a state_dict)",
            "onnx": "an ONNX model",
            "safetensors": "a safetensors weights file",
        }.get(kind)
        advice = f" but {what}; choose that format instead" if what else "; save it with torch.jit.save"
        raise BadModelFile(f"{where} is not a TorchScript archive{advice}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
            return torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged archive
        raise BadModelFile(
            f"{where} is a damaged or unsupported TorchScript archive; save it again with "
            "torch.jit.save from this torch version"
        ) from err


def _grads(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = net(x)
    weights = torch.linspace(-1, 1, out.shape[-1])
    return out.detach(), torch.autograd.grad((out * weights).sum(), x)[0]


def hookable(script, input_size) -> nn.Module | None:
    """The archive as PyTorch modules that take hooks (through ONNX), or None where that does not reproduce it."""
    from engine.models.formats import onnx as onnx_format

    x = torch.zeros(1, *input_size)
    buf = io.BytesIO()
    try:
        with _EXPORT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                script,
                (x,),
                buf,
                dynamo=False,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
            )
        net = onnx_format.convert(onnx_format.read(buf.getvalue(), "the TorchScript model"), "the TorchScript model")
        probe = torch.rand(2, *input_size, generator=torch.Generator().manual_seed(0))
        ours, theirs = _grads(net, probe), _grads(script, probe)
    except Exception:  # noqa: BLE001 - an op the exporter or the converter lacks: run the archive as it is
        return None
    same = all(
        a.shape == b.shape and torch.allclose(a, b, rtol=_RTOL, atol=_ATOL * float(b.abs().max()) + 1e-7)
        for a, b in zip(ours, theirs)
    )
    return net if same else None


def from_script(script, fields: dict, *, name: str, where: str) -> Classifier:
    """A loaded ScriptModule as a Classifier (hookable through ONNX where possible, else without a catalogue)."""
    script.eval()
    if fields.get("input_size") is not None:
        size = check_meta(fields, where=f"{where}: metadata")["input_size"]
        net = hookable(script, size)
        if net is not None:
            from engine.models.formats.onnx import wrap_graph

            return wrap_graph(net, fields, name=name, where=where, kind="TorchScript")
    if fields.get("block_names") or fields.get("cam_layer"):
        raise BadModelFile(f"{where}: block_names/cam_layer are given, but {LAYERS_UNAVAILABLE}")
    return wrap(script, fields, name=name, where=where, kind="TorchScript", layers_unavailable=LAYERS_UNAVAILABLE)


def load(data: bytes, fields: dict, *, name: str, where: str) -> Classifier:
    """A TorchScript archive as a Classifier."""
    return from_script(_script(data, where), fields, name=name, where=where)
