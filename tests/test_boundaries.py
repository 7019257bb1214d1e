import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_engine_never_imports_streamlit():
    code = (
        "import sys, engine, engine.models, engine.attacks, engine.images, engine.metrics, engine.report, engine.cli;"
        "print('streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_engine_module_mentions_streamlit():
    for path in (ROOT / "engine").rglob("*.py"):
        assert "import streamlit" not in path.read_text(), path


def test_weights_are_only_read_with_weights_only():
    for path in (ROOT / "engine").rglob("*.py"):
        for line in path.read_text().splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
