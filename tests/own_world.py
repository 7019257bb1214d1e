"""What a researcher brings, from tests/fixtures/own_world (made by tests/fixtures/make_own_world.py):
two small 10-class 32×32 CNNs of their own domain ("shapes") and a zip of 40 labelled PNGs."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import torch

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "own_world"
sys.path.insert(0, str(FIXTURE.parent))
from make_own_world import OwnCNN  # noqa: E402

META = json.loads((FIXTURE / "meta.json").read_text())
WIDTHS = {"white": 16, "black": 24}


def net(which: str = "white") -> OwnCNN:
    model = OwnCNN(WIDTHS[which])
    model.load_state_dict(torch.load(FIXTURE / f"{which}.pt", weights_only=True))
    return model.eval()


def zip_bytes() -> bytes:
    return (FIXTURE / "images.zip").read_bytes()


def torchscript_bytes(which: str = "white") -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(net(which), torch.zeros(1, 3, 32, 32)), buf)
    return buf.getvalue()


def export_bytes(which: str = "white") -> bytes:
    program = torch.export.export(
        net(which), (torch.zeros(2, 3, 32, 32),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def classifier(which: str = "white", name: str | None = None):
    """The model as the engine sees it once loaded, with its domain record made at load time."""
    from engine import domains
    from engine.models import Classifier

    model = Classifier(
        net(which),
        name=name or f"own-{which}",
        domain=META["domain"],
        input_size=tuple(META["input_size"]),
        class_names=META["class_names"],
        mean=META["mean"],
        std=META["std"],
        block_names=["features.2", "features.5", "features.7"],
    )
    domains.adopt(model, META["domain"])
    return model
