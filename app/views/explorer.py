"""Explorer: one image, a white-box model, black-box models and an attack; every view of the result side by side."""
from __future__ import annotations

import csv
import io
import json

import streamlit as st
import torch

from app import figures, resources, state, urlstate, widgets
from app.jobs import Progress
from app.text import EXPLAIN
from engine import attacks, images, report
from engine.analysis.activation import choose_target_images
from engine.analysis.panels import explorer_panels
from engine.models import ModelUnavailable

VIEWS = {"signed δ": "signed", "amplified |δ|": "amplified", "display-normalised": "display"}


def run_attack(run: state.RunSpec, selection: state.Selection):
    """Run (or resume) one attack with a progress bar and Cancel; a cancelled run keeps its partial result."""
    model = resources.model(run.model)
    x = resources.image_tensor(run.model, selection.image_key, selection.upload).to(model.device)
    spec = attacks.get(run.attack)
    target, extra = run.target, {}
    if spec.needs_target_images:  # AA: farthest-in-class target image from the gallery/test split plus uploads
        uploaded = [resources.image_tensor(run.model, key, data) for key, data in state.uploads().items()]
        extra_bank = torch.cat(uploaded) if uploaded and model.domain != "fashion-mnist" else None
        target, extra["target_images"] = choose_target_images(
            model, x, dict(run.params).get("layer"), target, run.seed, extra_images=extra_bank
        )
    elif target is None and not spec.untargeted:
        target = attacks.runner_up(model, x)
    progress = Progress(f"Running {spec.title}", "explorer")
    result = attacks.run(run.attack, model, x, target=target, seed=run.seed, callback=progress, **dict(run.params), **extra)
    progress.finish(lambda: state.remember(run, result))
    return result


def _numbers_csv(record: dict, predictions: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    row = record["examples"][0]
    writer.writerow(["quantity", "value"])
    for key in ("success", "l0_pct", "l2", "linf", "ssim", "iterations", "queries"):
        writer.writerow([key, row.get(key)])
    writer.writerow([])
    writer.writerow(["model", "role", "when", "rank", "class", "label", "probability"])
    for p in predictions:
        for when in ("before", "after"):
            for rank, r in enumerate(p[when], start=1):
                writer.writerow([p["model"], p["role"], when, rank, r["index"], r["label"], f"{r['probability']:.6f}"])
    return out.getvalue()


def _downloads(result, panels: dict, selection: state.Selection) -> None:
    record = dict(panels["record"], image=selection.image_label, black_box=panels["predictions"][1:])
    d = st.columns(5)
    # Files are made on click (deferred), not on every rerun: PNG encoding is most of a redraw's cost.
    d[0].download_button("Adversarial (PNG)", lambda: images.png_bytes(images.to_uint8(result.x_adv)), "adversarial.png",
                         "image/png")
    d[1].download_button("Perturbation (PNG)", lambda: images.png_bytes(images.signed(result.delta)), "perturbation.png",
                         "image/png")
    d[2].download_button("Perturbation (.npy)", lambda: images.npy_bytes(result.delta[0].cpu().numpy()),
                         "perturbation.npy", "application/octet-stream")
    d[3].download_button("Numbers (JSON)", json.dumps(record, indent=2), "attack.json", "application/json")
    d[4].download_button("Numbers (CSV)", _numbers_csv(record, panels["predictions"]), "attack.csv", "text/csv")


def _metrics(row: dict, seconds: float) -> None:
    m = st.columns(6)
    m[0].metric("L0 (% pixels)", f"{row['l0_pct']:.1f}")
    m[1].metric("L2", f"{row['l2']:.3f}")
    m[2].metric("L∞", f"{row['linf']:.4f}")
    m[3].metric("SSIM", f"{row['ssim']:.4f}")
    m[4].metric("Iterations" if row["queries"] is None else "Queries", row["iterations"] if row["queries"] is None else row["queries"])
    m[5].metric("Time", f"{seconds:.2f} s")


def _pictures(panels: dict, view: str, row: dict) -> None:
    clean, adv = row["clean_top5"][0], row["adversarial_top5"][0]
    kind = VIEWS[view]
    picture = panels[kind]
    st.plotly_chart(figures.linked_images([
        (f"clean: {clean['label']} ({clean['probability']:.0%})", panels["clean"], "rgb"),
        (f"adversarial: {adv['label']} ({adv['probability']:.0%})", panels["adversarial"], "rgb"),
        (f"perturbation ({view})", picture, "signed" if kind == "signed" else "rgb"),
    ], height=360), width="stretch", key="pictures")


def _heat(panels: dict, names: list[str]) -> None:
    heat = panels["heat"]
    src, adv = names[heat["source_class"]], names[heat["adversarial_class"]]
    st.plotly_chart(figures.linked_images([
        (f"clean · Grad-CAM of {src}", heat["clean · source"], "heat"),
        (f"adversarial · Grad-CAM of {adv}", heat["adversarial · adversarial class"], "heat"),
        (f"adversarial · Grad-CAM of {src}", heat["adversarial · source"], "heat"),
        ("δ masked by the clean heat map", panels["masked"], "signed"),
    ], height=320), width="stretch", key="heat")


def _spectrum(panels: dict) -> None:
    st.plotly_chart(figures.linked_images([("power spectrum of δ (log₁₀)", panels["spectrum"], "spectrum")],
                                          height=360, link=False), width="stretch", key="spectrum")


def _models(panels: dict, row: dict) -> None:
    highlight = {row["label"]} | ({row["target"]} if row["target"] is not None else set())
    for p in panels["predictions"]:
        verdict = "fooled" if p["fooled"] else "not fooled"
        st.markdown(f"**{p['model']}** ({p['role']}, {verdict})")
        b1, b2 = st.columns(2)
        b1.plotly_chart(figures.topk_bars(p["before"], "before", highlight, height=200), width="stretch",
                        key=f"bars-{p['model']}-before")
        b2.plotly_chart(figures.topk_bars(p["after"], "after", highlight, height=200), width="stretch",
                        key=f"bars-{p['model']}-after")


def show(result, model, panels: dict, selection: state.Selection) -> None:
    record = panels["record"]
    row = record["examples"][0]
    words = report.headline(record)
    st.subheader(f"{words['title']} — {words['verdict']}")
    if words["rounding"] is not None:
        (st.caption if words["survives_8bit"] else st.warning)(words["rounding"][0].upper() + words["rounding"][1:] + ".")
    if result.stopped_early:
        st.warning(f"Cancelled after {int(result.iterations.max())} iterations: this is the partial result.")
        if st.button("Run it to the end", key="resume"):
            state.forget_result(state.last_spec())
            st.rerun()
    view = st.radio("Perturbation view", list(VIEWS), horizontal=True, key="delta_view")
    if st.session_state.get("presentation"):
        tabs = st.tabs(["1 · The attack", "2 · The perturbation", "3 · Where the model looks", "4 · Frequencies",
                        "5 · Other models"])
        with tabs[0]:
            st.info(EXPLAIN["attack"])
            _pictures(panels, view, row)
            _metrics(row, record["seconds"])
        with tabs[1]:
            st.info(EXPLAIN["perturbation"])
            st.image(images.enlarged(panels[VIEWS[view]] if VIEWS[view] != "signed" else images.signed(result.delta), 512),
                     caption=view, width="stretch")
        with tabs[2]:
            st.info(EXPLAIN["heat"])
            _heat(panels, model.class_names)
        with tabs[3]:
            st.info(EXPLAIN["spectrum"])
            _spectrum(panels)
        with tabs[4]:
            st.info(EXPLAIN["models"])
            _models(panels, row)
    else:
        _pictures(panels, view, row)
        _metrics(row, record["seconds"])
        _heat(panels, model.class_names)
        left, right = st.columns([1, 2])
        with left:
            _spectrum(panels)
        with right:
            _models(panels, row)
    _downloads(result, panels, selection)


def chosen_run(selection: state.Selection, form: state.RunSpec, submitted: bool) -> state.RunSpec:
    """The form's run when submitted, else the link's run (first render), else the last one on this
    model and image, else what the form shows: a new image or model reruns the chosen attack, never a default."""
    if submitted:
        return form
    linked = st.session_state.pop("url_run", None)
    if linked is not None:
        attack, params, target, seed = linked
        return state.RunSpec(selection.model, selection.image_key, attack, params, target, seed)
    last = state.last_spec()
    if last is not None and (last.model, last.image_key) == (selection.model, selection.image_key):
        return last
    return form


def page() -> None:
    selection: state.Selection = st.session_state["selection"]
    blacks: list[str] = st.session_state.get("blacks_chosen", [])
    st.title("Explorer")
    if selection.problem:
        st.error(f"The uploaded file cannot be used: {selection.problem} Showing the gallery photo instead.")
    try:
        model = resources.model(selection.model)
        resources.image_tensor(selection.model, selection.image_key, selection.upload)
        black_models = [resources.model(b) for b in blacks]
    except ValueError as err:
        st.error(f"Cannot use this image: {err}")
        return
    except ModelUnavailable as err:
        st.error(str(err))
        return

    state.remember_upload(selection)
    run = chosen_run(selection, *widgets.attack_form(selection, model.class_names))
    result = state.result_for(run)
    if result is None:
        try:
            result = run_attack(run, selection)
        except ValueError as err:
            st.error(f"Cannot run this attack: {err}")
            return
    st.query_params.from_dict(urlstate.encode(selection.model, selection.image_key, run, blacks))
    key = ("explorer", run, tuple(blacks), result.stopped_early)
    panels = state.analysis(key)
    if panels is None:
        with st.spinner("Heat maps and transfer…"):
            panels = explorer_panels(model, result, black_models)
        state.store_analysis(key, panels)
    show(result, model, panels, selection)


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
