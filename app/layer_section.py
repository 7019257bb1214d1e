"""The Feature space page's layer predictor: per layer, class separability, the source-to-target class distance in
the PCA plane and AA's tSuc on the black boxes, on one chart (after Inkawhich et al. 2019: the first two should
point at the layer whose AA examples transfer)."""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from app import figures, resources, state, widgets
from engine.analysis import layer_predictor as lp


def show(selection, model, black_models, n: int, eps: float, steps: int, source: str) -> None:
    """The button, behind the page's cost gate with progress and Cancel, then the chart and the table."""
    if not black_models:
        st.info(widgets.no_black_box_text(model.name))
        return
    blacks = tuple(m.name for m in black_models)
    key = ("layer-predictor", selection.model, source, blacks, n, eps, steps)
    done = state.analysis(key)
    st.caption(
        f"AA at every layer of {model.name} (ε = {eps:g}, {steps} steps) on the first {n} evaluation images, "
        f"scored on {', '.join(blacks)}; separability and the class distance come from the clean images alone."
    )
    asked = (done is None or done["stopped"]) and st.button("Predict the best AA layer", key="layer_predictor")
    data = functools.cache(lambda: resources.evaluation(selection.model, n, source))  # loaded only for a run

    def compute(progress) -> dict:
        (x, y), bank = data()
        device = model.device
        return lp.layer_predictor(
            model,
            black_models,
            x.to(device),
            y.to(device),
            eps=eps,
            steps=steps,
            bank=(bank[0].to(device), bank[1].to(device)),
            callback=progress,
        )

    found = widgets.gated_run(
        "layer-predictor",
        key,
        asked,
        lambda: lp.seconds(model, data()[0][0].shape[0], eps, steps),
        "Layer predictor",
        compute,
        redo=lambda found: asked and found["stopped"],
    )
    if found is None:
        return
    if found["stopped"]:
        st.warning(f"Cancelled after {len(found['rows'])} of {len(model.layers())} layers: those are shown below.")
    if not found["rows"]:
        return
    figure = figures.lines(
        lp.chart_rows(found),
        "layer",
        "value",
        group="curve",
        title="Layer predictor (each curve over its own maximum)",
        y_format=".2f",
        x_title="layer (input → output)",
        y_title="share of the curve's maximum",
    )
    st.plotly_chart(figure, width="stretch", key="layer-predictor-chart")
    st.markdown(f"**What it shows:** {lp.sentence(found)}")
    table = pd.DataFrame(
        [
            {
                "layer": r["layer"],
                "name": r["name"],
                "separability": r["separability"],
                "class distance": r["class_distance_rel"],
                "AA travel": r["travel_rel"],
                "pixel L2": r["pixel_l2"],
                **{f"tSuc {b}": r["black"][b]["tSuc"] for b in blacks},
                "mean tSuc": r["tSuc"],
            }
            for r in found["rows"]
        ]
    )
    st.dataframe(table.round(3), hide_index=True)
