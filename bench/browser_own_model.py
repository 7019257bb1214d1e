"""A researcher's own model in every format, every page, in a real browser (headless Chromium against
`streamlit run`): the time from pressing a page's button (the Explorer: from opening it) to its first result,
or the sentence the page shows instead.

    python bench/browser_own_model.py            # six formats × seven pages (about 10 minutes on 2 cores)
    python bench/browser_own_model.py --quick    # TorchScript only, Explorer and JSMA lab (CI)

Each format gets a fresh browser session that adds its model through "Bring your own model", the metadata typed
into the form as a person types it, plus the fixture's black box (tests/own_world: a .pt2) for the Transfer lab,
picks it as the white box and uploads the fixture's 40 labelled 32×32 pictures under Evaluation images. Models
the fixture does not have (torchvision resnet18, timm resnet10t, a tiny Hugging Face ResNet) are 10-class networks
at 3×32×32 with the fixture's class names, trained here first for a few epochs on the fixture's training pictures
(seed 0) as the app gives them to each (its resize and crop, its mean and std); their accuracy on the 40 held-out
pictures is printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    CHROMIUM_FLAGS,
    ROOT,
    WATCH_RUNS,
    at_rest,
    choose,
    parser,
    streamlit_server,
    two_cores,
)

sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "fixtures")]  # engine; own_world; make_own_world
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 720}
# page title in the navigation, its button (None: it runs when opened), the text of its first result
PAGES = [
    ("Explorer", None, "SSIM"),
    ("Transfer lab", "Run sweep", "tSuc on"),
    ("Feature space", "Compute", "Plane distance to target"),
    ("Anatomy of a perturbation", "Average", "Contour vs background"),
    ("Patch distance", "Place the patch", "Numbers per distance"),
    ("JSMA lab", "Run JSMA", "changed features in red"),
    ("Perturbation quiz", "Start", "Question 1 of"),
]
SHORT = {"Anatomy of a perturbation": "Anatomy", "Perturbation quiz": "Quiz"}
FORMATS = ["torchvision", "timm", "onnx", "hf", "export", "torchscript"]
TITLES = {
    "torchvision": "torchvision resnet18 .pth",
    "timm": "timm resnet10t .safetensors",
    "onnx": "ONNX",
    "hf": "Hugging Face zip",
    "export": "torch.export .pt2",
    "torchscript": "TorchScript",
}
ERRORS = re.compile(r"This page could not finish|Something went wrong|Traceback|\bError\b")
# Training pictures per class and epochs for the networks the fixture does not have: enough for held-out accuracy
# well above chance (a random network gets one class right, which leaves AA no target class) in under a minute each
# on 2 cores.
TRAIN_PER_CLASS = 150
EPOCHS = {"torchvision": 10, "timm": 3, "hf": 60}


# ---------------------------------------------------------------- what a researcher brings


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _torch_bytes(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def onnx_bytes(which: str = "white") -> bytes:
    import own_world
    import torch

    buf = io.BytesIO()
    _quiet(
        torch.onnx.export,
        own_world.net(which),
        (torch.zeros(1, 3, 32, 32),),
        buf,
        dynamo=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
    )
    return buf.getvalue()


def hf_net(class_names: list[str]):
    """A tiny random-init transformers ResNetForImageClassification with these labels."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    labels = dict(enumerate(class_names))
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    return ResNetForImageClassification(config).eval()


def hf_zip_bytes(net, side: int = 32) -> bytes:
    """`net` (a transformers image classifier) saved with a preprocessor at `side`, its folder zipped."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-hf"
        net.save_pretrained(folder)
        (folder / "preprocessor_config.json").write_text(
            json.dumps(
                {
                    "image_processor_type": "ConvNextImageProcessor",
                    "do_resize": True,
                    "size": {"shortest_edge": side},
                    "crop_pct": 1.0,
                    "do_rescale": True,
                    "rescale_factor": 1 / 255,
                    "do_normalize": True,
                    "image_mean": [0.45] * 3,
                    "image_std": [0.25] * 3,
                }
            )
        )
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            for p in sorted(folder.iterdir()):
                archive.writestr(f"tiny-hf/{p.name}", p.read_bytes())
    return buf.getvalue()


def as_the_app_sees(data: bytes, filename: str, fields: dict[str, str], arch: str | None):
    """The Classifier the app makes of `data` from what is typed into the form (its blank fields give the
    format's defaults, which the form is prefilled with)."""
    from engine.models import formats

    meta = {
        "class_names": fields.get("Class names, one per line", "").splitlines() or None,
        "domain": fields.get("Domain"),
        "input_size": [int(v) for v in fields["Input size C,H,W"].split(",")] if "Input size C,H,W" in fields else None,
    }
    return _quiet(
        formats.load, data, filename=filename, meta={k: v for k, v in meta.items() if v}, arch=arch, name=filename
    )


def fixture_pictures(model, per_class: int, seed: int):
    """The fixture's pictures (make_own_world.pictures) as the app gives them to `model`: 8-bit like its PNGs,
    fitted to the model's resize and crop, in [0, 1]. (N×C×H×W, labels)."""
    import torch
    from make_own_world import pictures
    from PIL import Image

    from engine import images

    x, y, _ = pictures(per_class, seed)
    c, h, _ = model.input_size
    pixels = (x.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    return (
        torch.cat([images.to_tensor(images.fit(Image.fromarray(p), c, h, model.resize_size)) for p in pixels]),
        torch.from_numpy(y),
    )


def train(net, seen, epochs: int) -> None:
    """make_own_world.train's loop on `net`, with the normalisation and fitting of `seen` (the app's view of it)."""
    import torch
    from torch import nn

    two_cores()
    x, y = fixture_pictures(seen, TRAIN_PER_CLASS, seed=0)
    x = (x - seen.mean) / seen.std
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            out = net(x[idx])
            nn.functional.cross_entropy(getattr(out, "logits", out), y[idx]).backward()
            opt.step()
    net.eval()


def held_out_accuracy(model) -> float:
    """On the fixture's 40 labelled pictures (seed 1, the ones uploaded), through the app's Classifier."""
    import torch

    x, y = fixture_pictures(model, 4, seed=1)
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def model_files(folder: Path, which: list[str]) -> tuple[dict[str, tuple[Path, dict[str, str]]], dict[str, dict]]:
    """(format → (its file, the form fields a person types for it), with the fixture's black box under 'black';
    format → {'seconds', 'accuracy'} of the networks trained here)."""
    import own_world
    import torch

    meta = own_world.META
    names = "\n".join(meta["class_names"])
    stats = {"Mean per channel": ",".join(map(str, meta["mean"])), "Std per channel": ",".join(map(str, meta["std"]))}
    own = {**stats, "Class names, one per line": names, "Domain": meta["domain"]}
    files, trained = {}, {}

    def put(key: str, name: str, data: bytes, fields: dict[str, str]) -> None:
        path = folder / name
        path.write_bytes(data)
        files[key] = (path, fields)

    def put_trained(key: str, name: str, net, save, fields: dict[str, str], arch: str | None = None) -> None:
        start = time.perf_counter()
        train(net, as_the_app_sees(save(net), name, fields, arch), EPOCHS[key])
        seconds = time.perf_counter() - start
        put(key, name, save(net), fields)
        accuracy = held_out_accuracy(as_the_app_sees(save(net), name, fields, arch))
        trained[key] = {"seconds": seconds, "accuracy": accuracy}
        print(
            f"  {key:12} trained {EPOCHS[key]} epochs in {seconds:.0f} s, held-out accuracy {accuracy:.2f}",
            file=sys.stderr,
            flush=True,
        )

    for key in which:
        if key == "torchvision":
            import torchvision

            torch.manual_seed(0)
            put_trained(
                key,
                "r18.pth",
                torchvision.models.resnet18(num_classes=10),
                lambda net: _torch_bytes(net.state_dict()),
                {"Input size C,H,W": "3,32,32", "Class names, one per line": names, "Domain": meta["domain"]},
                arch="resnet18",
            )
        elif key == "timm":
            import timm
            from safetensors.torch import save as save_safetensors

            torch.manual_seed(0)
            put_trained(
                key,
                "r10t.safetensors",
                timm.create_model("resnet10t", pretrained=False, num_classes=10),
                lambda net: save_safetensors(net.state_dict()),
                {
                    "…or a timm architecture": "resnet10t",
                    "Input size C,H,W": "3,32,32",
                    "Class names, one per line": names,
                    "Domain": meta["domain"],
                },
                arch="timm:resnet10t",
            )
        elif key == "onnx":
            put(key, "white.onnx", onnx_bytes(), own)
        elif key == "hf":
            put_trained(key, "tiny-hf.zip", hf_net(meta["class_names"]), hf_zip_bytes, {"Domain": meta["domain"]})
        elif key == "export":
            put(key, "white.pt2", own_world.export_bytes(), own)
        elif key == "torchscript":
            put(key, "white.pt", own_world.torchscript_bytes(), {"Input size C,H,W": "3,32,32", **own})
    put("black", "black.pt2", own_world.export_bytes("black"), own)
    (folder / "images.zip").write_bytes(own_world.zip_bytes())
    return files, trained


# ---------------------------------------------------------------- a person at the browser


def wait_idle(page, timeout_s: float = 300) -> None:
    """Until the app has finished its run (Streamlit marks its root with the script's state)."""
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=timeout_s * 1000)


def open_section(page, title: str, tries: int = 3) -> None:
    """Unfold the sidebar expander `title` unless it is open. A click that lands while the app redraws the
    sidebar can be lost with the old element: then the app is let come to rest, and the summary clicked again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    details = (
        page.locator("[data-testid='stSidebar'] details").filter(has=page.locator("summary", has_text=title)).first
    )
    opened = page.locator("[data-testid='stSidebar'] details[open]").filter(has=page.locator("summary", has_text=title))
    details.wait_for(timeout=120_000)
    for _ in range(tries):
        if details.get_attribute("open") is not None:
            return
        details.locator("summary").first.click()
        try:
            opened.first.wait_for(timeout=20_000)
            return
        except PlaywrightTimeout:
            wait_idle(page)
    raise AssertionError(f"the sidebar section {title!r} never opened")


def upload(page, label: str, path: Path) -> None:
    page.locator("[data-testid='stSidebar'] [data-testid='stFileUploader']").filter(has_text=label).locator(
        "input[type='file']"
    ).set_input_files(str(path))


def add_model(page, path: Path, fields: dict[str, str], timeout_s: float = 180) -> str:
    """Upload `path` under Bring your own model, type `fields` into the form, press Add model; its name."""
    from playwright.sync_api import expect

    open_section(page, "Bring your own model")
    upload(page, "Model file", path)
    name = path.name.rsplit(".", 1)[0]
    expect(page.get_by_label("Name", exact=True)).to_have_value(name, timeout=timeout_s * 1000)  # the form is its
    wait_idle(page, timeout_s)
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Add model").click()
    problem = page.locator("[data-testid='stSidebar'] [data-testid='stAlertContentError']")
    page.get_by_text(f"Added {name}:").or_(problem).first.wait_for(timeout=timeout_s * 1000)
    if problem.count():
        raise RuntimeError(f"{path.name} was not added: {problem.first.inner_text()}")
    wait_idle(page, timeout_s)
    return name


def rerun_done(page, action, timeout_s: float = 180, seen_s: float = 20) -> None:
    """Do `action` (a click that reruns the app) and wait until that rerun has finished: until then the sidebar
    is the old one, and a click on it may land on an element the rerun then replaces. A rerun short enough that
    the page never drew "running" (its states drawn at once) still drew "rerunRequested": it counts as begun.

    A page busy enough to draw a short rerun's states all at once may leave nothing for the watcher to see (the
    state only ever read "notRunning"). Where no rerun has been seen after `seen_s`, the app at rest twice, a
    moment apart, counts as done; a rerun still going keeps it waiting, up to `timeout_s` in all."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    seen = (
        "() => (window.__runs.done > 0 || window.__runs.started) && document.querySelector("
        '"[data-testid=stApp][data-test-script-state=notRunning]")'
    )
    deadline = time.monotonic() + timeout_s
    page.evaluate(WATCH_RUNS)
    action()
    try:
        try:
            page.wait_for_function(seen, timeout=seen_s * 1000, polling=100)
        except PlaywrightTimeout:
            at_rest(page, deadline - time.monotonic())
    except PlaywrightTimeout as timeout:
        # Whether the rerun never began or never ended, and what the page shows, tell a lost click from a queue.
        runs = page.evaluate("() => window.__runs")
        state = page.locator("[data-testid=stApp]").get_attribute("data-test-script-state")
        raise AssertionError(
            f"the rerun did not finish in {timeout_s:.0f} s (runs seen: {runs}, script state: {state}); the page "
            f"shows:\n{main_text(page)[:1500]}"
        ) from timeout


def pick_white_box_and_images(page, name: str, images: Path, timeout_s: float = 180) -> None:
    rerun_done(page, lambda: choose(page, "White-box model", name), timeout_s)
    open_section(page, "Evaluation images")
    upload(page, "Labelled images (.zip", images)
    offered = page.get_by_text(f"{images.name} (").first  # offered as its image set
    offered.wait_for(state="attached", timeout=timeout_s * 1000)
    wait_idle(page, timeout_s)
    open_section(page, "Evaluation images")
    offered.wait_for(timeout=timeout_s * 1000)


def go_to(page, title: str) -> None:
    page.locator("[data-testid='stSidebarNavLink']").filter(has_text=title).first.click()


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def alerts(page) -> list[str]:
    """The notes, warnings and errors in the page's main area."""
    return page.locator("[data-testid='stMain'] [data-testid='stAlert']").all_inner_texts()


# The marker; a confirmation to click; or, once a run has ended, an error or a note the page did not show before
# (a run that ends without either is followed by another: a page that reruns itself to show its result).
_OUTCOME = """([marker, before]) => {
    const main = document.querySelector('[data-testid=stMain]');
    if (!main) return false;
    if (main.innerText.includes(marker)) return 'marker';
    if ([...main.querySelectorAll('button')].some(b => b.innerText.startsWith('Run anyway'))) return 'asked';
    const idle = document.querySelector("[data-testid=stApp][data-test-script-state=notRunning]");
    if (!idle || !window.__runs.done) return false;
    const notes = [...main.querySelectorAll('[data-testid=stAlert]')].map(a => a.innerText);
    if (main.querySelector('[data-testid=stAlertContentError], [data-testid=stException]')) return 'note';
    return notes.some(n => !before.includes(n)) ? 'note' : false;
}"""


def first_result(page, title: str, button: str | None, marker: str, timeout_s: float = 300) -> dict:
    """Open page `title` by its link, press `button` (None: the page runs by itself) and wait for `marker`, or for
    the run to end with an error or a new note instead. {'seconds' or None, 'sentence' where the page said why
    not (or that it did not finish within `timeout_s`, after which the run is cancelled), 'asked': whether it asked
    to confirm a long run}."""
    from playwright.sync_api import TimeoutError as Timeout

    page.evaluate(WATCH_RUNS)
    start = time.perf_counter()
    go_to(page, title)
    page.wait_for_function(
        "t => document.querySelector('[data-testid=stMain] h1')?.innerText.startsWith(t)",
        arg=title,
        timeout=timeout_s * 1000,
        polling=100,
    )
    before = []
    if button is not None:
        press = page.get_by_role("button", name=button).first
        try:
            press.wait_for(timeout=60_000)
        except Timeout:  # the page has no button here: it says why
            wait_idle(page, timeout_s)
            return {"seconds": None, "sentence": (alerts(page) or ["(no button, no note)"])[-1], "asked": False}
        wait_idle(page, timeout_s)
        before = alerts(page)
        page.evaluate(WATCH_RUNS)
        start = time.perf_counter()
        press.click()
    asked = False
    try:
        found = page.wait_for_function(
            _OUTCOME, arg=[marker, before], timeout=timeout_s * 1000, polling=100
        ).json_value()
        anyway = page.locator("[data-testid=stMain] button", has_text="Run anyway")
        if found == "note" and any("start it anyway" in n for n in alerts(page) if n not in before):
            # The time warning came without its button on screen yet (seen once on a busy machine): wait for it.
            anyway.first.wait_for(timeout=60_000)
            found = "asked"
        if found == "asked":
            asked = True
            page.get_by_role("button", name="Run anyway").first.click()
            page.evaluate(WATCH_RUNS)
            found = page.wait_for_function(
                _OUTCOME, arg=[marker, before], timeout=timeout_s * 1000, polling=100
            ).json_value()
    except Timeout:
        cancel = page.get_by_role("button", name="Cancel")
        if cancel.count():
            cancel.first.click()
        wait_idle(page, timeout_s)
        return {"seconds": None, "sentence": f"not finished within {timeout_s:.0f} s", "asked": asked}
    seconds = time.perf_counter() - start
    if found == "marker":
        return {"seconds": seconds, "sentence": None, "asked": asked}
    wait_idle(page, timeout_s)
    notes = [n for n in alerts(page) if n not in before] or alerts(page)
    return {"seconds": None, "sentence": notes[-1] if notes else "(nothing shown)", "asked": asked}


def session(browser, url: str, files: dict, fmt: str, timeout_s: float = 180):
    """A fresh browser session with `fmt`'s model and the black box added, the model picked as the white box
    and the labelled images uploaded, on the Method guide (no page computes yet). (context, page)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{url}/guide", wait_until="domcontentloaded")
    page.get_by_text("Bring your own model").first.wait_for(timeout=timeout_s * 1000)
    wait_idle(page, timeout_s)
    name = add_model(page, *files[fmt], timeout_s=timeout_s)
    add_model(page, *files["black"], timeout_s=timeout_s)
    pick_white_box_and_images(page, name, files["black"][0].parent / "images.zip", timeout_s)
    return context, page


# ---------------------------------------------------------------- the table


def cell(result: dict, notes: list[str]) -> str:
    """Seconds to the first result, and/or a footnote number for what the page said instead (or beside it)."""
    text = "" if result["seconds"] is None else f"{result['seconds']:.1f}" + (" (asked)" if result["asked"] else "")
    if result["sentence"]:
        if result["sentence"] not in notes:
            notes.append(result["sentence"])
        text = f"{text or 'says'} [{notes.index(result['sentence']) + 1}]"
    return text


def table(rows: dict[str, dict[str, dict]], pages: list[str]) -> str:
    notes: list[str] = []
    out = ["| format | " + " | ".join(SHORT.get(p, p) for p in pages) + " |", "|---" * (len(pages) + 1) + "|"]
    for fmt, results in rows.items():
        cells = [cell(results[p], notes) if p in results else "—" for p in pages]
        out.append(f"| {TITLES.get(fmt, fmt)} | " + " | ".join(cells) + " |")
    for i, note in enumerate(notes, 1):
        out.append(f"[{i}] {' '.join(note.split())}")
    return "\n".join(out)


def main(argv=None) -> int:
    cli = parser(__doc__, repeats=1, quick_help="TorchScript only, Explorer and JSMA lab", device=False)
    cli.add_argument("--formats", nargs="+", choices=FORMATS, help="default: all six")
    cli.add_argument("--timeout", type=int, default=180, help="seconds before a page counts as not finished")
    cli.add_argument("--url", default=None, help="time an app already running there instead of starting one")
    args = cli.parse_args(argv)
    from playwright.sync_api import sync_playwright

    formats = ["torchscript"] if args.quick else (args.formats or FORMATS)
    pages = [p for p in PAGES if not args.quick or p[0] in ("Explorer", "JSMA lab")]
    rows: dict[str, dict[str, dict]] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files, trained = model_files(Path(tmp), formats)  # before the server: training has the cores to itself
        with (
            contextlib.nullcontext(args.url) if args.url else streamlit_server(Path(tmp) / "streamlit.log") as url,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            for fmt in formats:
                context, page = session(browser, url, files, fmt)
                try:
                    rows[fmt] = {}
                    for title, button, marker in pages:
                        result = first_result(page, title, button, marker, args.timeout)
                        wrong = ERRORS.search(main_text(page))
                        if wrong and not result["sentence"]:  # a result, with an error beside it
                            result["sentence"] = next((a for a in alerts(page) if wrong.group(0) in a), wrong.group(0))
                        rows[fmt][title] = result
                        print(f"  {fmt:12} {title:28} {result}", file=sys.stderr, flush=True)
                finally:
                    context.close()
            browser.close()
    if args.json:
        print(json.dumps({"rows": rows, "trained": trained}, indent=2))
        return 0
    print(
        "Own models in the browser: seconds from pressing each page's button (Explorer: from opening it) to its "
        "first result,"
    )
    print(
        f"or the sentence the page shows instead (headless Chromium, {VIEWPORT['width']}×{VIEWPORT['height']}, "
        f"one session per format, 3×32×32 inputs; whole run {time.perf_counter() - began:.0f} s)"
    )
    for fmt, done in trained.items():
        print(
            f"{TITLES[fmt]}: 10 classes, trained here for {done['seconds']:.0f} s on the fixture's pictures "
            f"({TRAIN_PER_CLASS} a class, seed 0), held-out accuracy {done['accuracy']:.2f} on the 40 uploaded;"
        )
    print(
        "ONNX, .pt2 and TorchScript are the fixture's trained white box (tests/own_world). The black box is the "
        "fixture's other model (.pt2)."
    )
    print(table(rows, [t for t, _, _ in pages]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
