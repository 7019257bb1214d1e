"""A model made by the operator's own Python code, "package.module:factory".

This imports and runs code, so it is offered on the command line and the Python API only, never to a browser
upload. The factory takes no arguments and returns an nn.Module (or a ready Classifier, used as it is).
"""

from __future__ import annotations

import importlib
import inspect
import re

import torch
from torch import nn

from engine.models.classifier import Classifier
from engine.models.formats.common import BadModelFile, wrap

ENTRY_POINT = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


def make(spec: str) -> nn.Module | Classifier:
    """What the factory returns; BadModelFile (with what to fix) when it cannot be imported, called or used."""
    if not isinstance(spec, str) or not ENTRY_POINT.match(spec):
        raise BadModelFile(f"entry point {spec!r} is not of the form 'package.module:factory'")
    module_name, attr = spec.split(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - the operator's own code may raise anything
        raise BadModelFile(
            f"entry point {spec}: module {module_name!r} cannot be imported ({type(err).__name__}); "
            "check that it is on PYTHONPATH"
        ) from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BadModelFile(f"entry point {spec}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise BadModelFile(
            f"entry point {spec}: {attr} is a {type(obj).__name__}, not a Python function or class "
            "returning a PyTorch nn.Module"
        )
    try:
        inspect.signature(obj).bind()
    except TypeError as err:
        raise BadModelFile(f"entry point {spec}: the factory must be callable without arguments") from err
    except ValueError:
        pass
    try:
        made = obj()
    except Exception as err:  # noqa: BLE001
        raise BadModelFile(f"entry point {spec}: the factory raised {type(err).__name__}: {str(err)[:200]}") from err
    if not isinstance(made, nn.Module):
        raise BadModelFile(f"entry point {spec}: the factory returned a {type(made).__name__}, not a PyTorch nn.Module")
    return made


def load(spec: str, fields: dict, *, name: str, where: str) -> Classifier:
    """The factory's module as a Classifier (a Classifier it returns is passed through, metadata ignored)."""
    made = make(spec)
    if isinstance(made, Classifier):
        return made
    if isinstance(made, torch.jit.ScriptModule):
        from engine.models.formats import torchscript

        return torchscript.from_script(made, fields, name=name, where=where)
    return wrap(made, fields, name=name, where=where, kind="entry point")
