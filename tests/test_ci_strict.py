"""Under CI (the CI variable set) a test skipped for a missing dependency fails the run, naming what is missing:
an oracle library, a peer library or the browser that did not install cannot let the checks pass unrun."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# The suite's own conftest, loaded under another name so the scratch folder's conftest can carry its hooks.
CONFTEST = f"""
import importlib.util, sys
sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]
spec = importlib.util.spec_from_file_location("suite_conftest", {str(TESTS / "conftest.py")!r})
suite = importlib.util.module_from_spec(spec)
sys.modules["suite_conftest"] = suite
spec.loader.exec_module(suite)
globals().update({{k: v for k, v in vars(suite).items() if not k.startswith("__")}})
"""
CASES = textwrap.dedent("""
    import pytest
    from suite_conftest import require

    def test_oracle_missing():
        require("no_such_oracle_library", "pip install it")

    @pytest.fixture
    def peer():
        return require("no_such_peer_library")

    def test_peer_missing(peer):
        pass

    @pytest.mark.skipif(True, reason="needs Chromium: apt-get install chromium")
    def test_browser_missing():
        pass

    @pytest.mark.skipif(True, reason="needs a CUDA GPU: none on this machine")
    def test_gpu_missing():
        pass

    def test_runs():
        pass

    @pytest.mark.xfail(reason="an expected failure is not a skip", strict=True)
    def test_expected_failure():
        assert False
""")
MODULE_SKIP = (
    'import pytest\n\ntorchattacks = pytest.importorskip("no_such_module_level_oracle")\n\n\n'
    "def test_never_collected():\n    pass\n"
)


def _run(folder: Path, ci: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ci-strict")
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_cases.py").write_text(CASES)
    (folder / "test_module_skip.py").write_text(MODULE_SKIP)
    return folder


@pytest.mark.slow  # a pytest subprocess
def test_under_ci_every_skip_for_something_missing_fails_and_names_it(scratch):
    code, out = _run(scratch, "1")
    assert code == 1, out
    for line in (
        "FAILED test_cases.py::test_oracle_missing - CI is set, so this skip fails the run: missing test "
        "dependency no_such_oracle_library",
        "ERROR test_cases.py::test_peer_missing - CI is set, so this skip fails the run: missing test "
        "dependency no_such_peer_library",
        "ERROR test_cases.py::test_browser_missing - CI is set, so this skip fails the run: needs Chromium",
        "FAILED test_module_skip.py::skipped-module - Failed: CI is set, so this module's skip fails the run: "
        "could not import 'no_such_module_level_oracle'",
        "SKIPPED [1] test_cases.py:",  # the GPU one, allowed: hardware, not a missing dependency
        "PASSED test_cases.py::test_runs",
        "XFAIL test_cases.py::test_expected_failure",
    ):
        assert line in out, (line, out)
    assert "2 failed, 1 passed, 1 skipped, 1 xfailed, 2 errors" in out, out


@pytest.mark.slow
def test_without_ci_the_same_tests_are_skipped_with_their_reason(scratch):
    code, out = _run(scratch, None)
    assert code == 0, out
    assert "missing test dependency no_such_oracle_library" in out and "needs Chromium" in out
    assert "1 passed, 5 skipped, 1 xfailed" in out, out


@pytest.mark.parametrize(
    "value, strict",
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        ("1", True),
        ("true", True),
        ("yes", True),
    ],
)
def test_what_counts_as_ci(value, strict):
    from conftest import ci_is_set

    assert ci_is_set(value) is strict
