"""The Explorer page end to end, headless (Streamlit AppTest), on the offline default model."""

from pathlib import Path

import pytest
from apptest_helpers import uploader  # noqa: E402
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow  # an app session on the ImageNet model per test

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


@pytest.fixture
def app():
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_first_screen_already_shows_an_attacked_sample(app):
    assert not app.error
    assert "→" in app.subheader[0].value
    values = metrics(app)
    assert float(values["L∞"]) <= 0.03 + 1e-6
    # Pictures, heat maps, spectrum, and before/after bars for the white-box and the default black-box model.
    assert len(app.get("plotly_chart")) == 3 + 2 * 2
    assert len(app.get("download_button")) == 5


def test_running_fgsm_from_the_form(app):
    app.selectbox(key="attack").set_value("fgsm").run()
    app.number_input(key="imagenet.fgsm.eps").set_value(0.01)  # inside a form: sent on submit
    app.button(key="FormSubmitter:attack-form-fgsm-Run attack").click().run()
    assert not app.exception and not app.error
    assert app.session_state["last_run_key"].attack == "fgsm"
    assert float(metrics(app)["L∞"]) == pytest.approx(0.01, abs=1e-4)
    assert metrics(app)["Iterations"] == "1"


def test_targeted_run_and_switching_image(app):
    app.selectbox(key="gallery_image").set_value("coffee").run()
    app.selectbox(key="pgd.target").set_value(1)
    app.button(key="FormSubmitter:attack-form-pgd-Run attack").click().run()
    assert not app.exception
    assert app.subheader[0].value.endswith("→ goldfish 100% — target goldfish reached")


def test_display_control_does_not_rerun_the_attack(app):
    before = app.session_state["last_run_key"]
    n = len(app.session_state["attack_results"])
    app.radio(key="delta_view").set_value("signed δ").run()
    assert app.session_state["last_run_key"] == before
    assert len(app.session_state["attack_results"]) == n


def test_bad_upload_shows_an_error_box_and_keeps_working(app):
    app.radio(key="image_source").set_value("Upload").run()
    uploader(app).upload("broken.png", b"\x89PNG\r\n\x1a\n garbage", "image/png").run()
    assert not app.exception
    assert any("cannot be used" in e.value for e in app.error)
    assert "→" in app.subheader[0].value  # the gallery photo is still attacked and shown


def test_good_upload_is_attacked(app):
    from engine import images

    data = images.png_bytes(images.to_uint8(images.to_tensor(images.decode(images.gallery()["coffee"]))))
    app.radio(key="image_source").set_value("Upload").run()
    uploader(app).upload("coffee.png", data, "image/png").run()
    assert not app.exception and not app.error
    assert app.session_state["selection"].image_label == "coffee.png"
    assert app.subheader[0].value.startswith("PGD (ε 0.03, steps 10): espresso")


def test_fashion_mnist_model_uses_the_test_set(app):
    app.sidebar.selectbox(key="model").set_value("fmnist-lenet-0").run()
    assert not app.exception and not app.error
    app.sidebar.selectbox(key="fmnist_class").set_value(9).run()  # ankle boots
    selection = app.session_state["selection"]
    assert selection.image_key.startswith("fmnist:") and "Ankle boot" in selection.image_label
    # Domain defaults: the thesis' ε = 0.2 for MNIST-like images.
    assert float(metrics(app)["L∞"]) == pytest.approx(0.2, abs=1e-4)
    assert app.subheader[0].value.startswith("PGD (ε 0.2, steps 10): Ankle boot")


@pytest.mark.parametrize("attack", ["aa", "jsma", "maskfgsm"])
def test_seed_attacks_run_from_the_form(app, attack):
    app.sidebar.selectbox(key="model").set_value("fmnist-lenet-0").run()
    app.selectbox(key="attack").set_value(attack).run()
    app.button(key=f"FormSubmitter:attack-form-{attack}-Run attack").click().run()
    assert not app.exception and not app.error
    assert app.session_state["last_run_key"].attack == attack
    assert "→" in app.subheader[0].value


def test_aa_on_an_uploaded_photo(app):
    from engine import images

    data = images.png_bytes(images.to_uint8(images.to_tensor(images.decode(images.gallery()["camera"]))))
    app.radio(key="image_source").set_value("Upload").run()
    uploader(app).upload("camera.png", data, "image/png").run()
    app.selectbox(key="attack").set_value("aa").run()
    app.button(key="FormSubmitter:attack-form-aa-Run attack").click().run()
    assert not app.exception and not app.error
    assert len(app.session_state["uploaded_images"]) == 1
    assert app.session_state["last_run_key"].attack == "aa"
