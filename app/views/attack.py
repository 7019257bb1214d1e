"""Attack page: one image, one model, one attack; clean / adversarial / perturbation side by side."""
from __future__ import annotations

import json

import streamlit as st
import torch

from app import figures, resources, state, widgets
from engine import attacks, images
from engine.analysis.activation import choose_target_images
from engine.models import ModelUnavailable
from engine.report import run_record


def run_attack(run: state.RunSpec, selection: state.Selection):
    model = resources.load_model(run.model)
    x = resources.image_tensor(run.model, selection.image_key, selection.upload).to(model.device)
    bar = st.progress(0.0, text=f"Running {run.attack}…")

    def progress(step, total, _state):
        bar.progress(min(step / max(total, 1), 1.0), text=f"{run.attack}: step {step} of {total}")

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
    result = attacks.run(run.attack, model, x, target=target, seed=run.seed, callback=progress, **dict(run.params), **extra)
    bar.empty()
    state.remember(run, result)
    return result


def show(result, model, selection: state.Selection) -> None:
    record = run_record(result, model)
    row = record["examples"][0]
    clean, adv = row["clean_top5"][0], row["adversarial_top5"][0]
    verdict = "fooled" if row["success"] else "not fooled"
    st.subheader(f"{clean['label']} → {adv['label']} ({verdict})")

    c1, c2, c3 = st.columns(3)
    c1.image(images.enlarged(images.to_uint8(result.x)), caption=f"Clean: {clean['label']} ({clean['probability']:.1%})", width="stretch")
    c2.image(images.enlarged(images.to_uint8(result.x_adv)), caption=f"Adversarial: {adv['label']} ({adv['probability']:.1%})", width="stretch")
    view = c3.radio("Perturbation view", ["amplified |δ|", "signed δ"], horizontal=True, key="delta_view")
    picture = images.amplified(result.delta) if view == "amplified |δ|" else images.signed(result.delta)
    c3.image(images.enlarged(picture), caption=f"Perturbation ({view}, scaled to its maximum)", width="stretch")

    m = st.columns(6)
    m[0].metric("L0 (% pixels)", f"{row['l0_pct']:.1f}")
    m[1].metric("L2", f"{row['l2']:.3f}")
    m[2].metric("L∞", f"{row['linf']:.4f}")
    m[3].metric("SSIM", f"{row['ssim']:.4f}")
    m[4].metric("Iterations" if row["queries"] is None else "Queries", row["iterations"] if row["queries"] is None else row["queries"])
    m[5].metric("Time", f"{record['seconds']:.2f} s")

    highlight = {row["label"]} | ({row["target"]} if row["target"] is not None else set())
    b1, b2 = st.columns(2)
    b1.plotly_chart(figures.topk_bars(row["clean_top5"], "Top-5 before", highlight), width="stretch")
    b2.plotly_chart(figures.topk_bars(row["adversarial_top5"], "Top-5 after", highlight), width="stretch")

    d = st.columns(4)
    d[0].download_button("Adversarial image (PNG)", images.png_bytes(images.to_uint8(result.x_adv)), "adversarial.png", "image/png")
    d[1].download_button("Perturbation (PNG, signed)", images.png_bytes(images.signed(result.delta)), "perturbation.png", "image/png")
    d[2].download_button("Perturbation (.npy)", images.npy_bytes(result.delta[0].cpu().numpy()), "perturbation.npy", "application/octet-stream")
    record["image"] = selection.image_label
    d[3].download_button("Numbers (JSON)", json.dumps(record, indent=2), "attack.json", "application/json")


def page() -> None:
    selection: state.Selection = st.session_state["selection"]
    st.title("Attack an image")
    if selection.problem:
        st.error(f"The uploaded file cannot be used: {selection.problem} Showing the gallery photo instead.")
    try:
        model = resources.load_model(selection.model)
        resources.image_tensor(selection.model, selection.image_key, selection.upload)
    except ValueError as err:
        st.error(f"Cannot use this image: {err}")
        return
    except ModelUnavailable as err:
        st.error(str(err))
        return

    state.remember_upload(selection)
    submitted = widgets.attack_form(selection, model.class_names)
    run = submitted
    if run is None:
        last = state.last_spec()
        same_input = last is not None and (last.model, last.image_key) == (selection.model, selection.image_key)
        run = last if same_input else widgets.default_run(selection)
    result = state.result_for(run)
    if result is None:
        try:
            result = run_attack(run, selection)
        except ValueError as err:
            st.error(f"Cannot run this attack: {err}")
            return
    show(result, model, selection)

