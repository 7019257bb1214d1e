"""A user's own model as a `Classifier`: TorchScript archives, `torch.export` programs and Python entry points.

    model = load_user_model("net.pt2")                      # + net.json beside it (the sidecar)
    model = load_user_model(data, kind="torchscript", meta={"input_size": [3, 32, 32], "mean": [...], ...})
    model = load_user_model("mypkg.models:make", meta=...)  # the operator's own code: CLI / Python API only

(A torchvision architecture with a user's state_dict is `torchvision_zoo.from_upload`.)

Each comes back with a layer catalogue so Grad-CAM, the activation attack and the feature plots work:

* torch.export (.pt2): `torch.export.unflatten` rebuilds the module hierarchy (InterpreterModules);
  forward hooks on its submodules fire and gradients flow to the input. A program exported with a
  fixed batch size that its graph bakes in (a `view(1, -1)`) is refused with how to re-export it.
* TorchScript: ScriptModules refuse Python forward hooks. `TorchScriptNet` stands in for the archive's
  module tree with Python modules of the same names; a container's TorchScript graph is run node by node
  from Python (each ATen op through `torch.ops`, each submodule call through the stand-in, so its
  hooks fire), and leaf modules (convolutions, batch norms, ...) run as the compiled TorchScript they
  are. The result is checked against the archive's own forward at load; where a graph uses something
  this cannot run (calls of TorchScript functions, fork/wait, ...), the model still loads, runs as
  one opaque ScriptModule, and has no catalogue (`Classifier.layers_unavailable` says why).
* entry point "package.module:factory": the factory's nn.Module (or a Classifier, passed through).

Nothing is unpickled: TorchScript archives are read by TorchScript's own loader (its restricted C++
unpickler builds only TorchScript values and runs only TorchScript code); a .pt2 archive is checked
before `torch.export.load` so that no entry reaches its pickle paths (tensor subclasses, custom or
opaque objects, legacy weights, sample inputs that weights_only cannot read, AOTInductor code).
"""
from __future__ import annotations

import importlib
import inspect
import io
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from engine.models.classifier import Classifier
from engine.models.registry import ModelUnavailable
from engine.domains import IMAGENET_NAME

KINDS = ("torchscript", "export", "entrypoint")
ENTRY_POINT = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
# name: (type description, required)
SIDECAR_FIELDS: dict[str, str] = {
    "input_size": "[C, H, W] the network's input (required, except for a .pt2 whose input shape is static)",
    "mean": "C floats, per-channel mean subtracted from [0, 1] pixels (required)",
    "std": "C positive floats, per-channel divisor (required)",
    "resize_size": "int ≥ H: photos' shorter side is resized to this before the centre crop (default H)",
    "class_names": "list of names, or a number of classes (names 'class 0', ...); default: the output width",
    "domain": "free-form domain name (default 'imagenet' for 1000 classes at 3×224×224, else 'custom')",
    "block_names": "dotted module names making up the layer catalogue (default: found automatically)",
    "cam_layer": "dotted module name for Grad-CAM (default: the last catalogue block)",
    "name": "display name (default: the file's stem or the entry point)",
}
_TS_SUFFIXES = (".ts", ".torchscript", ".jit", ".ptc", ".pt", ".pth")


# ---------------------------------------------------------------- sidecar / metadata

def read_sidecar(path: str | Path) -> dict:
    """The JSON object in `path`, its fields checked (see SIDECAR_FIELDS); ModelUnavailable if it is not usable."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelUnavailable(f"sidecar {path} does not exist") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelUnavailable(f"sidecar {path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ModelUnavailable(f"sidecar {path} must hold a JSON object, got {type(meta).__name__}")
    return check_meta(meta, where=f"sidecar {path}")


def check_meta(meta: dict, where: str = "model metadata") -> dict:
    """Types and lengths of the metadata fields, independent of the model (its outputs are checked at load)."""
    unknown = sorted(set(meta) - set(SIDECAR_FIELDS))
    if unknown:
        raise ModelUnavailable(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(SIDECAR_FIELDS)}")
    out = dict(meta)

    def ints(key, n=None):
        v = meta[key]
        if not isinstance(v, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v):
            raise ModelUnavailable(f"{where}: {key!r} must be a list of positive integers, got {v!r}")
        if n is not None and len(v) != n:
            raise ModelUnavailable(f"{where}: {key!r} must have {n} entries (C, H, W), got {len(v)}")
        return tuple(v)

    def floats(key):
        v = meta[key]
        if not isinstance(v, (list, tuple)) or not v or not all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in v):
            raise ModelUnavailable(f"{where}: {key!r} must be a non-empty list of numbers, got {v!r}")
        return [float(i) for i in v]

    if "input_size" in meta:
        out["input_size"] = ints("input_size", 3)
    for key in ("mean", "std"):
        if key in meta:
            out[key] = floats(key)
    if "std" in out and any(s <= 0 for s in out["std"]):
        raise ModelUnavailable(f"{where}: 'std' entries must be positive, got {out['std']}")
    if "input_size" in out:
        channels = out["input_size"][0]
        for key in ("mean", "std"):
            if key in out and len(out[key]) != channels:
                raise ModelUnavailable(f"{where}: {key!r} has {len(out[key])} entries for {channels} input channel(s)")
    if "resize_size" in meta:
        v = meta["resize_size"]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ModelUnavailable(f"{where}: 'resize_size' must be a positive integer, got {v!r}")
        if "input_size" in out and v < out["input_size"][1]:
            raise ModelUnavailable(f"{where}: 'resize_size' {v} is smaller than the input height {out['input_size'][1]}")
    if "class_names" in meta:
        v = meta["class_names"]
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ModelUnavailable(f"{where}: 'class_names' as a count must be ≥ 1, got {v}")
            out["class_names"] = [f"class {i}" for i in range(v)]
        elif isinstance(v, (list, tuple)) and v and all(isinstance(n, str) for n in v):
            out["class_names"] = list(v)
        else:
            raise ModelUnavailable(f"{where}: 'class_names' must be a list of strings or a number of classes, got {v!r}")
    for key in ("domain", "cam_layer", "name"):
        if key in meta and (not isinstance(meta[key], str) or not meta[key]):
            raise ModelUnavailable(f"{where}: {key!r} must be a non-empty string, got {meta[key]!r}")
    if "block_names" in meta:
        v = meta["block_names"]
        if not isinstance(v, (list, tuple)) or not v or not all(isinstance(n, str) and n for n in v):
            raise ModelUnavailable(f"{where}: 'block_names' must be a non-empty list of dotted module names, got {v!r}")
        out["block_names"] = list(v)
    return out


# ---------------------------------------------------------------- TorchScript

_UNSUPPORTED = {"prim::CallFunction", "prim::PythonOp", "prim::fork", "aten::wait", "prim::Enter", "prim::Exit",
                "prim::CreateObject", "prim::SetAttr", "prim::Closure"}


def _graph_kinds(block, kinds: set) -> set:
    for node in block.nodes():
        kinds.add(node.kind())
        for sub in node.blocks():
            _graph_kinds(sub, kinds)
    return kinds


def _method_graph(script, name: str):
    return script._c._get_method(name).graph


def _self_methods(script, name: str, seen: set) -> None:
    """Names of the methods on `self` that method `name` calls, transitively."""
    if name in seen:
        return
    seen.add(name)
    self_value = next(iter(_method_graph(script, name).inputs()))
    for node in _method_graph(script, name).findAllNodes("prim::CallMethod"):
        if next(iter(node.inputs())) is self_value or next(iter(node.inputs())).unique() == self_value.unique():
            _self_methods(script, node.s("name"), seen)


def _why_not_interpreted(script) -> str | None:
    """None for a container whose forward (and the methods on self it calls) has only nodes this runs; else why."""
    if not list(script.named_children()):
        return "it has no submodules"  # a leaf: run it compiled
    try:
        methods: set = set()
        _self_methods(script, "forward", methods)
        kinds: set = set()
        for name in methods:
            _graph_kinds(_method_graph(script, name), kinds)
    except Exception as err:  # noqa: BLE001  (a module without a usable forward graph: keep it compiled)
        return f"its forward graph cannot be read ({type(err).__name__})"
    bad = sorted(kinds & _UNSUPPORTED)
    return f"its forward uses {', '.join(bad)} (e.g. a call of a scripted function), which cannot be run node by node" if bad else None


def _interpretable(script) -> bool:
    return _why_not_interpreted(script) is None


def _op(kind: str, schema: str):
    """The torch.ops callable for a graph node and which of its arguments are keyword-only."""
    ns, name = kind.split("::", 1)
    packet = getattr(getattr(torch.ops, ns), name)
    if schema and schema != "(no schema)":
        parsed = torch._C.parse_schema(schema)
        fn = getattr(packet, parsed.overload_name or "default")
        return fn, [(a.name, a.kwarg_only) for a in parsed.arguments]
    return packet, None


class _ScriptCall(nn.Module):
    """Python stand-in for one module of a TorchScript archive, named like it, so forward hooks work.

    A container runs its TorchScript graph node by node (calls of submodules go through their
    stand-ins' __call__); a leaf, or a container this cannot run, calls the compiled module."""

    def __init__(self, script):
        super().__init__()
        object.__setattr__(self, "_script", script)  # registered once, by the root (parameters, .to())
        self._interpret = _interpretable(script)
        if self._interpret:
            for child_name, child in script.named_children():
                self.add_module(child_name, _ScriptCall(child))
        self._plans: dict[str, Any] = {}

    def extra_repr(self) -> str:
        return f"{getattr(self._script, 'original_name', type(self._script).__name__)}, " + (
            "interpreted" if self._interpret else "compiled")

    def forward(self, *args, _method: str = "forward"):
        if not self._interpret:
            return getattr(self._script, _method)(*args)
        return self._call_method(_method, args)

    def _call_method(self, name: str, args):
        graph = _method_graph(self._script, name)
        inputs = list(graph.inputs())
        env = {inputs[0].unique(): self}
        for value, arg in zip(inputs[1:], args):
            env[value.unique()] = arg
        self._run(graph.nodes(), env)
        outs = [env[v.unique()] for v in graph.outputs()]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _attr(self, obj, name: str):
        if isinstance(obj, _ScriptCall):
            if name in obj._modules:
                return obj._modules[name]
            return getattr(obj._script, name)
        return getattr(obj, name)

    def _run(self, nodes, env: dict) -> None:
        for node in nodes:
            kind = node.kind()
            ins = [env[v.unique()] for v in node.inputs()]
            outs = list(node.outputs())
            if kind == "prim::Constant":
                result = [node.output().toIValue()] if outs else []
            elif kind == "prim::GetAttr":
                result = [self._attr(ins[0], node.s("name"))]
            elif kind == "prim::CallMethod":
                obj, name = ins[0], node.s("name")
                if obj is self and not (name.startswith("forward") and name != "forward"):
                    value = self._call_method(name, ins[1:])
                elif isinstance(obj, _ScriptCall) and obj is not self and name.startswith("forward"):
                    value = obj(*ins[1:], _method=name)  # through __call__: hooks fire
                elif isinstance(obj, _ScriptCall):
                    value = obj._call_method(name, ins[1:]) if obj._interpret else getattr(obj._script, name)(*ins[1:])
                else:
                    value = getattr(obj, name)(*ins[1:])
                result = [value] if len(outs) == 1 else list(value)
            elif kind in ("prim::ListConstruct", "prim::TupleConstruct"):
                result = [list(ins) if kind == "prim::ListConstruct" else tuple(ins)]
            elif kind == "prim::DictConstruct":
                result = [dict(zip(ins[0::2], ins[1::2]))]
            elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
                result = list(ins[0])
            elif kind == "prim::TupleIndex":
                result = [ins[0][ins[1]]]
            elif kind == "prim::unchecked_cast":
                result = [ins[0]]
            elif kind == "prim::Uninitialized":
                result = [None]
            elif kind in ("aten::__is__", "aten::__isnot__"):
                result = [(ins[0] is ins[1]) == (kind == "aten::__is__")]
            elif kind == "aten::__getitem__" and isinstance(ins[0], (list, tuple, dict)):
                result = [ins[0][ins[1]]]
            elif kind == "aten::len" and isinstance(ins[0], (list, tuple, dict)):
                result = [len(ins[0])]
            elif kind == "aten::append" and isinstance(ins[0], list):
                ins[0].append(ins[1])
                result = [ins[0]]
            elif kind == "prim::RaiseException":
                raise RuntimeError(f"the TorchScript model raised: {ins[0] if ins else ''}")
            elif kind == "prim::If":
                branch = node.blocks()
                block = list(branch)[0 if ins[0] else 1]
                self._run(block.nodes(), env)
                result = [env[v.unique()] for v in block.outputs()]
            elif kind == "prim::Loop":
                block = next(iter(node.blocks()))
                block_in = list(block.inputs())
                trips, cond, carried = ins[0], ins[1], list(ins[2:])
                i = 0
                while cond and i < trips:
                    env[block_in[0].unique()] = i
                    for v, c in zip(block_in[1:], carried):
                        env[v.unique()] = c
                    self._run(block.nodes(), env)
                    block_out = [env[v.unique()] for v in block.outputs()]
                    cond, carried = block_out[0], block_out[1:]
                    i += 1
                result = carried
            else:
                key = str(node.kind()) + "|" + node.schema()
                plan = self._plans.get(key)
                if plan is None:
                    plan = self._plans[key] = _op(kind, node.schema())
                fn, arguments = plan
                if arguments is None:
                    value = fn(*ins)
                else:
                    pos = [v for (_, kw_only), v in zip(arguments, ins) if not kw_only]
                    kw = {name: v for (name, kw_only), v in zip(arguments, ins) if kw_only}
                    value = fn(*pos, **kw)
                result = [value] if len(outs) == 1 else (list(value) if outs else [])
            for value, out in zip(outs, result):
                env[value.unique()] = out


class TorchScriptNet(_ScriptCall):
    """A loaded ScriptModule behind Python modules of the same dotted names (forward hooks work on them).

    `interpret=False` runs the archive as one opaque module (no submodules, no catalogue)."""

    def __init__(self, script, interpret: bool = True):
        script.eval()
        nn.Module.__init__(self)
        object.__setattr__(self, "_script", script)
        self._plans = {}
        self.why_opaque = _why_not_interpreted(script) if interpret else "loaded as one opaque module"
        self._interpret = self.why_opaque is None
        if self._interpret:
            for child_name, child in script.named_children():
                self.add_module(child_name, _ScriptCall(child))
        if "torchscript" in self._modules:
            raise ModelUnavailable("the TorchScript model has a submodule named 'torchscript'; rename it to load it here")
        self.add_module("torchscript", script)


def _read_bytes(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as err:
        raise ModelUnavailable(f"{path}: cannot be read ({err.strerror or err})") from err


def _zip_names(data: bytes) -> list[str] | None:
    try:
        return zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return None


def detect_kind(data: bytes) -> str:
    """'torchscript' or 'export' from an archive's contents; ModelUnavailable for anything else."""
    if not data:
        raise ModelUnavailable("the model file is empty")
    names = _zip_names(data)
    if names is None:
        raise ModelUnavailable("the model file is not a TorchScript or torch.export archive (not a zip archive; "
                               "truncated or another format)")
    if any(n.endswith("/archive_format") for n in names) or any("/models/" in n and n.endswith(".json") for n in names):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        raise ModelUnavailable("the file is a pickled torch.save file (e.g. a plain state_dict), not a TorchScript or "
                               "torch.export archive; load a state_dict with its architecture instead "
                               "(torchvision_zoo.from_upload) — pickles are never loaded")
    raise ModelUnavailable("the zip archive is neither a TorchScript archive nor a torch.export .pt2 program")


def _load_torchscript(data: bytes, where: str):
    kind = detect_kind(data)
    if kind != "torchscript":
        raise ModelUnavailable(f"{where}: this is a torch.export program, not a TorchScript archive (use kind='export')")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            script = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as err:  # noqa: BLE001  (torch raises many types for a corrupt archive)
        raise ModelUnavailable(f"{where}: not a readable TorchScript archive ({type(err).__name__}: {str(err)[:200]})") from err
    return script


# ---------------------------------------------------------------- torch.export

def _check_pt2(data: bytes, where: str) -> None:
    """Refuse every .pt2 entry that torch.export.load would unpickle (see the module docstring)."""
    from torch.export.pt2_archive import constants as pc

    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    for name in names:
        if pc.AOTINDUCTOR_DIR in name:
            raise ModelUnavailable(f"{where}: holds AOTInductor compiled code ({name}); only exported programs load here")
        if (pc.WEIGHTS_DIR in name or pc.CONSTANTS_DIR in name) and name.endswith(".pt"):
            raise ModelUnavailable(f"{where}: uses the legacy pickled weights format ({name}); re-save it with torch.export.save")
        if name.endswith(".json") and (pc.WEIGHTS_DIR in name or pc.CONSTANTS_DIR in name):
            try:
                config = json.loads(archive.read(name)).get("config", {})
            except (ValueError, AttributeError) as err:
                raise ModelUnavailable(f"{where}: {name} is not valid JSON") from err
            for fqn, entry in config.items():
                if entry.get("use_pickle"):
                    raise ModelUnavailable(f"{where}: {fqn} is stored pickled (a tensor subclass); refused, nothing is unpickled")
                path = str(entry.get("path_name", ""))
                if pc.CONSTANTS_DIR in name and not path.startswith(pc.TENSOR_CONSTANT_FILENAME_PREFIX):
                    raise ModelUnavailable(f"{where}: constant {fqn} is a pickled Python/TorchScript object; refused")
        if pc.SAMPLE_INPUTS_DIR in name and not name.endswith("/"):
            # torch.export.load falls back to weights_only=False when weights_only=True fails: make sure it cannot.
            try:
                torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001
                raise ModelUnavailable(f"{where}: its sample inputs {name} are not plain tensors; refused") from err


def _load_export(data: bytes, where: str):
    if detect_kind(data) != "export":
        raise ModelUnavailable(f"{where}: this is a TorchScript archive, not a torch.export program (use kind='torchscript')")
    _check_pt2(data, where)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001
        raise ModelUnavailable(f"{where}: not a readable torch.export program ({type(err).__name__}: {str(err)[:200]})") from err
    if len(program.graph_signature.user_inputs) != 1:
        raise ModelUnavailable(f"{where}: the program takes {len(program.graph_signature.user_inputs)} inputs; "
                               "a classifier takes one image batch")
    shape = None
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == program.graph_signature.user_inputs[0]:
            val = node.meta.get("val")
            shape = tuple(d if isinstance(d, int) else None for d in val.shape) if val is not None else None
    try:
        net = torch.export.unflatten(program)
    except Exception as err:  # noqa: BLE001
        raise ModelUnavailable(f"{where}: the program's module hierarchy cannot be rebuilt ({type(err).__name__}: {err})") from err
    # Shapes are checked by Classifier.fit_input; the batch dimension is probed below.
    net.check_input_constraints = False
    return net, shape


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
        raise ModelUnavailable(
            f"{where}: the program only runs at the batch size it was exported with; re-export it with a dynamic "
            "batch: torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))")


# ---------------------------------------------------------------- entry points

def _load_entry_point(spec: str):
    if not isinstance(spec, str) or not ENTRY_POINT.match(spec):
        raise ModelUnavailable(f"entry point {spec!r} is not of the form 'package.module:factory'")
    module_name, attr = spec.split(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001  (the operator's own code may raise anything)
        raise ModelUnavailable(f"entry point {spec}: module {module_name!r} cannot be imported ({type(err).__name__}: {err})") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelUnavailable(f"entry point {spec}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise ModelUnavailable(f"entry point {spec}: {attr} is a {type(obj).__name__}, not a Python function or class "
                               "returning a torch.nn.Module")
    try:
        inspect.signature(obj).bind()
    except TypeError as err:
        raise ModelUnavailable(f"entry point {spec}: the factory must be callable without arguments ({err})") from err
    except ValueError:
        pass
    try:
        made = obj()
    except Exception as err:  # noqa: BLE001
        raise ModelUnavailable(f"entry point {spec}: the factory raised {type(err).__name__}: {err}") from err
    if not isinstance(made, nn.Module):
        raise ModelUnavailable(f"entry point {spec}: the factory returned a {type(made).__name__}, not a torch.nn.Module")
    return made


# ---------------------------------------------------------------- the catalogue

def auto_blocks(net: nn.Module, input_size: Sequence[int]) -> list[str]:
    """Blocks with 4-D outputs along the main path, in execution order, found with one probe forward.

    Containers whose children form a plain chain (a Sequential: each child eats the previous child's
    output) are opened up; a module whose output goes straight into a following leaf of the same shape
    (a convolution into its batch norm, a batch norm into its ReLU) gives way to that leaf, so the
    catalogue holds post-activation maps; 1×1 outputs (global pools) are not maps; modules called more than once are left out (a hook would see
    only the last call). torchvision's resnet18 gives relu, maxpool, layer1.0, ..., layer4.1.
    """
    calls: dict[str, list] = {}
    order: list[str] = []
    modules = dict(net.named_modules())

    def hook(name):
        def record(_module, args, output):
            if name not in calls:
                order.append(name)
            calls.setdefault(name, []).append((args[0] if args else None, output))
        return record

    # The compiled tree under a TorchScriptNet (.torchscript) holds the parameters but takes no hooks.
    modules = {n: m for n, m in modules.items() if not isinstance(m, torch.jit.ScriptModule)}
    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items() if n]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_size))
    finally:
        for h in handles:
            h.remove()

    def children_called(prefix: str) -> list[str]:
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
        if nxt is not None and is_leaf(nxt) and four_d(nxt) and calls[nxt][0][0] is calls[e][0][1] \
                and calls[nxt][0][1].shape == calls[e][0][1].shape:
            continue
        keep.append(e)
    return keep


# ---------------------------------------------------------------- one entry point

def _guess_kind(source) -> str:
    if isinstance(source, str) and ENTRY_POINT.match(source) and not Path(source).exists():
        return "entrypoint"
    if isinstance(source, str) and ":" not in source and not Path(source).exists() and "/" not in source \
            and "." not in Path(source).name:
        raise ModelUnavailable(f"{source!r} is neither a model file nor an entry point 'package.module:factory'")
    return "file"


def load_user_model(
    source: str | Path | bytes,
    *,
    kind: str | None = None,
    meta: dict | None = None,
    sidecar: str | Path | None = None,
    name: str | None = None,
) -> Classifier:
    """A user's model as a CPU Classifier (see the module docstring); ModelUnavailable with the reason otherwise.

    `kind` is 'torchscript', 'export' or 'entrypoint' (None: from the contents, or an entry-point string);
    metadata comes from `sidecar` (default: <file>.json beside a model file, when there) updated by `meta`."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose from {', '.join(KINDS)}")
    guessed = "entrypoint" if kind == "entrypoint" else _guess_kind(source)
    fields: dict = {}
    where = "uploaded model" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    if sidecar is None and guessed == "file" and not isinstance(source, (bytes, bytearray, memoryview)):
        beside = Path(source).with_suffix(".json")
        sidecar = beside if beside.is_file() and beside != Path(source) else None
    if sidecar is not None:
        fields.update(read_sidecar(sidecar))
    if meta:
        fields.update(check_meta(meta, where=f"{where}: metadata"))
    fields = check_meta(fields, where=f"{where}: metadata")
    default_name = name or fields.get("name") or (
        source if guessed == "entrypoint" else ("uploaded model" if isinstance(source, (bytes, bytearray, memoryview))
                                                else Path(source).stem))

    exported_shape = None
    if guessed == "entrypoint":
        if kind not in (None, "entrypoint"):
            raise ModelUnavailable(f"{source!r} looks like an entry point, not a {kind} file")
        made = _load_entry_point(source)
        if isinstance(made, Classifier):
            return made
        net, what = (TorchScriptNet(made), "torchscript") if isinstance(made, torch.jit.ScriptModule) else (made, "module")
    else:
        data = _read_bytes(source)
        detected = detect_kind(data)
        if kind not in (None, detected):
            raise ModelUnavailable(f"{where}: is a {detected} archive, not {kind}")
        if detected == "torchscript":
            net, what = TorchScriptNet(_load_torchscript(data, where)), "torchscript"
        else:
            net, exported_shape = _load_export(data, where)
            what = "export"
    net.eval()
    return _wrap(net, what, fields, default_name, where, exported_shape)


def _wrap(net: nn.Module, what: str, fields: dict, name: str, where: str, exported_shape) -> Classifier:
    input_size = fields.get("input_size")
    if exported_shape is not None and len(exported_shape) == 4:
        static = tuple(exported_shape[1:])
        if input_size is None and None not in static:
            input_size = static
        elif input_size is not None and any(s is not None and s != i for s, i in zip(static, input_size)):
            raise ModelUnavailable(f"{where}: input_size {list(input_size)} does not match the program's input {list(static)}")
    missing = [k for k, v in (("input_size", input_size), ("mean", fields.get("mean")), ("std", fields.get("std"))) if v is None]
    if missing:
        raise ModelUnavailable(f"{where}: missing metadata field(s) {', '.join(missing)} (give a sidecar JSON or meta=...)")
    fields = check_meta({**fields, "input_size": list(input_size)}, where=f"{where}: metadata")
    input_size = fields["input_size"]
    if what == "export":
        _check_batch(net, input_size, where)
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, *input_size))
    except Exception as err:  # noqa: BLE001
        raise ModelUnavailable(f"{where}: a forward pass of one {'×'.join(map(str, input_size))} zero image failed "
                               f"({type(err).__name__}: {str(err)[:200]})") from err
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        raise ModelUnavailable(f"{where}: the model must return N×classes logits, got "
                               f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    width = out.shape[1]
    class_names = fields.get("class_names") or [f"class {i}" for i in range(width)]
    if len(class_names) != width:
        raise ModelUnavailable(f"{where}: {len(class_names)} class names for a model with {width} outputs")
    domain = fields.get("domain") or (IMAGENET_NAME if width == 1000 and tuple(input_size) == (3, 224, 224) else "custom")

    layers_unavailable = None
    if what == "torchscript":
        layers_unavailable = _check_interpreted(net, input_size, where)
        if layers_unavailable:
            net = TorchScriptNet(net._script, interpret=False)
    blocks = fields.get("block_names")
    if layers_unavailable:
        if blocks:
            raise ModelUnavailable(f"{where}: block_names given, but {layers_unavailable}")
        blocks = []
    elif blocks is None:
        blocks = auto_blocks(net, input_size)
        if not blocks:
            layers_unavailable = "no module with a 4-D (N×C×H×W) output was found on the model's main path"
    cam = fields.get("cam_layer")
    known = {n: m for n, m in net.named_modules() if not isinstance(m, torch.jit.ScriptModule)}  # hookable ones
    for block in [*(blocks or []), *([cam] if cam else [])]:
        if block not in known or not block:
            top = ", ".join(n for n in known if n and "." not in n)
            raise ModelUnavailable(f"{where}: {block!r} (block_names/cam_layer) is not a module of the model; "
                                   f"its top-level modules are: {top}")
    try:
        model = Classifier(
            net, name=name, domain=domain, input_size=input_size, class_names=class_names,
            mean=fields["mean"], std=fields["std"], block_names=blocks, cam_layer=cam if blocks else None,
            resize_size=fields.get("resize_size"), layers_unavailable=layers_unavailable,
        )
    except (AttributeError, ValueError) as err:
        raise ModelUnavailable(f"{where}: {err} (block_names/cam_layer must be dotted module names inside the model)") from err
    if blocks:
        try:
            model.layers()
        except KeyError as err:
            raise ModelUnavailable(f"{where}: block {err.args[0][4:]!r} is never called in a forward pass") from err
    return model


def _check_interpreted(net: TorchScriptNet, input_size, where: str) -> str | None:
    """None when running the archive's graphs from Python gives its own outputs and input gradients; else why not."""
    if not net._interpret:
        return (f"TorchScript modules do not take Python forward hooks, and its top-level module cannot be run from "
                f"Python module by module: {net.why_opaque}")
    x = torch.rand(2, *input_size, generator=torch.Generator().manual_seed(0))
    try:
        xa = x.clone().requires_grad_(True)
        ours = net(xa)
        ga = torch.autograd.grad(ours.sum(), xa)[0]
        xb = x.clone().requires_grad_(True)
        theirs = net._script(xb)
        gb = torch.autograd.grad(theirs.sum(), xb)[0]
        same = torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5) and torch.allclose(ga, gb, rtol=1e-3, atol=1e-6)
    except Exception as err:  # noqa: BLE001
        return (f"its TorchScript graph could not be run from Python to reach its layers ({type(err).__name__}: "
                f"{str(err)[:160]}); TorchScript modules do not take Python forward hooks")
    if not same:
        return "running its TorchScript graph from Python did not reproduce its outputs; TorchScript modules do not take Python forward hooks"
    return None
