"""The Explorer's side by side of FGSM, DeepFool and Mask-FGSM on the current image and model, as the Mask-FGSM
paper's Fig. 5 shows them: each method's adversarial image and perturbation with its L0, SSIM and success."""

from __future__ import annotations

import streamlit as st

from app import state, widgets
from engine import attacks, glossary, images
from engine.analysis.sparsity import SIDE_BY_SIDE, side_by_side, side_by_side_seconds, side_by_side_sentence

BUTTON = "Compare FGSM, DeepFool and Mask-FGSM"
NUMBERS_HELP = f"L0: {glossary.help_text('L0')} SSIM: {glossary.help_text('SSIM')} Success: the model's answer changed."


def numbers_line(row: dict) -> str:
    """One method's L0, SSIM and success on one line: a narrow column has no room for three metrics."""
    success = "yes" if row["success_rate"] == 1.0 else "no"
    return f"L0 **{row['l0_pct']:.1f} %** · SSIM **{row['ssim']:.3f}** · success **{success}**"


def show(result, model, run: state.RunSpec) -> None:
    """One click: the three attacks, each run alone on the clean image at its default parameters, in three columns."""
    st.subheader("Three attacks side by side", help="the Mask-FGSM paper's Fig. 5: one image under the three attacks")
    if model.layers_unavailable:
        st.info("Mask-FGSM needs the model's Grad-CAM map, which this model does not give.")
        return
    key = ("side-by-side", run.model, run.image_key, run.seed)
    done = state.analysis(key)
    asked = (done is None or done["cancelled"]) and st.button(BUTTON, key="side_by_side")
    found = widgets.gated_run(
        "side-by-side",
        key,
        asked,
        lambda: side_by_side_seconds(model),
        " / ".join(attacks.get(name).title for name, _ in SIDE_BY_SIDE),
        lambda progress: side_by_side(model, result.x, seed=run.seed, callback=progress),
        at_most=True,
        redo=lambda found: asked and found["cancelled"],
    )
    if found is None:
        return
    if found["cancelled"]:
        st.warning(f"Cancelled after {len(found['rows'])} of {found['methods']} methods. Compare again for the rest.")
    names = model.class_names
    if found["clean"] is not None:
        st.caption(
            f"{model.name} calls the clean image {names[found['clean']]}. Each attack runs alone on it, untargeted, "
            "at its default settings. Perturbations: mid-grey is no change."
        )
    for column, row in zip(st.columns(found["methods"]), found["rows"]):
        with column.container(key=f"side-by-side-{row['method']}"):
            title = attacks.get(row["method"]).title.split(" (")[0]  # "Mask-FGSM (Grad-CAM-masked FGSM)"
            st.markdown(f"**{title}** → {names[row['answer']]}")
            st.markdown(numbers_line(row), help=NUMBERS_HELP)
            pictures = ((row["adversarial"], "adversarial image"), (row["perturbation"], "perturbation"))
            for cell, (picture, caption) in zip(st.columns(2), pictures):
                cell.image(images.enlarged(picture, 160), caption=caption, width="stretch")
    widgets.what_it_shows(side_by_side_sentence(found))
