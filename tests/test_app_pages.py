"""Every page, URL state, cancellation, bring-your-own model and two concurrent sessions (Streamlit AppTest).

Pages run on a Fashion-MNIST model so that each analysis finishes in seconds.
"""

import builtins
import io
import threading
from pathlib import Path

import pytest
import torch
from apptest_helpers import uploader  # noqa: E402
from conftest import hooks_left
from streamlit.testing.v1 import AppTest

from engine import attacks, domains, models
from engine.datasets import fashion_mnist

pytestmark = pytest.mark.slow  # app sessions

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
FMNIST = "fmnist-lenet-0"


def fresh(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=300)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def fm():
    at = fresh({"model": FMNIST})
    assert at.session_state["selection"].model == FMNIST
    return at


def captions_of(at) -> list[str]:
    return [c for image in at.get("image") for c in image.captions]


def ok(at):
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_transfer_lab_sweeps_and_picks_a_target_image(fm):
    fm.switch_page("views/transfer.py").run()
    ok(fm)
    assert fm.sidebar.multiselect(key="blacks").value == ["fmnist-resnet-1"]
    fm.multiselect(key="transfer.methods").set_value(["aa", "tmifgsm"])
    fm.number_input(key="transfer.n").set_value(20)
    fm.multiselect(key="transfer.eps").set_value([0.05, 0.1])
    fm.button(key="FormSubmitter:transfer-form-Run sweep").click().run()
    ok(fm)
    assert len(fm.get("plotly_chart")) == 4  # error, uTR, tSuc, tTR
    captions = captions_of(fm)
    assert any(c.startswith("source: ") for c in captions)
    assert any(c.startswith("target image, class ") for c in captions)  # AA's farthest-in-class pick, shown
    assert {r["target_image"] for r in fm.dataframe[0].value.to_dict("records") if r["method"] == "aa"} == {"farthest"}
    fm.selectbox(key="transfer.pick_rule").set_value("nearest-mean").run()
    ok(fm)
    assert any("nearest the class mean at this layer" in c for c in captions_of(fm))


def test_feature_space_plane_and_separability(fm):
    fm.switch_page("views/features.py").run()
    ok(fm)
    assert len(fm.get("plotly_chart")) == 0 and fm.info  # nothing runs before Compute
    fm.number_input(key="features.n").set_value(100)
    fm.button(key="FormSubmitter:features-form-Compute").click().run()
    ok(fm)
    assert len(fm.get("plotly_chart")) == 2
    labels = {m.label for m in fm.metric}
    assert "AA reached the target class" in labels and "Plane distance to target, before" in labels


def test_anatomy_averages_masks_and_extras(fm):
    fm.switch_page("views/anatomy.py").run()
    ok(fm)
    fm.number_input(key="anatomy.copies").set_value(4)
    fm.number_input(key="anatomy.steps").set_value(5)
    fm.button(key="FormSubmitter:anatomy-form-Average").click().run()
    ok(fm)
    assert len(fm.get("plotly_chart")) == 4  # averages, area sweep, its derivative, L∞ sweep
    assert "Recognisability" in [h.value for h in fm.header]
    assert fm.number_input(key="anatomy.choices").value == 10  # Fashion-MNIST's judges choose among every class
    fm.number_input(key="anatomy.choices").set_value(2).run()  # judged again among 2, no new averaging
    ok(fm)
    table = next(d.value for d in fm.dataframe if "judged as" in d.value)
    assert set(table["setting"]) == {"single-model", "multi-model", "noisy multi-model"}
    assert all(len(among.split(", ")) == 2 for among in table["among"])
    assert all(judged in among.split(", ") for judged, among in zip(table["judged as"], table["among"]))
    fm.slider(key="anatomy.grow").set_value(2).run()  # a display-side change: no new averaging
    ok(fm)
    fm.number_input(key="anatomy.cb_copies").set_value(8)
    fm.button(key="anatomy.cb_go").click().run()
    ok(fm)
    fm.button(key="anatomy.noise_go").click().run()
    ok(fm)
    assert len(fm.get("plotly_chart")) == 4 + 1 + 2  # + checkerboard gallery + one histogram per model


def test_anatomy_targeted_square_from_zero(fm):
    """The generation-effect toggle shows what the judges see in the targeted δ; Square averages from δ = 0."""
    fm.switch_page("views/anatomy.py").run()
    fm.selectbox(key="anatomy.attack").set_value("square")
    fm.number_input(key="anatomy.copies").set_value(2)
    fm.number_input(key="anatomy.queries").set_value(20)
    fm.toggle(key="anatomy.targeted").set_value(True)
    fm.selectbox(key="anatomy.target").set_value("Bag")
    fm.button(key="FormSubmitter:anatomy-form-Average").click().run()
    ok(fm)
    assert "Generation effect" in [h.value for h in fm.header]
    table = fm.dataframe[0].value
    assert set(table["setting"]) == {"single-model", "multi-model", "noisy multi-model"}
    assert set(table["target class share"]) <= {"0%", "100%"}  # one image: each judge names the target or not
    model = models.load(FMNIST, device="cpu")
    x = domains.of(model).load(fm.session_state["selection"].image_key, model)
    with torch.no_grad():
        own = model.class_names[int(model(x).argmax())]
    fm.selectbox(key="anatomy.target").set_value(own)  # the class the model already sees: nothing to aim at
    fm.button(key="FormSubmitter:anatomy-form-Average").click().run()
    assert not fm.exception and any("pick another target" in e.value for e in fm.error)


def test_jsma_lab_replays_the_changed_pixels(fm):
    fm.switch_page("views/jsma.py").run()
    ok(fm)
    fm.button(key="FormSubmitter:jsma-form-Run JSMA").click().run()
    ok(fm)
    last = fm.slider(key="jsma.step").value
    assert last >= 1
    fm.slider(key="jsma.step").set_value(1).run()
    ok(fm)
    assert "after 1 iterations" in captions_of(fm) and f"after {last} iterations" not in captions_of(fm)
    fm.number_input(key="jsma.n").set_value(10)
    fm.button(key="jsma.curve_go").click().run()
    ok(fm)
    assert len(fm.get("plotly_chart")) == 1
    fm.multiselect(key="jsma.classes").set_value([0, 1])
    fm.number_input(key="jsma.per_pair").set_value(2)
    fm.button(key="jsma.hard_go").click().run()
    ok(fm)
    assert len(fm.get("plotly_chart")) == 2  # + the hardness matrix


def test_jsma_lab_table_and_robustness_match_the_engine(fm):
    from engine.analysis.jsma_extras import robustness

    fm.switch_page("views/jsma.py").run()
    fm.button(key="FormSubmitter:jsma-form-Run JSMA").click().run()
    ok(fm)
    fm.number_input(key="jsma.table_n").set_value(1)
    fm.button(key="jsma.table_go").click().run()
    ok(fm)
    table = fm.dataframe[0].value
    assert list(table["variant"]) == ["increasing (θ = +1)", "decreasing (θ = -1)"]
    assert all(table["paper (MNIST)"].str.startswith(("97.1%", "64.7%")))
    x, y = fashion_mnist.evaluation_slice(1)
    model = models.load(FMNIST, device="cpu")
    expected = robustness(model, x, y)
    shown = {m.label: m.value for m in fm.metric}
    assert shown["R(F) = min A(X, t)"] == f"{expected['R']:.3f}"
    assert int(table["pairs"][0]) == expected["pairs"] == 9


def test_a_link_reproduces_a_run():
    at = fresh({"model": FMNIST, "image": "fmnist:17", "attack": "fgsm", "p.eps": "0.1", "seed": "3"})
    ok(at)
    run = at.session_state["last_run_key"]
    assert (run.model, run.image_key, run.attack, dict(run.params), run.seed) == (
        FMNIST,
        "fmnist:17",
        "fgsm",
        {"eps": 0.1},
        3,
    )
    assert float({m.label: m.value for m in at.metric}["L∞"]) == pytest.approx(0.1, abs=1e-4)
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert query["attack"] == "fgsm" and query["p.eps"] == "0.1" and query["image"] == "fmnist:17"


def test_bad_links_are_refused_with_a_note_and_defaults_used():
    at = fresh({"model": "../../etc/passwd", "image": "/etc/passwd", "attack": "pgd", "p.eps": "5", "evil": "1"})
    ok(at)
    notes = " ".join(w.value for w in at.sidebar.warning)
    assert "not available" in notes and "neither a gallery photo" in notes and "outside its range" in notes
    assert "unknown URL parameter 'evil'" in notes
    assert at.session_state["selection"].model == "efficientnet-lite0"
    assert at.session_state["last_run_key"].params == ()


def _cancel_mid_run():
    """An app whose bar's third update meets a real st.rerun(), as when the user clicks Cancel mid-run."""
    import streamlit as st

    from app.jobs import Progress
    from engine import attacks, models
    from engine.datasets import fashion_mnist

    if "partial" in st.session_state:  # the rerun the interrupt asked for
        st.write(f"rerun with {int(st.session_state['partial'].iterations.max())} iterations kept")
        st.stop()
    model = models.load("fmnist-lenet-0", device="cpu")
    progress = Progress("test", "t")
    real, updates = progress.bar, []

    class Bar:
        def progress(self, *args, **kwargs):
            updates.append(args)
            if len(updates) == 3:
                st.rerun()
            real.progress(*args, **kwargs)

        def empty(self):
            real.empty()

    progress.bar = Bar()
    result = attacks.run("bim", model, fashion_mnist.test_split()[0][:4], eps=0.1, steps=10, callback=progress)
    st.session_state["cancelled"] = progress.cancelled
    progress.finish(lambda: st.session_state.__setitem__("partial", result))
    st.write("finish() let the script go on")  # never shown: finish() re-raises the interrupt


def test_progress_cancel_keeps_the_partial_result(monkeypatch):
    from app import jobs

    monkeypatch.setattr(jobs, "_REDRAW_S", 0.0)  # every step updates the bar, so the third one is interrupted
    at = AppTest.from_function(_cancel_mid_run, default_timeout=300).run()
    assert not at.exception, at.exception
    partial = at.session_state["partial"]
    assert at.session_state["cancelled"] and partial.stopped_early
    assert int(partial.iterations.max()) == 3
    assert [m.value for m in at.markdown] == ["rerun with 3 iterations kept"]


def test_an_error_in_the_bar_is_not_taken_for_a_cancel(digits):
    from app.jobs import Progress

    model, x, _ = digits
    progress = Progress("test", "t")

    class Bar:
        def progress(self, *args, **kwargs):
            raise ValueError("the bar broke")

        def empty(self):
            pass

    progress.bar = Bar()
    try:
        with pytest.raises(ValueError, match="the bar broke"):
            attacks.run("bim", model, x[:4], eps=0.1, steps=10, callback=progress)
        assert not progress.cancelled
    finally:
        progress.finish()  # gives back the compute slot


def test_partial_result_is_shown_and_can_be_resumed():
    at = fresh({"model": FMNIST})
    spec = at.session_state["last_run_key"]
    model = models.load(FMNIST, device="cpu")
    x = fashion_mnist.test_split()[0][int(spec.image_key.split(":")[1])][None]
    partial = attacks.run("pgd", model, x, callback=lambda step, total, s: step < 2)
    at.session_state["attack_results"] = {spec: partial}
    at.session_state["analysis_results"] = {}
    at.run()
    ok(at)
    assert any("Cancelled after 2 of 10 iterations" in w.value for w in at.warning)
    at.button(key="resume").click().run()
    ok(at)
    done = at.session_state["attack_results"][spec]
    assert not done.stopped_early and int(done.iterations.max()) == 10
    assert torch.equal(done.x_adv, attacks.run("pgd", model, x).x_adv)  # continued, as if never stopped


def test_bring_your_own_model(tmp_path):
    import torchvision

    at = fresh()
    net = torchvision.models.get_model("resnet18", weights=None)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    uploader(at, "own_file").upload("mine.pt", buf.getvalue(), "application/octet-stream").run()
    assert at.sidebar.selectbox(key="own_arch").value == "resnet18"  # recognised from the weights
    at.sidebar.button(key="FormSubmitter:own-model-Add model").click().run()
    ok(at)
    assert "mine" in at.session_state["own_models"]
    # The wrong architecture for these weights: refused with the reason, the app keeps working.
    at.sidebar.selectbox(key="own_arch").set_value("vgg16_bn")
    at.sidebar.button(key="FormSubmitter:own-model-Add model").click().run()
    assert not at.exception
    assert any("it looks like resnet18" in e.value for e in at.sidebar.error)
    at.sidebar.selectbox(key="model").set_value("mine").run()
    at.selectbox(key="attack").set_value("fgsm").run()
    at.button(key="FormSubmitter:attack-form-fgsm-Run attack").click().run()
    ok(at)
    assert at.session_state["last_run_key"].model == "mine"


def test_two_sessions_at_once_get_what_they_get_alone(monkeypatch):
    # CPython 3.11's compiler keeps its AST recursion depth per interpreter, not per thread: two threads compiling
    # a script at the same moment fail with "AST constructor recursion depth mismatch" (seen once in the suite).
    # Each AppTest compiles the page itself, so only the compiling is taken in turn; the sessions still overlap.
    turn, plain = threading.Lock(), builtins.compile

    def compile_in_turn(*args, **kwargs):
        with turn:
            return plain(*args, **kwargs)

    monkeypatch.setattr(builtins, "compile", compile_in_turn)
    jobs = {"fgsm": {"eps": 0.1}, "bim": {"eps": 0.15, "steps": 5}}
    model = models.load(FMNIST, device="cpu")
    x = fashion_mnist.test_split()[0][:1]
    alone = {a: attacks.run(a, model, x, **p).x_adv for a, p in jobs.items()}
    out, errors = {}, []

    def session(attack, params):
        try:
            query = {
                "model": FMNIST,
                "image": "fmnist:0",
                "attack": attack,
                **{f"p.{k}": str(v) for k, v in params.items()},
            }
            at = fresh(query)
            ok(at)
            out[attack] = at.session_state["attack_results"][at.session_state["last_run_key"]].x_adv
        except BaseException as err:  # surfaced below: a thread's failure must fail the test
            errors.append(err)

    threads = [threading.Thread(target=session, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for attack in jobs:
        assert torch.equal(out[attack].cpu(), alone[attack])
    from app import resources

    assert hooks_left(resources.load_model(FMNIST)) == 0  # the shared cached model carries no session's hooks


@pytest.mark.parametrize("path", ["transfer", "features", "anatomy", "jsma"])
def test_bad_upload_on_every_page(path):
    at = fresh()
    at.switch_page(f"views/{path}.py").run()
    at.radio(key="image_source").set_value("Upload").run()
    uploader(at).upload("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg").run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)
    assert at.session_state["selection"].image_key == "chelsea"  # the page goes on with the gallery photo
