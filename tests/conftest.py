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


# The real-browser tests' server: `streamlit run app/main.py` on a free local port, with an operator's data root.
_ROOT = Path(__file__).resolve().parent.parent
THREE = ("chelsea.png", "coffee.png", "camera.png")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The operator's data root: one dataset of three gallery photos in class folders."""
    import json

    root = tmp_path_factory.mktemp("data-root")
    labels = json.loads((_ROOT / "assets" / "images" / "labels.json").read_text())
    for file in THREE:
        folder = root / "three-photos" / labels[file]["label"]
        folder.mkdir(parents=True)
        (folder / file).write_bytes((_ROOT / "assets" / "images" / file).read_bytes())
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_root):
    sys.path.insert(0, str(_ROOT / "bench"))
    from bench_common import streamlit_server

    try:
        with streamlit_server(tmp_path_factory.mktemp("server") / "streamlit.log", env={"PE_DATA_ROOT": str(data_root)}) as url:
            yield url
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        folder = _ROOT / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots")
