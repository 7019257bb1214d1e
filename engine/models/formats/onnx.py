"""ONNX graphs (.onnx), converted by onnx2torch into a torch.fx GraphModule with one submodule per ONNX node.

Those submodules take forward hooks and pass gradients, so the layer catalogue, Grad-CAM and the feature views
work, and the inference rewrites (channels-last, batch-norm folding) apply as to any PyTorch network. Module
names are the ONNX node names with '.' turned into '/' (torch's exporter names them after the source modules;
repeated scopes are dropped: 'features/1/Relu', 'layer1/0/relu_1/Relu').

Checked before anything is converted: the bytes parse as an ONNX model; no tensor declares more elements than
`MAX_ELEMENTS` or than its bytes can hold (nothing is allocated for a size a file merely claims); external weight
files stay inside the model's own folder, and an upload, which has no folder, must carry its weights inside the
file; every operator has an onnx2torch converter (all the missing ones are named at once); onnx.checker passes.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.models.classifier import Classifier
from engine.models.formats.common import SIDECAR_FIELDS, BadModelFile, check_meta, wrap

# Larger than any image classifier's biggest weight (a 1000×25088 VGG classifier holds 2.5e7), far below memory.
MAX_ELEMENTS = 2**31
_DYNAMIC_BATCH = (
    "re-export it with a dynamic batch axis: torch.onnx.export(model, (x,), 'model.onnx', "
    "input_names=['x'], dynamic_axes={'x': {0: 'batch'}})"
)


def _onnx():
    import onnx

    return onnx


# ---------------------------------------------------------------- reading, safely


def _graphs(graph):
    """A graph and every subgraph inside it (If/Loop bodies), depth first."""
    onnx = _onnx()
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _graphs(sub)


def _tensors(graph):
    """Every TensorProto of a graph: initializers and node attributes, subgraphs included."""
    onnx = _onnx()
    for g in _graphs(graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.TENSORS:
                    yield from attr.tensors


def _elements(tensor) -> int:
    count = 1
    for d in tensor.dims:
        if d < 0:
            return -1
        count *= d
        if count > MAX_ELEMENTS:
            return count
    return count


def _external(tensor) -> dict:
    return {e.key: e.value for e in tensor.external_data}


def _inside(folder: Path, location: str) -> Path | None:
    """The external data file, if `location` names one under `folder` (no absolute path, no '..', no link out)."""
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location:
        return None
    if any(part == ".." for part in Path(location.replace("\\", "/")).parts):
        return None
    root = folder.resolve()
    target = (root / location).resolve()
    try:
        target.relative_to(root)
    except ValueError:
        return None
    return target


def _read_external(proto, tensors, where: str, folder: Path | None) -> None:
    """Fill each tensor stored outside the file from its own folder, after checking where and how big it is."""
    onnx = _onnx()
    external = [t for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        return
    if folder is None:
        raise BadModelFile(
            f"{where} keeps its weights in separate files, which an upload cannot bring along; "
            "save the model with its weights inside the file (onnx.save(model, path, "
            "save_as_external_data=False)) and upload that"
        )
    for tensor in external:
        info = _external(tensor)
        path = _inside(folder, info.get("location", ""))
        if path is None:
            raise BadModelFile(
                f"{where}: tensor {tensor.name!r} points at {info.get('location', '')!r}, outside the "
                "model's folder; keep external weight files beside the .onnx file"
            )
        if not path.is_file():
            raise BadModelFile(
                f"{where}: tensor {tensor.name!r} needs the file {info.get('location')!r} beside the "
                "model, and it is not there; copy it next to the .onnx file"
            )
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError as err:
            raise BadModelFile(
                f"{where}: tensor {tensor.name!r} has a malformed external data record; save the model again"
            ) from err
        size = path.stat().st_size
        if length < 0:
            length = size - offset
        if offset < 0 or offset + length > size:
            raise BadModelFile(
                f"{where}: tensor {tensor.name!r} reaches past the end of {info.get('location')!r}; "
                "the weights file is truncated, save the model again"
            )
        _check_size(tensor, length, where)
        with open(path, "rb") as fh:
            fh.seek(offset)
            tensor.raw_data = fh.read(length)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def _check_size(tensor, available: int, where: str) -> None:
    count = _elements(tensor)
    # Two elements per byte covers the packed 4-bit types; every other type needs at least a byte each.
    if count < 0 or count > MAX_ELEMENTS or count > 2 * max(available, 0) + 2:
        raise BadModelFile(
            f"{where}: tensor {tensor.name!r} declares {'×'.join(map(str, tensor.dims))} elements, "
            f"more than the file holds; the file is damaged or hostile, export the model again"
        )


def read(data: bytes, where: str, folder: Path | None = None):
    """The checked ModelProto with every weight in memory; BadModelFile for anything unusable or unsafe."""
    onnx = _onnx()
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise BadModelFile(
            f"{where} does not parse as an ONNX model; it may be truncated or another format, export it again"
        ) from err
    if proto.ir_version <= 0 or not proto.graph.node:
        raise BadModelFile(f"{where} is not an ONNX model (no graph in it); export the model to ONNX again")
    tensors = list(_tensors(proto.graph))
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            _check_size(tensor, len(data), where)
    _read_external(proto, tensors, where, folder)
    return proto


def validate(proto, where: str) -> None:
    """onnx.checker's verdict (the model's structure, not what onnx2torch can convert)."""
    onnx = _onnx()
    if proto.ByteSize() >= 2**31 - 1:  # the checker serialises the model; protobuf stops at 2 GB
        return
    try:
        onnx.checker.check_model(proto)
    except Exception as err:  # noqa: BLE001 - ValidationError, or a C++ error for odd protos
        raise BadModelFile(
            f"{where} is not a valid ONNX model (the ONNX checker refuses it); export it again with a current exporter"
        ) from err


# ---------------------------------------------------------------- what the graph says


def _input(proto, where: str):
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise BadModelFile(
            f"{where}: the graph takes {len(inputs)} inputs; a classifier takes one image batch, "
            "export it with a single input"
        )
    if len(proto.graph.output) < 1:
        raise BadModelFile(f"{where}: the graph has no output; export the classifier with its logits as output")
    return inputs[0]


def input_dims(proto, where: str) -> list[int | None]:
    """The graph input's dimensions, None for a symbolic (dynamic) one."""
    value = _input(proto, where)
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return []
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in value.type.tensor_type.shape.dim
    ]


def _metadata(proto) -> dict:
    """Sidecar fields an exporter stored in the model's metadata_props (JSON values), e.g. class_names."""
    out = {}
    for prop in proto.metadata_props:
        if prop.key in SIDECAR_FIELDS and prop.key != "block_names":
            try:
                out[prop.key] = json.loads(prop.value)
            except ValueError:
                if prop.key in ("name", "domain"):
                    out[prop.key] = prop.value
    try:
        return check_meta(out)
    except BadModelFile:
        return {}  # metadata we cannot use is ignored: the sidecar or the form says it instead


def _file_fields(proto, where: str) -> dict:
    fields = _metadata(proto)
    dims = input_dims(proto, where)
    if len(dims) == 4 and None not in dims[1:]:
        fields["input_size"] = tuple(dims[1:])
    return fields


def describe(data: bytes, *, where: str, folder: Path | None = None) -> dict:
    """Input size (when the graph fixes C, H, W) and any sidecar fields kept in its metadata_props."""
    proto = read(data, where, folder)
    validate(proto, where)
    out = _file_fields(proto, where)
    if "input_size" in out:
        out["input_size"] = list(out["input_size"])
    return out


# ---------------------------------------------------------------- conversion


def _ops(graph):
    for g in _graphs(graph):
        yield from g.node


def _op_name(node) -> str:
    return f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def _missing_converters(proto) -> list[str]:
    from onnx2torch.node_converters import get_converter

    opsets = {o.domain or "": o.version for o in proto.opset_import}
    missing = set()
    for node in _ops(proto.graph):
        domain = node.domain or ""
        version = opsets.get(domain, opsets.get("ai.onnx" if domain == "" else domain))
        if version is None:
            missing.add(_op_name(node))
            continue
        try:
            get_converter(operation_type=node.op_type, version=version, domain=domain)
        except NotImplementedError:
            missing.add(_op_name(node))
    return sorted(missing)


def _failing_nodes(proto) -> list[str]:
    """Operators whose converter refuses this graph's particular use of them (an attribute it does not support)."""
    from onnx2torch.node_converters import get_converter
    from onnx2torch.onnx_graph import OnnxGraph

    opsets = {o.domain or "": o.version for o in proto.opset_import}
    try:
        graph = OnnxGraph(_onnx().shape_inference.infer_shapes(proto).graph)
    except Exception:  # noqa: BLE001 - a graph shape inference cannot follow: nothing to name
        return []
    failing = set()
    for node in graph.nodes.values():
        try:
            converter = get_converter(
                operation_type=node.operation_type, version=opsets.get(node.domain or "", 0), domain=node.domain
            )
            converter(node, graph)
        except NotImplementedError:
            failing.add(node.operation_type)
        except Exception:  # noqa: BLE001 - a node malformed in another way: the general sentence says it
            pass
    return sorted(failing)


def _cannot_convert(where: str, ops: list[str]) -> BadModelFile:
    return BadModelFile(
        f"{where} uses ONNX operator{'s' if len(ops) > 1 else ''} {', '.join(ops)} that cannot be "
        "converted to PyTorch here; export the model again with those layers replaced, or as a "
        "torch.export .pt2 program"
    )


def _dynamic_batch(proto) -> None:
    """Give the graph's input and outputs a symbolic batch; intermediate shapes are inferred again on conversion."""
    for value in [*proto.graph.input, *proto.graph.output]:
        if (
            value.type.HasField("tensor_type")
            and value.type.tensor_type.HasField("shape")
            and len(value.type.tensor_type.shape.dim) > 0
        ):
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_param = "batch"
    del proto.graph.value_info[:]


def _constants_as_initializers(proto) -> None:
    """Constant nodes and Identity nodes over initializers (torch's exporter writes one for each weight it shares
    between layers) become plain initializers: onnx2torch reads a layer's weights from initializers only."""
    onnx = _onnx()
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    keep = []
    for node in graph.node:
        inputs = [alias.get(i, i) for i in node.input]
        del node.input[:]
        node.input.extend(inputs)
        value = next((a.t for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR), None)
        if (
            node.op_type == "Constant"
            and node.domain in ("", "ai.onnx")
            and value is not None
            and len(node.attribute) == 1
            and node.output[0] not in outputs
        ):
            tensor = graph.initializer.add()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
            initializers.add(tensor.name)
        elif (
            node.op_type == "Identity"
            and node.domain in ("", "ai.onnx")
            and node.input[0] in initializers
            and node.output[0] not in outputs
        ):
            alias[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        kept = [onnx.NodeProto() for _ in keep]
        for new, old in zip(kept, keep):
            new.CopyFrom(old)
        del graph.node[:]
        graph.node.extend(kept)
    for out in graph.output:
        if out.name in alias:
            out.name = alias[out.name]


def convert(proto, where: str) -> nn.Module:
    """The ONNX graph as an eval-mode PyTorch module; BadModelFile naming every operator it cannot convert
    (before the checker's verdict: a graph of another runtime's custom operators is best told which ones)."""
    missing = _missing_converters(proto)
    if missing:
        raise _cannot_convert(where, missing)
    validate(proto, where)
    _constants_as_initializers(proto)
    from onnx2torch import convert as onnx2torch_convert

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = onnx2torch_convert(proto)
    except Exception as err:  # noqa: BLE001 - converters raise NotImplementedError, shape inference anything
        failing = _failing_nodes(proto)
        if failing:
            raise _cannot_convert(where, failing) from err
        raise BadModelFile(
            f"{where}: the ONNX graph could not be converted to PyTorch; export it again with "
            "opset 17 or as a torch.export .pt2 program"
        ) from err
    return _tidy_names(net).eval()


def _tidy(name: str) -> str:
    parts = name.split("/")
    return "/".join(p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1])


def _tidy_names(net: nn.Module) -> nn.Module:
    """Module names without the repeats of torch's exporter scopes ('layer1/layer1/0/relu_1/Relu' becomes
    'layer1/0/relu_1/Relu'), where that keeps every name distinct."""
    from torch import fx

    names = [n for n, _ in net.named_children()]
    tidy = {n: _tidy(n) for n in names}
    if len(set(tidy.values())) != len(names) or all(k == v for k, v in tidy.items()):
        return net
    root = nn.Module()
    for old, module in net.named_children():
        root.add_module(tidy[old], module)
    graph = net.graph
    for node in graph.nodes:
        if node.op in ("call_module", "get_attr"):
            head, sep, rest = node.target.partition(".")
            node.target = tidy.get(head, head) + sep + rest
    return fx.GraphModule(root, graph)


def batches(net: nn.Module, input_size) -> bool:
    """False when the network gives an image of a batch of two something else than that image alone (or fails on
    the pair); True when it agrees, or fails on one image too (`wrap` says why in its own words)."""
    x = torch.rand(2, *input_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            singles = torch.cat([net(x[:1]), net(x[1:])])
    except Exception:  # noqa: BLE001
        return True
    try:
        with torch.no_grad():
            both = net(x)
        return both.shape == singles.shape and torch.allclose(both, singles, rtol=1e-4, atol=1e-5)
    except Exception:  # noqa: BLE001
        return False


def _main_path(net: nn.Module) -> list:
    """The module calls every path from the input to the logits goes through, in order (fx nodes).

    In a ResNet these are the stem and each block's output, not the convolutions inside a block that the skip
    connection bypasses: the same catalogue a torchvision ResNet has. Shape computations (Shape and what it
    feeds) carry no image data and are not paths."""
    graph = getattr(net, "graph", None)
    if graph is None:
        return []
    nodes = list(graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    modules = dict(net.named_modules())

    def shape_only(n) -> bool:
        return n.op == "call_module" and type(modules.get(n.target)).__name__ == "OnnxShape"

    carries = set()
    for n in nodes:
        if n.op == "placeholder" or any(u in carries and not shape_only(u) for u in n.all_input_nodes):
            carries.add(n)
    reaches = set()
    for n in reversed(nodes):
        if n.op == "output" or any(u in reaches for u in n.users):
            reaches.add(n)
    on_path = carries & reaches
    covered = [0] * (len(nodes) + 1)
    for v in on_path:
        for u in v.all_input_nodes:
            if u in on_path and not shape_only(u) and pos[v] - pos[u] > 1:
                covered[pos[u] + 1] += 1
                covered[pos[v]] -= 1
    cut, depth = [], 0
    for i, n in enumerate(nodes):
        depth += covered[i]
        if depth == 0 and n in on_path and n.op == "call_module":
            cut.append(n)
    return cut


def catalogue(net: nn.Module, input_size) -> list[str]:
    """Module names for the layer catalogue of a converted graph: the main path's image-shaped outputs, a
    module whose only reader is the next one at the same shape (a convolution, its activation) giving way to it."""
    cut = _main_path(net)
    if not cut:
        return []
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        net.get_submodule(n.target).register_forward_hook(
            lambda _m, _a, out, key=n.target: outputs.__setitem__(key, out)
        )
        for n in cut
    ]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_size))
    except Exception:  # noqa: BLE001 - `wrap` reports a failing forward in its own words
        return []
    finally:
        for h in handles:
            h.remove()

    def image(n) -> bool:
        out = outputs.get(n.target)
        return isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1

    keep = []
    for n, nxt in zip(cut, [*cut[1:], None]):
        if not image(n):
            continue
        if (
            nxt is not None
            and list(n.users) == [nxt]
            and image(nxt)
            and outputs[nxt.target].shape == outputs[n.target].shape
        ):
            continue
        keep.append(n.target)
    return keep


def load(data: bytes, fields: dict, *, name: str, where: str, folder: Path | None = None) -> Classifier:
    """An ONNX model as a Classifier. `folder`: where external weight files may be read from (None for an
    upload: its weights must be inside the file)."""
    proto = read(data, where, folder)
    dims = input_dims(proto, where)
    if dims and len(dims) != 4:
        raise BadModelFile(
            f"{where}: the graph's input has {len(dims)} dimensions; a classifier takes an N×C×H×W image batch"
        )
    fields = {**_file_fields(proto, where), **fields}
    given = fields.get("input_size")
    if given is not None and len(dims) == 4 and any(d is not None and d != g for d, g in zip(dims[1:], given)):
        raise BadModelFile(
            f"{where}: input_size {list(given)} does not match the graph's input "
            f"{[d if d is not None else 'any' for d in dims[1:]]}; fix the sidecar or the form"
        )
    fixed_batch = bool(dims) and dims[0] is not None
    if fixed_batch:
        if dims[0] != 1:
            raise BadModelFile(f"{where}: the graph only takes batches of exactly {dims[0]} images; {_DYNAMIC_BATCH}")
        _dynamic_batch(proto)
    net = convert(proto, where)
    if given is None and "input_size" not in fields:
        return wrap(net, fields, name=name, where=where, kind="ONNX")  # says input_size is missing
    size = check_meta(fields, where=f"{where}: metadata")["input_size"]
    if not batches(net, size):
        if fixed_batch:
            raise BadModelFile(
                f"{where}: the graph was exported for one image at a time and fixes that batch inside; {_DYNAMIC_BATCH}"
            )
        raise BadModelFile(
            f"{where}: the graph gives an image different outputs alone and in a batch; {_DYNAMIC_BATCH}"
        )
    return wrap_graph(net, fields, name=name, where=where, kind="ONNX")


def wrap_graph(net: nn.Module, fields: dict, *, name: str, where: str, kind: str) -> Classifier:
    """`wrap` for a converted graph, its catalogue found along the graph's main path unless the metadata names it."""
    if "block_names" not in fields and fields.get("input_size") is not None:
        blocks = catalogue(net, check_meta(fields, where=f"{where}: metadata")["input_size"])
        if blocks:
            fields = {**fields, "block_names": blocks}
    return wrap(net, fields, name=name, where=where, kind=kind)
