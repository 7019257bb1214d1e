import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import held_out, linear_classifier, load_digits_classifier  # noqa: E402

torch.set_num_threads(2)
# The suite's jobs (and the app servers it starts) queue among themselves, never behind a developer's own app
# or CLI job on the same machine (engine.compute's lock files).
os.environ.setdefault("PE_COMPUTE_DIR", tempfile.mkdtemp(prefix="pe-compute-"))


def _correct(model):
    x, y = held_out()
    with torch.no_grad():
        keep = model(x).argmax(1) == y
    return x[keep][:64], y[keep][:64]


@pytest.fixture(scope="session")
def digits():
    """(model, x, y): the committed digits CNN and 64 held-out images it classifies correctly."""
    model = load_digits_classifier(0)
    return (model, *_correct(model))


@pytest.fixture(scope="session")
def digits_pair(digits):
    """([white, other], x, y): two digits CNNs from different seeds, 8 images the first gets right."""
    model, x, y = digits
    return [model, load_digits_classifier(1)], x[:8], y[:8]


@pytest.fixture(scope="session")
def linear():
    return linear_classifier()


@pytest.fixture(scope="session")
def lite0():
    from engine import models

    return models.load("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, as the real-browser tests launch it (never a downloaded browser)."""
    import shutil

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from bench_common import CHROMIUM_FLAGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_FLAGS)
        yield b
        b.close()


def hooks_left(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())



def cli_json(capsys, *argv):
    """Run `python -m engine` in-process and return its --json output, failing on a non-zero exit."""
    import json

    from engine.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)
