"""Bring your own model in the app (Streamlit AppTest): one uploader for every format, the form prefilled from
what the file says, the model added, picked as the white box, given its labelled images, and attacked; bad
files answered with one sentence while the app keeps working."""

import io
from pathlib import Path

import own_world
import pytest
import torch
from apptest_helpers import uploader
from streamlit.testing.v1 import AppTest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]  # app sessions; jit is deprecated

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
ADD = "FormSubmitter:own-model-Add model"
META = own_world.META


def fresh() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at


def ok(at):
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def sentence(text: str) -> bool:
    """One plain sentence for a person, not a library's message or a trace."""
    return "\n" not in text and "Traceback" not in text and "Error(" not in text and len(text) < 400


def upload_model(at, name: str, data: bytes) -> str:
    """Choose `name` in the model uploader; the line that says what the file is."""
    uploader(at, "own_file").upload(name, data, "application/octet-stream").run()
    assert not at.exception, at.exception
    return next(c.value for c in at.sidebar.caption if c.value.startswith("**The file:** "))


def fill(at, **fields):
    for key, value in fields.items():
        widget = at.sidebar.text_area(key=key) if key == "own_names" else at.sidebar.text_input(key=key)
        widget.set_value(value)


def add(at):
    at.sidebar.button(key=ADD).click().run()
    assert not at.exception, at.exception


def own_fields(**extra):
    return {
        "own_size": "3,32,32",
        "own_mean": "0.45,0.45,0.45",
        "own_std": "0.25,0.25,0.25",
        "own_names": "\n".join(META["class_names"]),
        **extra,
    }


def pick_images_and_attack(at, model: str):
    """White box `model`, the fixture's zip under Evaluation images, then the Explorer's FGSM on its first image."""
    at.sidebar.selectbox(key="model").set_value(model).run()
    ok(at)
    uploader(at, "eval_zip").upload("images.zip", own_world.zip_bytes(), "application/zip").run()
    ok(at)
    assert at.session_state["selection"].image_key.endswith("#0")
    at.selectbox(key="attack").set_value("fgsm").run()
    at.button(key="FormSubmitter:attack-form-fgsm-Run attack").click().run()
    ok(at)
    spec = at.session_state["last_run_key"]
    assert spec.model == model and spec.image_key.endswith("#0")
    assert at.session_state["attack_results"][spec].x_adv.shape == (1, 3, 32, 32)


def test_torchscript_needs_its_metadata_then_loads_and_is_attacked_on_its_images():
    at = fresh()
    said = upload_model(at, "white.pt", own_world.torchscript_bytes())
    assert said == "**The file:** TorchScript archive; it says nothing about its input or classes."
    # Nothing is guessed: the form is blank where the file is silent, and says what must be filled.
    assert at.sidebar.selectbox(key="own_arch").value == "the file's own"
    assert [at.session_state[k] for k in ("own_size", "own_mean", "own_std", "own_names", "own_domain")] == [""] * 5
    assert at.session_state["own_name"] == "white"
    assert any(c.value.startswith("Required: input size (e.g. 3,32,32), mean (e.g.") for c in at.sidebar.caption)
    add(at)
    said = "white.pt does not say its input size, mean, std: fill them in above"
    assert [e.value for e in at.sidebar.error] == [said]
    fill(at, **own_fields(own_domain="shapes"))
    add(at)
    ok(at)
    model = at.session_state["own_models"]["white"]
    assert model.domain == "shapes" and model.class_names == META["class_names"]
    assert [t.value for t in at.toast] == ["Added white"]
    note = at.sidebar.success[0].value
    assert note.startswith("Added **white**: 10 classes (red square, red disk, red cross, …), domain *shapes*.")
    assert "white-box model" in note and "Evaluation images" in note
    pick_images_and_attack(at, "white")
    assert at.sidebar.success[0].value == note  # still in view after the reruns that followed


def test_pt2_says_its_input_size_and_a_second_model_joins_its_domain():
    at = fresh()
    said = upload_model(at, "white.pt2", own_world.export_bytes())
    assert said == "**The file:** torch.export program, input 3×32×32."
    assert at.session_state["own_size"] == "3, 32, 32" and at.session_state["own_mean"] == ""
    assert any(c.value.startswith("Required: mean (e.g.") for c in at.sidebar.caption)
    fill(at, **own_fields(own_domain="shapes"))
    add(at)
    ok(at)
    # The black box as TorchScript, its domain left blank: the same classes put it in the white box's domain.
    upload_model(at, "black.pt", own_world.torchscript_bytes("black"))
    fill(at, **own_fields())
    add(at)
    ok(at)
    own = at.session_state["own_models"]
    assert own["black"].domain == own["white"].domain == "shapes"
    at.sidebar.selectbox(key="model").set_value("white").run()
    ok(at)
    assert "black" in at.sidebar.multiselect(key="blacks").options
    pick_images_and_attack(at, "white")


def test_a_sidecar_fills_the_form_and_a_bad_one_gets_a_sentence():
    import json

    at = fresh()
    upload_model(at, "white.pt", own_world.torchscript_bytes())
    uploader(at, "own_sidecar").upload("white.json", b"{not json", "application/json").run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.sidebar.error]
    assert errors == ["white.json is not a JSON file; save the metadata as a JSON object"]
    uploader(at, "own_sidecar").upload("white.json", json.dumps(META).encode(), "application/json").run()
    ok(at)
    assert at.session_state["own_size"] == "3, 32, 32" and at.session_state["own_std"] == "0.25, 0.25, 0.25"
    assert at.session_state["own_names"].splitlines() == META["class_names"]
    assert at.session_state["own_domain"] == "shapes"
    assert not any(c.value.startswith("Required:") for c in at.sidebar.caption)
    add(at)
    ok(at)
    assert at.session_state["own_models"]["white"].domain == "shapes"


def test_resnet18_state_dict_is_recognised_and_loaded_at_the_size_the_form_says():
    import torchvision

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), buf)
    at = fresh()
    said = upload_model(at, "tuned.pth", buf.getvalue())
    assert said == "**The file:** weights that fit torchvision resnet18, 10 classes."
    # Prefilled with what the architecture says, consistently (its ImageNet input and statistics), not a domain.
    assert at.sidebar.selectbox(key="own_arch").value == "resnet18"
    assert at.session_state["own_size"] == "3, 224, 224"
    assert at.session_state["own_mean"] == "0.485, 0.456, 0.406" and at.session_state["own_domain"] == ""
    fill(at, own_size="3,32,32", own_names="\n".join(META["class_names"]), own_domain="shapes")
    add(at)
    ok(at)
    model = at.session_state["own_models"]["tuned"]
    assert model.input_size == (3, 32, 32) and model.domain == "shapes"
    pick_images_and_attack(at, "tuned")


@pytest.fixture(scope="module")
def script():
    return own_world.torchscript_bytes()


@pytest.mark.parametrize("case", ["torchscript as resnet18", "truncated", "text"])
def test_bad_files_get_one_sentence_and_the_app_keeps_working(case, script):
    at = fresh()
    if case == "torchscript as resnet18":
        upload_model(at, "white.pt", script)
        fill(at, **own_fields())
        at.sidebar.selectbox(key="own_arch").set_value("resnet18")
        add(at)
        expect = "white.pt is a TorchScript archive, which holds its own network"
    else:
        name, data = (
            ("white.pt", script[: len(script) // 3])
            if case == "truncated"
            else ("notes.pt", b"these are my notes, not a model\n" * 20)
        )
        uploader(at, "own_file").upload(name, data, "application/octet-stream").run()
        assert not at.exception, at.exception
        expect = f"{name} is not a model file this app reads"
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith(expect) and sentence(errors[0]), errors
    assert not at.session_state["own_models"]
    at.switch_page("views/transfer.py").run()  # another page, on the default model: the app still works
    assert not at.exception, at.exception
    assert at.title[0].value == "Transfer lab"
