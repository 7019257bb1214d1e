"""Every page on a researcher's own model (Streamlit AppTest): with its labelled images, without them, and
when the model hides its layers. What a person sees in a real browser: tests/test_browser_own_world.py."""

import io

import own_world
import pytest
import torch
from apptest_helpers import uploader
from streamlit.testing.v1 import AppTest
from test_app_pages import MAIN

pytestmark = pytest.mark.slow  # app sessions

PAGES = {  # page → its main button (None: the page shows its result by itself)
    "explorer": None,
    "transfer": "FormSubmitter:transfer-form-Run sweep",
    "features": "FormSubmitter:features-form-Compute",
    "anatomy": "FormSubmitter:anatomy-form-Average",
    "patch": "FormSubmitter:patch-form-Place the patch",
    "jsma": "FormSubmitter:jsma-form-Run JSMA",
    "quiz": "FormSubmitter:quiz-form-Start",
}


def session(own: dict, with_images: bool) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.run()
    at.session_state["own_models"] = own
    at.run()
    at.sidebar.selectbox(key="model").set_value(next(iter(own))).run()
    if with_images:
        uploader(at, "eval_zip").upload("images.zip", own_world.zip_bytes(), "application/zip").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def shown(at) -> int:
    return len(at.get("image")) + len(at.get("plotly_chart"))


def clean(at):
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="module")
def world():
    return session({"own-white": own_world.classifier("white"), "own-black": own_world.classifier("black")}, True)


def test_the_zip_becomes_the_domains_images(world):
    assert world.sidebar.radio(key="eval_data").options == ["images.zip (40 images, uploaded)"]
    selection = world.session_state["selection"]
    assert selection.image_key.endswith("#0") and "(red square)" in selection.image_label
    assert world.sidebar.multiselect(key="blacks").options == ["own-black"]  # only models with its classes
    assert world.sidebar.multiselect(key="blacks").value == ["own-black"]
    world.sidebar.selectbox(key=f"{selection.image_key.split('#')[0]}#class").set_value(7).run()
    assert "(blue cross)" in world.session_state["selection"].image_label


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_shows_results_on_an_own_model(world, page):
    world.switch_page(f"views/{page}.py").run()
    clean(world)
    assert any("Your own domain *shapes*: 10 classes, 40 labelled images" in c.value for c in world.caption)
    if PAGES[page]:
        world.button(key=PAGES[page]).click().run()
        clean(world)
    assert shown(world) > 0


def test_pages_say_what_they_need_without_images_or_a_second_model():
    at = session({"own-white": own_world.classifier("white")}, False)
    said = {}
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        clean(at)
        said[page] = " ".join(m.value for m in [*at.info, *at.warning])
    assert (
        "Transfer needs a second model with these 10 classes: add one under *Bring your own model*" in said["transfer"]
    )
    for page in ("features", "patch", "quiz"):
        assert "needs labelled images of own-white's classes" in said[page] and "Evaluation images" in said[page]
    assert all("--data" not in text and "CLI" not in text for text in said.values())  # the app's own terms


class HidesItsLayers(torch.nn.Module):
    """Data-dependent control flow: a TorchScript model whose layers cannot be reached."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        y = self.conv(x)
        if bool(y.mean() > 100.0):
            y = y * 0.5
        return self.fc(y.flatten(1))


def test_a_model_that_hides_its_layers_keeps_every_page_working():
    from engine.models import formats

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(HidesItsLayers().eval()), buf)
    opaque = formats.load(buf.getvalue(), filename="opaque.pt", meta=own_world.META)
    assert opaque.layers_unavailable
    at = session({"opaque": opaque, "own-black": own_world.classifier("black")}, True)
    assert "aa" not in at.selectbox(key="attack").options and "maskfgsm" not in at.selectbox(key="attack").options
    said = {}
    for page, button in PAGES.items():
        at.switch_page(f"views/{page}.py").run()
        clean(at)
        if button and page not in ("features", "patch"):
            at.button(key=button).click().run()
            clean(at)
        said[page] = " ".join(m.value for m in [*at.info, *at.caption])
    assert "No heat maps for this model" in said["explorer"] and shown(at) >= 0
    assert "AA and the layer sweep are not offered" in said["transfer"]
    for page in ("features", "patch"):
        assert "needs the model's layers" in said[page] and "torch.export" in said[page]
