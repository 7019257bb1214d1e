"""The Explorer's heat maps: one method picked from the engine's table, and every method side by side with how
faithful each one is (the deletion/insertion test) on request."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import figures, state, widgets
from engine import glossary, heatmaps
from engine.analysis.panels import compared_methods, every_method, every_method_seconds, heat_panel, usable_methods


def _title(name: str) -> str:
    return heatmaps.METHODS[name].title


def show(result, model, run: state.RunSpec, panels: dict) -> None:
    """The heat maps of `panels` (Grad-CAM) or of the method the user picks, then the comparison of every method."""
    names = model.class_names
    methods = usable_methods(model)
    if model.layers_unavailable:
        st.info(f"No heat maps for this model: {panels['no_heat']}. The input-gradient methods still work.")
    if not methods:
        return
    left, right = st.columns([1, 3])
    method = left.selectbox(
        "Heat-map method",
        methods,
        format_func=_title,
        key="heat_method",
        help="; ".join(f"{m.title}: {m.summary}" for m in heatmaps.METHODS.values()),
    )
    opacity = right.slider(
        "Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key="heat_opacity", help=glossary.help_text("Grad-CAM")
    )
    shown = panels
    if method != "gradcam" or panels["heat"] is None:
        heat = state.cached_analysis(("heat", run, method), lambda: heat_panel(model, result, method))
        shown = {**panels, **heat}
    if shown["heat"] is None:
        st.info(f"No {_title(method)} for this model: {panels['no_heat']}.")
    else:
        figure = figures.heat_pictures(shown, names, 340, opacity, method=shown["method"])
        st.plotly_chart(figure, width="stretch", key="heat")
    with st.expander("Every heat-map method side by side, and which one explains this model best"):
        _compare(result, model, run, panels)


def _compare(result, model, run: state.RunSpec, panels: dict) -> None:
    default, note = compared_methods(model)
    chosen = st.multiselect(
        "Methods", usable_methods(model), default=default, format_func=_title, key="heat_compare_methods"
    )
    if note:
        st.caption(note)
    key = ("every-method", run, tuple(chosen))
    done = state.analysis(key)
    asked = (done is None or done["cancelled"]) and st.button(
        "Compare the methods", key="heat_compare", disabled=not chosen
    )
    found = widgets.gated_run(
        "heat-compare",
        key,
        asked,
        lambda: every_method_seconds(model, chosen),
        f"{len(chosen)} heat-map methods and their deletion/insertion curves",
        lambda progress: every_method(model, result, chosen, callback=progress),
        redo=lambda found: asked and found["cancelled"],
    )
    if found is None:
        return
    if found["cancelled"]:
        st.warning(
            f"Cancelled after {len(found['maps'])} of {found['methods']} methods: their maps are below, without "
            "the faithfulness test, which compares them all. Compare again to run every method."
        )
    classes = (model.class_names[found["source_class"]], model.class_names[found["adversarial_class"]])
    pictures = (panels["clean"], panels["adversarial"])
    columns = st.columns(3)
    for i, (title, clean, adversarial) in enumerate(found["maps"]):
        column = columns[i % 3]
        column.markdown(f"**{title}**")
        figure = figures.method_pair(pictures, (clean, adversarial), classes, 200)
        column.plotly_chart(figure, width="stretch", key=f"method-{i}")
    if found["cancelled"]:
        return
    st.markdown(
        f"**Faithfulness** on the clean image, for {classes[0]}: the model's probability as the pixels a map ranks "
        "highest are deleted (set to black) or inserted (into a black image). A faithful map makes deletion fall "
        "fast and insertion rise fast; random maps are the control."
    )
    left, right = st.columns(2)
    for column, curve in ((left, "deletion"), (right, "insertion")):
        figure = figures.lines(found["curves"], "fraction of pixels", curve, group="method", y_format=".0%")
        column.plotly_chart(figure, width="stretch", key=f"faithfulness-{curve}")
    st.dataframe(pd.DataFrame(found["auc"]).round(3), hide_index=True)
