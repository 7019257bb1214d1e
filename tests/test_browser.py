"""The real app in a real browser: headless Chromium (Debian's package) driven by Playwright.

Starts `streamlit run app/main.py` on a free local port, opens every page, runs
its default computation and checks the result panels rendered. Screenshots go
to a temporary folder, or to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (the
README's pictures). Skipped, with the reason, where Chromium is not installed (under CI, failed).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import BROWSER_TIMEOUT_MS, require

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sys.path.insert(0, str(ROOT / "bench"))
from bench_common import IDLE, at_rest, choose, click_to_run  # noqa: E402

playwright = require("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium: apt-get install chromium"),
]


@pytest.fixture
def local_only(browser):
    """A fresh window (pages with no app session yet) that records every request to another host."""
    context = browser.window(viewport={"width": 1400, "height": 1100})
    outside: list[str] = []
    context.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if urlparse(r.url).hostname not in (None, "127.0.0.1") and not r.url.startswith(("data:", "blob:"))
            else None
        ),
    )
    yield context
    context.close()
    assert not outside, f"the page asked another host: {outside[:5]}"


def _headline(page) -> str:
    return page.locator("h3").first.inner_text()


def _choose(page, label: str, option: str) -> None:
    choose(page, label, option, BROWSER_TIMEOUT_MS / 1000)


def _shown(page, marker):
    """What the page shows for `marker`: its text, or the locator itself."""
    return page.get_by_text(marker).first if isinstance(marker, str) else marker.first


def _settle(page, text, timeout_s: int = 240) -> None:
    """A cold server's first paint is blank: wait for `text` (or a locator), then for the app to be at rest."""
    _shown(page, text).wait_for(timeout=timeout_s * 1000)
    at_rest(page, timeout_s)


def _past_the_gate(page, shows, timeout_s: int = 240) -> None:
    """Wait until the page shows `shows` (text, or a locator), the run that brings it started: where this machine
    prices that run above the app's threshold the page asks first, and the person clicks 'Run anyway'. The price
    is this machine's speed, timed once per model under whatever else it runs, so any run may ask."""
    shown = _shown(page, shows)
    anyway = page.get_by_role("button", name="Run anyway")
    try:
        shown.or_(anyway.first).first.wait_for(timeout=timeout_s * 1000)
        if anyway.count():
            anyway.first.click()
            shown.wait_for(timeout=timeout_s * 1000)
    except playwright.TimeoutError as timeout:
        # What the page showed instead is what tells a slow machine from a wrong page.
        text = page.locator("[data-testid='stMain']").inner_text()[:1500]
        raise AssertionError(f"{shows!r} never showed in {timeout_s} s; the page shows:\n{text}") from timeout


def _result(page, marker, timeout_s: int = 240) -> None:
    """Wait, past the gate, for the run's result: `marker` shown and the app at rest. Where `marker` was already
    on the page (an earlier result's), the gate may only show once the app is at rest: it is passed then."""
    _past_the_gate(page, marker, timeout_s)
    anyway = page.get_by_role("button", name="Run anyway")
    for asked_before in (False, True):
        _settle(page, marker, timeout_s)
        if not anyway.count():
            return
        assert not asked_before, "the page asks 'Run anyway' again after it was clicked"
        anyway.first.click()


def _open(page, link: str, marker: str = "SSIM", timeout_s: int = 240) -> None:
    """Open `link` and wait until the page has settled on `marker` (the Explorer's default: its metrics, after
    the run the link starts, past the gate where this machine prices it as long)."""
    page.goto(link, wait_until="domcontentloaded")
    _result(page, marker, timeout_s)


def _press(page, link: str, button: str, marker: str, timeout_s: int = 240) -> None:
    """Open `link`, wait for its page, click `button` as a person does, and wait for `marker` to show."""
    _open(page, link, button)
    _click_until(page, button, marker, timeout_s)


def _click_until(page, button: str, marker, timeout_s: int = 240) -> None:
    """Click `button` on the open page and wait for the result, `marker`, past the gate."""
    click_to_run(page, page.get_by_role("button", name=button).first)
    _result(page, marker, timeout_s)


def _start(page, button: str, running: str) -> None:
    """Click `button` and wait until the bar shows `running`, past the gate."""
    click_to_run(page, page.get_by_role("button", name=button).first)
    _past_the_gate(page, running, BROWSER_TIMEOUT_MS // 1000)


def _cancel_keeps(page, title: str) -> None:
    """Click Cancel mid-run: the partial result of `title` is shown, with a way to run it to the end."""
    page.get_by_role("button", name="Cancel").click()
    _settle(page, "Cancelled after")
    _no_exception(page)
    assert _headline(page).startswith(title), _headline(page)
    assert page.get_by_role("button", name="Run it to the end").count() == 1


def _no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()


def test_explorer_default_example(server, local_only, shots):
    page = local_only.new_page()
    page.set_viewport_size({"width": 1500, "height": 1400})
    _open(page, server + "/")
    _no_exception(page)
    assert _headline(page).startswith("PGD (ε 0.03, steps 10): Egyptian cat")
    assert page.locator(".js-plotly-plot").count() >= 7  # pictures, heat maps, spectrum, bars of two models
    page.get_by_text("Numbers (JSON)").wait_for()  # the last element of the page
    assert page.locator(".colorbar").count() >= 2  # the heat maps' scale and the spectrum's
    titles = " ".join(page.locator(".js-plotly-plot .xtitle, .js-plotly-plot .ytitle").all_text_contents())
    assert "fx (cycles/px)" in titles and "fy (cycles/px)" in titles  # the spectrum has axes
    wrapped = page.evaluate(
        "() => [...document.querySelectorAll('.annotation-text')].filter("
        "a => a.textContent.includes('Grad-CAM of') && a.querySelectorAll('tspan.line').length > 1).length"
    )
    assert wrapped >= 1  # long titles take two lines instead of running into the next panel's
    page.screenshot(path=str(shots / "explorer.png"), full_page=True)
    page.close()


def test_a_link_reopens_the_perturbation_view_and_lab_pages_keep_the_view(server, local_only):
    """The view radio is in the link, and moving to a lab page keeps model, image and models."""
    page = local_only.new_page()
    _open(page, f"{server}/?{FMNIST}&attack=fgsm&p.eps=0.1&view=amplified")
    assert page.get_by_role("radio", name="amplified |δ|").is_checked()
    page.get_by_role("link", name="JSMA lab").click()
    page.wait_for_function(
        "() => location.pathname.endsWith('/jsma') && location.search.includes('model=fmnist-lenet-0')", polling=100
    )
    assert "image=fmnist%3A0" in page.url or "image=fmnist:0" in page.url, page.url
    _no_exception(page)


def test_fgsm_eps_slider_redraws_without_a_new_attack(server, local_only):
    """'Instant feedback': the FGSM ε slider changes the image and the answers with no attack run (no progress bar)."""
    page = local_only.new_page()
    _open(page, f"{server}/?{FMNIST}&attack=fgsm&p.eps=0.05", "Every ε at once")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.annotation-text')].some(e => e.textContent === 'adversarial at ε 0.05')",
        polling=100,
    )  # Plotly draws last
    page.get_by_role("slider", name="FGSM ε").focus()
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.annotation-text')].some("
        "e => e.textContent.startsWith('adversarial at ε') && !e.textContent.endsWith('ε 0.05'))",
        polling=100,
    )
    assert page.get_by_text("Running FGSM").count() == 0
    _no_exception(page)


def test_method_guide_defines_the_terms_on_screen(server, local_only):
    page = local_only.new_page()
    _open(page, f"{server}/guide", "Method guide")
    for term in ("L0", "SSIM", "uTR", "tSuc", "tTR", "8-bit rounding"):
        assert page.get_by_text(term, exact=True).count() >= 1, term


FMNIST = "model=fmnist-lenet-0&image=fmnist:0"


def test_a_heavy_run_waits_with_its_time_then_counts_to_its_cap_and_cancels(server, local_only):
    """JSMA on a photo (at most 7526 steps here) waits for a click that shows its
    expected time; once started, its bar says 'at most' in whole steps, and Cancel keeps the partial result."""
    page = local_only.new_page()
    page.goto(f"{server}/?attack=jsma", wait_until="domcontentloaded")
    _settle(page, "Run anyway")  # the gate itself: _open would pass it
    assert page.get_by_text("These settings take at most").count() == 1
    assert page.locator("h3").count() == 0  # nothing ran yet
    page.get_by_role("button", name="Run anyway").click()
    bar = page.get_by_text("at most 7526 (stops once it succeeds)").first
    bar.wait_for(timeout=120_000)
    text = bar.inner_text()
    assert text.startswith("Running JSMA (targeted, L0): step ") and "." not in text.split("step ")[1].split(",")[0], (
        text
    )
    _cancel_keeps(page, "JSMA")


def test_cancelling_the_jsma_curve_keeps_a_lower_bound(server, local_only):
    """The JSMA lab's curve, cancelled mid-run, is drawn from what finished and says so."""
    page = local_only.new_page()
    _press(page, f"{server}/jsma?{FMNIST}", "Run JSMA", "changed features in red")
    page.get_by_label("Images", exact=True).fill("500")
    page.get_by_label("Images", exact=True).press("Enter")
    _settle(page, "Compute the curve")
    _start(page, "Compute the curve", "JSMA on every image: step")
    page.get_by_role("button", name="Cancel").click()
    _settle(page, "the curve is a lower bound")
    _no_exception(page)
    page.locator(".js-plotly-plot").first.wait_for()  # the curve of what finished (Plotly draws last)


def test_jsma_lab_table_and_robustness(server, local_only):
    """On the JSMA lab, the increasing-vs-decreasing table and R(F) run from their button,
    with the paper's figures beside them."""
    page = local_only.new_page()
    page.set_viewport_size({"width": 1500, "height": 1400})
    _press(page, f"{server}/jsma?{FMNIST}", "Run JSMA", "changed features in red")
    _click_until(page, "Compute table and R(F)", "R(F) = min A(X, t)")
    _no_exception(page)
    page.get_by_text("Most exposed pair (smallest A)").first.wait_for()
    assert page.get_by_text("MNIST LeNet at Υ = 14.5 %").count() >= 1


def test_switching_the_image_keeps_the_chosen_attack(server, local_only):
    """After FGSM, a new image is attacked with FGSM, and the headline says so."""
    page = local_only.new_page()
    _open(page, f"{server}/?{FMNIST}&attack=fgsm&p.eps=0.1")
    assert _headline(page).startswith("FGSM (ε 0.1)"), _headline(page)
    _choose(page, "Class", "Sneaker")
    _result(page, "SSIM")
    page.wait_for_function(
        "() => document.querySelector('h3') && document.querySelector('h3').innerText.includes('Sneaker')", polling=100
    )
    assert _headline(page).startswith("FGSM (ε 0.1): Sneaker"), _headline(page)
    _no_exception(page)


def test_targeted_headline_says_whether_the_target_was_reached(server, local_only):
    """A missed target is never reported as 'X → X (not fooled)' alone."""
    page = local_only.new_page()
    _open(page, f"{server}/?{FMNIST}&attack=pgd&p.eps=0.01&p.steps=2&target=7")
    text = _headline(page)
    assert "target Sneaker" in text and ("reached" in text or "missed" in text), text
    _open(page, f"{server}/?{FMNIST}&attack=pgd&p.eps=0.3&p.steps=20&target=7")
    assert _headline(page).endswith("target Sneaker reached"), _headline(page)


def test_a_result_below_8_bit_precision_says_so(server, local_only):
    """DeepFool on chelsea moves pixels by less than half a level: the PNG would not fool."""
    page = local_only.new_page()
    _open(page, f"{server}/?attack=deepfool")
    assert _headline(page).startswith("DeepFool")
    assert page.get_by_text("8-bit rounding").count() >= 1
    _no_exception(page)


EIGHT = [
    ("fgsm", {"eps": 0.1}, 0),
    ("bim", {"eps": 0.15, "steps": 4}, 1),
    ("pgd", {"steps": 4}, 2),
    ("mifgsm", {"steps": 4}, 3),
    ("deepfool", {"steps": 5}, 4),
    ("cw", {"steps": 10}, 5),
    ("square", {"n_queries": 30}, 6),
    ("maskfgsm", {}, 7),
]


def test_eight_browsers_at_once_each_get_what_they_get_alone(server, browser):
    """Eight people, eight attacks on eight images, at the same time: each headline is the engine's own."""
    from engine import attacks, models
    from engine.datasets import fashion_mnist
    from engine.report import headline, run_record

    model = models.load("fmnist-lenet-0", device="cpu")
    x = fashion_mnist.test_split()[0]
    expected = {}
    for attack, params, i in EIGHT:
        words = headline(run_record(attacks.run(attack, model, x[i : i + 1], **params), model))
        expected[attack] = f"{words['title']} — {words['verdict']}"
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in EIGHT]
    try:
        pages = []
        for context, (attack, params, i) in zip(contexts, EIGHT):
            page = context.new_page()
            query = "&".join(f"p.{k}={v}" for k, v in params.items())
            page.goto(
                f"{server}/?model=fmnist-lenet-0&image=fmnist:{i}&attack={attack}&{query}",
                wait_until="domcontentloaded",
            )
            pages.append(page)
        for page, (attack, _, _) in zip(pages, EIGHT):
            _result(page, "SSIM", timeout_s=300)
            _no_exception(page)
            assert _headline(page) == expected[attack], (attack, _headline(page), expected[attack])
    finally:
        for context in contexts:
            context.close()


def test_a_heat_map_method_is_picked_and_every_method_compared_with_its_faithfulness(server, local_only, shots):
    """At 1280×720: the method picker redraws the heat maps by that method, and the comparison shows every
    method's pair of maps, the deletion and insertion curves and the table of areas."""
    page = local_only.new_page()
    page.set_viewport_size({"width": 1280, "height": 720})
    _open(page, f"{server}/?model=fmnist-lenet-0&image=fmnist:0")
    _choose(page, "Heat-map method", "Integrated Gradients")
    page.wait_for_function(  # the heat maps' titles name the method (wrapped titles join without their spaces)
        "() => [...document.querySelectorAll('.annotation-text')].some("
        "a => a.textContent.replace(/ /g, '').includes('clean·IntegratedGradientsof'))",
        polling=100,
    )
    page.wait_for_function(IDLE, polling=100)
    page.get_by_text("Every heat-map method side by side").click()
    # A click that lands while the app still reruns for the method just picked is lost: click at rest.
    page.get_by_role("button", name="Compare the methods").wait_for()
    page.wait_for_function(IDLE, polling=100)
    _click_until(page, "Compare the methods", "Faithfulness")
    _no_exception(page)
    for method in (
        "Grad-CAM",
        "Grad-CAM++",
        "Score-CAM",
        "XGrad-CAM",
        "Eigen-CAM",
        "SmoothGrad",
        "Integrated Gradients",
    ):
        heading = page.locator("[data-testid=stMarkdown] strong").filter(has_text=re.compile(f"^{re.escape(method)}$"))
        assert heading.count() == 1, method  # each method once, with its pair of pictures
    assert page.locator(".js-plotly-plot").count() >= 9 + 2 + 1  # 9 pairs, 2 curves, the heat maps above
    titles = " ".join(page.locator(".js-plotly-plot .ytitle").all_text_contents())
    assert "deletion" in titles and "insertion" in titles
    assert page.get_by_text("random (control)").count() >= 1
    page.screenshot(path=str(shots / "heat-methods.png"), full_page=True)
    page.locator("[data-testid=stMarkdown] strong").filter(
        has_text=re.compile("^Grad-CAM$")
    ).scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "heat-methods-pairs.png"))
    page.get_by_text("Faithfulness").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "heat-methods-faithfulness.png"))
    page.close()


def test_switching_the_model_keeps_the_attack_and_a_bad_upload_keeps_the_result(server, local_only):
    """Switching the model keeps the chosen attack too, and an upload as a person makes one: a broken file is
    refused in words."""
    page = local_only.new_page()
    _open(page, f"{server}/?attack=fgsm&p.eps=0.01")
    assert _headline(page).startswith("FGSM (ε 0.01): Egyptian cat"), _headline(page)
    _choose(page, "White-box model", "efficientnet-lite1")
    page.wait_for_function("() => location.search.includes('model=efficientnet-lite1')", timeout=120_000, polling=100)
    _result(page, "SSIM")
    assert _headline(page).startswith("FGSM (ε 0.01)"), _headline(page)
    page.get_by_role("radiogroup", name="Source image").get_by_text("Upload").click()
    _settle(page, "Image file")
    page.locator("[data-testid='stFileUploader']").filter(has_text="Image file").locator(
        "input[type=file]"
    ).set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n not really"}]
    )
    _settle(page, "cannot be used")
    _no_exception(page)
    assert _headline(page).startswith("FGSM (ε 0.01)")  # the gallery photo and its result stay


def test_an_all_zero_heat_map_is_explained(server, local_only):
    """A flat Grad-CAM says 'all zero' instead of a blank square. (A lopsided mask's warning is the engine's text,
    tests/test_page_computations.py: averaging a photo's δ over ImageNet models to show it here took a minute.)"""
    page = local_only.new_page()
    _open(page, f"{server}/?model=fmnist-lenet-0&image=fmnist:1")  # its clean map is 0
    notes = " ".join(page.locator(".js-plotly-plot .annotation-text").all_text_contents())
    assert "all zero: no positive" in notes, notes
    _no_exception(page)


def test_the_two_cosine_maps_share_one_colour_scale(server, local_only):
    """Single-model and noisy multi-model similarity are drawn on the same −1…1 scale."""
    page = local_only.new_page()
    _press(page, f"{server}/anatomy?{FMNIST}", "Average", "Similarity across attacks")
    _click_until(
        page, "Compare BIM, C&W and DeepFool", page.locator(".js-plotly-plot").filter(has_text="cosine similarity")
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter("
        "p => (p.layout.title?.text || '').includes('cosine similarity')).length === 2",
        timeout=240_000,
        polling=100,
    )
    scales = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter("
        "p => (p.layout.title?.text || '').includes('cosine similarity'))"
        ".map(p => [p.data[0].zmin, p.data[0].zmax])"
    )
    assert scales == [[-1, 1], [-1, 1]], scales
    _no_exception(page)


def test_anatomy_targeted_toggle_shows_what_the_judges_see(server, local_only):
    """The Targeted toggle averages a targeted δ; each setting's panel names the judges' verdict
    and the generation-effect table lists the target-class share."""
    page = local_only.new_page()
    _open(page, f"{server}/anatomy?{FMNIST}", "Average")
    page.get_by_text("Targeted (generation effect)").click()
    _click_until(page, "Average", "Generation effect")
    titles = " ".join(page.locator(".js-plotly-plot .annotation-text").all_text_contents())
    assert titles.count("judged") == 3, titles  # single, multi, noisy multi-model
    assert page.get_by_text("target class share").count() >= 1
    _no_exception(page)


def _sidebar_section(page, title: str) -> None:
    page.locator("[data-testid='stSidebar'] summary").filter(has_text=title).click()


def test_a_data_folder_feeds_the_transfer_lab_and_a_hostile_zip_is_refused(server, local_only, tmp_path):
    """The operator's data root lists its datasets; a zip with '..' in a path is refused in plain words."""
    import zipfile

    page = local_only.new_page()
    _open(page, f"{server}/transfer", "Run sweep")
    _sidebar_section(page, "Evaluation images")
    page.get_by_text("three-photos (3 images, imagefolder)").click()
    _settle(page, "Run sweep")
    _click_until(page, "Run sweep", "tSuc on efficientnet-lite1", timeout_s=400)
    _no_exception(page)
    assert page.get_by_text("Only 3 images count here").count() == 1  # all three: both models get them right
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escape/cat.png", (ROOT / "assets" / "images" / "chelsea.png").read_bytes())
    if page.get_by_text("Labelled images (.zip").count() == 0:  # the rerun folded the section again
        _sidebar_section(page, "Evaluation images")
    page.locator("[data-testid='stSidebar'] input[type='file']").last.set_input_files(str(evil))
    page.get_by_text("..").first.wait_for()
    _no_exception(page)
    assert page.get_by_text("three-photos (3 images, imagefolder)").count() == 1  # the choice is kept


def test_an_uploaded_torchscript_model_is_attacked_in_the_explorer(server, local_only, tmp_path):
    """A TorchScript file plus its JSON sidecar becomes a white-box model with heat maps."""
    import json

    import torch

    from engine import models
    from engine.datasets import fashion_mnist

    zoo = models.load("fmnist-lenet-0", device="cpu")
    path = tmp_path / "my-lenet.pt"
    torch.jit.trace(zoo.net, torch.zeros(1, *zoo.input_size)).save(str(path))
    sidecar = tmp_path / "my-lenet.json"
    sidecar.write_text(
        json.dumps(
            {
                "input_size": list(zoo.input_size),
                "mean": [fashion_mnist.MEAN],
                "std": [fashion_mnist.STD],
                "class_names": fashion_mnist.CLASS_NAMES,
                "domain": zoo.domain,
            }
        )
    )
    import browser_own_model as byo
    from playwright.sync_api import expect

    page = local_only.new_page()
    _open(page, f"{server}/?{FMNIST}")
    byo.open_section(page, "Bring your own model")
    byo.upload(page, "Model file", path)
    expect(page.get_by_label("Name", exact=True)).to_have_value("my-lenet", timeout=120_000)  # the form is the file's
    byo.wait_idle(page, 120)
    byo.upload(page, "Sidecar JSON", sidecar)
    expect(page.get_by_label("Input size C,H,W", exact=True).last).to_have_value("1, 28, 28", timeout=120_000)
    byo.wait_idle(page, 120)
    page.get_by_role("button", name="Add model").click()
    page.get_by_text("Added my-lenet").first.wait_for()
    _choose(page, "White-box model", "my-lenet")
    page.wait_for_function("() => location.search.includes('model=my-lenet')", polling=100)
    _result(page, "SSIM")
    _no_exception(page)
    assert _headline(page).startswith("PGD"), _headline(page)
    assert page.locator(".colorbar").count() >= 1  # Grad-CAM through the model's own layers


def test_one_click_compares_a_plain_models_perturbation_with_its_robust_twins(server, local_only, shots):
    """On a model with an adversarially trained twin, one click runs the same attack on the twin and
    shows both perturbations, plain first; another image keeps the button, not a stale comparison."""
    page = local_only.new_page()
    _open(page, f"{server}/?model=fmnist-lenet-0&image=fmnist:0&attack=pgd")
    _click_until(page, "Compare with fmnist-lenet-robust-0", "(robust):")
    assert page.get_by_text("(plain):").count() == 1
    page.get_by_text("(robust):").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "explorer-robust-twin.png"), full_page=True)
    _no_exception(page)
    _open(page, f"{server}/?model=fmnist-lenet-0&image=fmnist:1&attack=pgd")
    assert page.get_by_role("button", name="Compare with fmnist-lenet-robust-0").count() == 1
    assert page.get_by_text("(robust):").count() == 0


def test_a_second_session_waits_its_turn_in_view_and_can_leave_the_queue(server, browser):
    """Jobs compute one at a time; a person whose job waits sees its place in the queue, and Cancel
    while waiting leaves the queue at once with a page that still works, and the first job going on."""
    # PGD runs all its steps (C&W stops once it succeeds, and once finished before the second session came):
    # 1,000 on a photo take half a minute or more, and both jobs are cancelled long before.
    link = f"{server}/?model=efficientnet-lite0&image=chelsea&attack=pgd&p.steps=1000"
    first, second = (browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(2))
    try:
        a, b = first.new_page(), second.new_page()
        for page, shows in ((a, "Running PGD"), (b, "queued, 1 job ahead")):
            page.goto(link, wait_until="domcontentloaded")
            _past_the_gate(page, shows, timeout_s=120)
        b.get_by_role("button", name="Cancel").click()
        _settle(b, "Cancelled after")
        _no_exception(b)
        a.get_by_text("Running PGD").first.wait_for()  # the first job goes on
        a.get_by_role("button", name="Cancel").click()
        _settle(a, "Cancelled after")  # and keeps what it computed
        assert _headline(a).startswith("PGD")
        _no_exception(a)
    finally:
        first.close()
        second.close()


def test_the_quiz_is_taken_by_clicking_and_its_csv_holds_the_clicks(server, local_only, shots):
    """Start a short quiz, answer each question by clicking a class (skip one), see the score,
    and download the answers: the CSV's rows are the clicks, the skipped question unanswered."""
    import csv

    page = local_only.new_page()
    page.set_viewport_size({"width": 1400, "height": 1200})
    _open(page, f"{server}/quiz?{FMNIST}", "Start")
    page.get_by_label("Questions", exact=True).fill("3")
    _click_until(page, "Start", "Question 1 of 3", timeout_s=600)
    clicks = []
    for k in range(3):
        _settle(page, f"Question {k + 1} of 3")
        _no_exception(page)
        assert page.get_by_text("noisy multi-model").count() == 0  # blinded: the kind is not shown
        if k == 1:
            page.get_by_role("button", name="Skip").click()
            clicks.append((str(k + 1), ""))
            continue
        # a different place each time
        option = page.locator("[data-testid='stForm'] [data-testid='stRadioOption']").nth(k + 2)
        name = option.inner_text().strip()
        option.click()
        page.get_by_role("button", name="Next").click()
        clicks.append((str(k + 1), name))
    _settle(page, "Your score")
    _no_exception(page)
    assert page.get_by_text("of 2 (").count() == 1  # two answered; the skipped one is not scored as wrong
    assert page.get_by_text("Unanswered (not counted as wrong): question 2.").count() == 1
    with page.expect_download() as info:
        page.get_by_role("button", name="Download answers (CSV)").click()
    rows = list(csv.DictReader(open(info.value.path(), encoding="utf-8")))
    assert [(r["question"], r["answer"]) for r in rows] == clicks
    assert {r["kind"] for r in rows} <= {"single-model", "noisy multi-model"} and rows[1]["correct"] == ""
    page.screenshot(path=str(shots / "quiz.png"), full_page=True)


def _view_title(page) -> str:
    return page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.layout.title?.text || '')"
        ".find(t => t.includes('patch at')) || ''"
    )


def test_patch_distance_runs_its_default_and_the_slider_moves_the_patch(server, local_only, shots):
    """The page runs its default experiment (curves with the random control), and moving the
    distance slider moves the patch in the photo view and the marker on the curves. (Streamlit wraps Plotly
    titles in <b>: they are matched by what they include.)"""
    page = local_only.new_page()
    page.set_viewport_size({"width": 1500, "height": 1400})
    _press(page, f"{server}/patch?{FMNIST}", "Place the patch", "Numbers per distance")
    _no_exception(page)
    names = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(p => p.data.map(d => d.name))"
    )
    assert any(n.startswith("random positions") for n in names) and "share flipped" in names, names
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].some("
        "p => (p.layout.title?.text || '').includes('patch at '))",
        polling=100,
    )
    # The default view shows a patch that fits the image, never a skipped spot.
    assert page.get_by_text("this placement would leave the image").count() == 0
    page.get_by_text("the model now says").first.wait_for()
    before = _view_title(page)
    start = float(re.search(r"patch at ([\d.]+) px", before).group(1))
    page.get_by_role("slider", name="Distance (px)").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        f"() => {{ const t = [...document.querySelectorAll('.js-plotly-plot')].map(p => p.layout"
        f".title?.text || '').find(t => t.includes('patch at')) || ''; return t && t !== {before!r}; }}",
        polling=100,
    )
    _settle(page, "Numbers per distance")
    after = _view_title(page)
    moved = float(re.search(r"patch at ([\d.]+) px", after).group(1))
    assert moved > start, (before, after)
    # The curves mark the distance the view shows (Plotly redraws them a moment after the view).
    page.wait_for_function(
        "() => JSON.stringify([...document.querySelectorAll('.js-plotly-plot')].filter(p => (p.layout"
        ".title?.text || '').includes('margin')).map(p => p.layout.shapes.filter(s => s.yref === "
        f"'paper').map(s => s.x0))) === '[[{moved:g}]]'",
        polling=100,
    )
    page.get_by_role("slider", name="Direction (°, counter-clockwise from right)").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.js-plotly-plot')].some("
        f"p => (p.layout.title?.text || '').includes('patch at') && !(p.layout.title?.text || '')"
        f".includes({after.split(',')[-1].strip()!r}))",
        polling=100,
    )
    _no_exception(page)
    page.screenshot(path=str(shots / "patch.png"), full_page=True)
    page.close()
