"""Forward hooks that are always removed (docs/ARCHITECTURE.md, rules).

Hooks mutate a module shared by every app session, so they live only inside a
`with` block and callers hold the classifier's lock while it is open. The lock
serialises hook users, not plain forwards: another session's attack may run the
same module at the same time, so a hook records only its own thread's outputs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn


def resolve_layer(net: nn.Module, name: str) -> nn.Module:
    try:
        return net.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"layer {name!r} does not exist in this model") from err


@contextmanager
def capture_activations(net: nn.Module, layer_names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the output of each named submodule during forwards run inside the block.

    The dict is filled on every forward (the last one wins). Outputs keep their
    graph, so gradients can be taken with respect to them.
    """
    modules = {name: resolve_layer(net, name) for name in layer_names}
    captured: dict[str, torch.Tensor] = {}
    owner = threading.get_ident()
    with ExitStack() as stack:
        for name, module in modules.items():

            def hook(_module, _inputs, output, _name=name):
                if threading.get_ident() == owner:  # not another session's concurrent forward
                    captured[_name] = output

            # RemovableHandle is a context manager: the stack removes it even if the body raises.
            stack.enter_context(module.register_forward_hook(hook))
        yield captured
