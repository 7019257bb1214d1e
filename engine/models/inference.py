"""Rewrites of a frozen network that leave its function unchanged and make it cheaper to run.

Attacks and analyses spend nearly all their time in the network's forward and backward passes, so three
rewrites pay everywhere at once, for every page and every attack:

- **Batch norm folded into the convolution before it.** In eval mode a batch norm is a per-channel affine
  map, so it can be multiplied into the convolution's weights: one pass over the activations less, forward
  and backward. Only a convolution whose one use is the batch norm is folded, and never a module that the
  layer catalogue hooks (its output would change meaning).
- **Same padding folded into the convolution.** A convolution ported from TensorFlow ("same" padding, e.g.
  EfficientNet's `Conv2dStaticSamePadding`) pads its input with a separate zero-padding module first: a copy
  of the activations, forward and backward. Where that padding is the same on both sides (every stride-1
  convolution), the convolution's own padding does the same work without the copy. A stride-2 convolution's
  padding is one pixel longer on one side and stays as it is.
- **Channels-last memory.** On CPU, PyTorch's oneDNN convolutions run faster on N×H×W×C tensors than on
  N×C×H×W ones; the layout is not part of a tensor's value.

bench/README.md §9 has what they buy (`python bench/inference_rewrites.py`). All are checked on a probe
batch against the network as it was, and taken back if its outputs moved by more than rounding, so a network
with a layout-sensitive op (a `.view` over channels, a custom kernel) or a batch norm that a trace cannot
see runs as given.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars

import torch
from torch import fx, nn

# Folding reorders the float arithmetic; outputs move by rounding only.
RTOL, ATOL = 1e-3, 1e-4


_AS_GIVEN = contextvars.ContextVar("as_given", default=False)


@contextlib.contextmanager
def as_given():
    """Models built inside this block run their networks unrewritten: the baseline for bench/ and the tests."""
    token = _AS_GIVEN.set(True)
    try:
        yield
    finally:
        _AS_GIVEN.reset(token)


class _LeafConvTracer(fx.Tracer):
    """A trace that stops at every convolution and batch norm, including subclasses with their own forward
    (EfficientNet's same-padding convolution), so that each shows up as one module call."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) or super().is_leaf_module(m, qualname)


def _conv_bn_pairs(net: nn.Module, keep: set[str]) -> list[tuple[str, str]]:
    """(convolution, batch norm) module names where the batch norm only ever reads that convolution's output."""
    try:
        graph = _LeafConvTracer().trace(net)
    except Exception:  # noqa: BLE001 - control flow a trace cannot follow: run the network unfolded
        return []
    modules = dict(net.named_modules())
    calls = collections.Counter(node.target for node in graph.nodes if node.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        conv, bn = modules[source.target], modules[node.target]
        if (
            isinstance(conv, nn.Conv2d)
            and bn.track_running_stats
            and bn.running_mean is not None
            and calls[source.target] == 1
            and calls[node.target] == 1
            and not {source.target, node.target} & keep
        ):
            pairs.append((source.target, node.target))
    return pairs


def _swap(net: nn.Module, name: str, module: nn.Module) -> nn.Module:
    parent_name, _, child = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    old = getattr(parent, child)
    setattr(parent, child, module)
    return old


def fold_batch_norms(net: nn.Module, keep: set[str]) -> list[tuple[str, nn.Module]]:
    """Fold each eligible eval-mode batch norm into its convolution, in place; returns what to put back to undo."""
    undo = []
    for conv_name, bn_name in _conv_bn_pairs(net, keep):
        conv, bn = net.get_submodule(conv_name), net.get_submodule(bn_name)
        fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
        fused.requires_grad_(False)
        undo += [(conv_name, _swap(net, conv_name, fused)), (bn_name, _swap(net, bn_name, nn.Identity()))]
    return undo


def fold_same_paddings(net: nn.Module, keep: set[str]) -> list[tuple[str, nn.Module]]:
    """Replace each convolution that zero-pads its input by the same amount on opposite sides in a module of its
    own (`static_padding`) by a plain convolution with that padding, in place; returns what to put back to undo.
    The new convolution shares the old one's weight and bias."""
    undo = []
    for name, conv in list(net.named_modules()):
        pad = getattr(conv, "static_padding", None)
        if not isinstance(conv, nn.Conv2d) or not isinstance(pad, nn.ZeroPad2d) or name in keep:
            continue
        left, right, top, bottom = pad.padding
        if left != right or top != bottom or conv.padding != (0, 0) or conv.padding_mode != "zeros":
            continue
        plain = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=(top, left),
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        plain.weight, plain.bias = conv.weight, conv.bias
        plain.train(conv.training)
        undo.append((name, _swap(net, name, plain)))
    return undo


def _has_conv(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def prepare(net: nn.Module, input_shape: tuple[int, ...], keep: set[str]) -> tuple[int, int, bool]:
    """Apply the rewrites to an eval-mode network where they keep its outputs; returns (batch norms folded,
    paddings folded, channels-last on). `keep`: module names (relative to `net`) that are hooked and must stay
    as they are."""
    if _AS_GIVEN.get() or not _has_conv(net) or isinstance(net, torch.jit.ScriptModule):
        return 0, 0, False
    probe = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            reference = net(probe)
    except Exception:  # noqa: BLE001 - a network that fails on the probe is the registry's to report, unchanged
        return 0, 0, False

    def same(channels_last: bool) -> bool:
        x = probe.contiguous(memory_format=torch.channels_last) if channels_last else probe
        try:
            with torch.no_grad():
                out = net(x)
        except Exception:  # noqa: BLE001 - a layout-sensitive op (e.g. .view over channels)
            return False
        return out.shape == reference.shape and torch.allclose(
            out, reference, rtol=RTOL, atol=ATOL * float(reference.abs().max())
        )

    # After the batch norms: folding swaps convolutions for copies, and the paddings are looked for in what runs.
    folded = fold_batch_norms(net, keep)
    padded = fold_same_paddings(net, keep)
    if (folded or padded) and not same(False):
        for name, module in reversed(folded + padded):
            _swap(net, name, module)
        folded, padded = [], []
    net.to(memory_format=torch.channels_last)
    channels_last = same(True)
    if not channels_last:
        net.to(memory_format=torch.contiguous_format)
    return len(folded) // 2, len(padded), channels_last
