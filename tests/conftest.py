import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from footprint import hooks_left  # noqa: E402, F401  (tests import it from here)
from tiny_models import held_out, linear_classifier, load_digits_classifier  # noqa: E402


def ci_is_set(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


# Under CI a skipped test is a failed one: an oracle library, the browser or a peer library that did not install
# must not let the run pass with its checks left out. Locally such tests are skipped, with the reason.
STRICT = ci_is_set(os.environ.get("CI"))
# Skips that are not about a missing test dependency, by the start of their reason, with why each is allowed.
ALLOWED_SKIPS = {
    "needs a CUDA GPU": "hardware, not a dependency: CI machines have no GPU, and the CPU paths are tested",
}


def require(module: str, install: str = "pip install -r requirements-test.txt") -> ModuleType:
    """Import a test dependency: without it the test (or, at module level, the module) is skipped, saying what
    is missing and how to install it; under CI that skip is a failure."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        pytest.skip(f"missing test dependency {module} ({err}): {install}", allow_module_level=True)


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _allowed(reason: str) -> bool:
    return any(reason.startswith(prefix) for prefix in ALLOWED_SKIPS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report.longrepr)
        if not _allowed(reason):
            report.outcome = "failed"
            report.longrepr = f"CI is set, so this skip fails the run: {reason}"
    return report


class _SkippedModule(pytest.Item):
    """Stands in, under CI, for a test module that skipped itself while importing: it fails with the reason."""

    def __init__(self, *, reason: str, **kwargs):
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self):
        pytest.fail(f"CI is set, so this module's skip fails the run: {self.reason}", pytrace=False)

    def reportinfo(self):
        return self.path, None, self.name


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if STRICT and report.skipped and isinstance(collector, pytest.Module):
        reason = _skip_reason(report.longrepr)
        if not _allowed(reason):
            # A failing stand-in item rather than a collection error: the rest of the suite still runs.
            item = _SkippedModule.from_parent(collector, name="skipped-module", reason=reason)
            report = pytest.CollectReport(report.nodeid, "passed", None, [item])
    return report


# pytest-xdist runs the suite in two workers (pyproject's addopts): while one waits on the app server and
# Chromium, the other computes. (A third made the whole suite slower: three app servers and browsers at once
# saturate two cores.) Each worker gets its share of the cores (one thread on two), so workers never fight over
# each other's threads; most tests attack small models, whose operations are too short for a second thread to
# pay for itself.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
torch.set_num_threads(_THREADS)
# The same share for what a worker starts (its app server, CLI commands, worker processes): two app servers
# with a thread per core each, beside the workers and Chromium, oversubscribed the cores, and torch's spinning
# threads made the browser tests 2-4× slower than alone. Set, not defaulted, in a worker: the controller
# imports this file first, with no workers counted, and its own share (two threads) would come to the workers
# with its environment (their app servers then ran two spinning threads each: 2.5× the CPU time of one).
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
else:
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
# The suite's jobs (and the app servers it starts) queue among themselves, never behind a developer's own app
# or CLI job on the same machine (engine.compute's lock files). Each worker has its own queue: workers are
# separate test sessions, like two machines.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["PE_COMPUTE_DIR"] = tempfile.mkdtemp(prefix=f"pe-compute-{os.environ['PYTEST_XDIST_WORKER']}-")
else:
    os.environ.setdefault("PE_COMPUTE_DIR", tempfile.mkdtemp(prefix="pe-compute-"))


# The modules whose tests take a minute or more each in the suite (walks of every page, nine browsers, a server
# restart), longest first: started first, they run beside the short tests instead of ending the run alone.
LONGEST = ("test_browser_defaults.py", "test_browser_classroom.py", "test_browser_own_world.py", "test_browser_deck.py")


def pytest_collection_modifyitems(config, items):
    """The slow tests first, the longest of them before the rest. Work stealing (pyproject's `--dist worksteal`)
    hands each worker half the list and lets a worker that runs dry take half of what the other has left, so the
    slow tests get shared and the run ends on short ones instead of one worker finishing a long browser test alone
    while the other idles."""

    def order(item) -> tuple[bool, int]:
        name = item.path.name
        return item.get_closest_marker("slow") is None, LONGEST.index(name) if name in LONGEST else len(LONGEST)

    items.sort(key=order)


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


# How long a browser test waits for the page to show what it waits for, unless the call says otherwise. Every
# wait ends as soon as the page shows it: the bound only decides when a page that never does counts as broken,
# and a loaded CI machine needs far more than Playwright's 30 s (PE_BROWSER_TIMEOUT_S scales it further).
BROWSER_TIMEOUT_MS = int(float(os.environ.get("PE_BROWSER_TIMEOUT_S", "120")) * 1000)


class _Window:
    """A fresh window of the person's own browser: tabs of its profile at one viewport, closed together. Each tab is
    an app session of its own (the app keeps nothing in cookies or storage)."""

    def __init__(self, profile, viewport: dict | None):
        self._profile, self._viewport = profile, viewport
        self._pages: list = []
        self._handlers: list[tuple] = []

    def new_page(self):
        page = self._profile.new_page()
        if self._viewport:
            page.set_viewport_size(self._viewport)
        for event, handler in self._handlers:
            page.on(event, handler)
        self._pages.append(page)
        return page

    def on(self, event: str, handler) -> None:
        """`handler` on every tab of this window, those open now and those opened later."""
        self._handlers.append((event, handler))
        for page in self._pages:
            page.on(event, handler)

    def close(self) -> None:
        for page in self._pages:
            if not page.is_closed():
                page.close()


class _Browser:
    """The browsers of a test module: one person's (`window`, `new_page`) and other people's (`new_context`).
    Their pages wait up to BROWSER_TIMEOUT_MS by default.

    The person's browser keeps a profile on disk, as a real one does, rather than a blank context per test: with
    its cache Chromium compiles the app's scripts once, where a blank context compiled them again on each page
    load (about 2 of a load's 4-7 CPU-s). Several people at once (a class, a queue) each get a blank context of
    a second Chromium: one profile would share one network stack between them, which no class of phones does."""

    def __init__(self, playwright, executable: str, flags: list[str], profile: Path):
        self._launch = {"executable_path": executable, "args": flags}
        self._playwright = playwright
        self._profile = playwright.chromium.launch_persistent_context(
            profile, viewport={"width": 1280, "height": 720}, **self._launch
        )
        self._profile.set_default_timeout(BROWSER_TIMEOUT_MS)
        self._others = None

    def window(self, viewport: dict | None = None) -> _Window:
        return _Window(self._profile, viewport)

    def new_page(self, viewport: dict | None = None):
        return self.window(viewport).new_page()

    def new_context(self, **kwargs):
        """Another person's browser: a blank context, nothing shared with the person's own or another's."""
        if self._others is None:
            self._others = self._playwright.chromium.launch(**self._launch)
        context = self._others.new_context(**kwargs)
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        return context

    def close(self) -> None:
        self._profile.close()
        if self._others is not None:
            self._others.close()


@pytest.fixture(scope="session")
def browser_profile(tmp_path_factory) -> Path:
    """The person's browser profile, shared by the modules of one test worker: its cache outlives each module."""
    return tmp_path_factory.mktemp("chromium-profile")


# Per module, unlike the server: bench scripts that test_bench.py runs in-process start Playwright's sync API
# themselves, which cannot run while another instance is open in the same thread.
@pytest.fixture(scope="module")
def browser(browser_profile):
    """Debian's Chromium driven by Playwright, as the real-browser tests launch it (never a downloaded browser)."""
    import shutil

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.skip("needs Chromium: apt-get install chromium")
    playwright = require("playwright.sync_api")
    playwright.expect.set_options(timeout=BROWSER_TIMEOUT_MS)  # expect() would wait 5 s
    sync_playwright = playwright.sync_playwright
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from bench_common import CHROMIUM_FLAGS

    with sync_playwright() as p:
        browsers = _Browser(p, executable, CHROMIUM_FLAGS, browser_profile)
        yield browsers
        browsers.close()


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


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def server(tmp_path_factory, data_root):
    """One app server for every browser test module: each test opens its own browser session on it, and a
    server per module would start (and warm its model caches) again each time."""
    sys.path.insert(0, str(_ROOT / "bench"))
    from bench_common import streamlit_server

    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    try:
        with streamlit_server(log, env={"PE_DATA_ROOT": str(data_root)}) as url:
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
