"""Transfer lab: AA vs the targeted baselines from the white-box model to the black-box ones."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import figures, resources, state, widgets
from app.jobs import Progress
from engine import domains, glossary, images, targets
from engine.analysis import transfer
from engine.analysis.target_images import choose_target_images
from engine.attacks.activation import layer_name

METRICS = ("error", "uTR", "tSuc", "tTR")
RULES = {targets.FARTHEST: "farthest from the source (the paper's)", targets.NEAREST_MEAN: "nearest the class mean",
         targets.IN_CLASS_RANDOM: "random in class"}


def _target_picker(model, selection: state.Selection) -> None:
    """The AA target image for the current source, by the chosen rule at the chosen layer."""
    st.markdown("#### AA's target image for the current source")
    layers = model.layers()
    default = model.layer(layer_name(model, None)).index
    c1, c2, c3 = st.columns(3)
    layer = c1.select_slider("Layer", [layer.index for layer in layers], value=default, key="transfer.pick_layer",
                             format_func=lambda i: f"{i}: {layers[i].name}")
    seed = c2.number_input("Seed (random target class)", 0, 10_000, 0, key="transfer.pick_seed")
    rule = c3.selectbox("Target image", list(RULES), format_func=RULES.get, key="transfer.pick_rule")
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload).to(model.device)
    key = ("target-pick", selection.model, selection.image_key, layer, int(seed), rule)
    picked = state.analysis(key)
    if picked is None:
        target, goal = choose_target_images(model, x, layer, seed=int(seed), rule=rule)
        picked = (int(target[0]), goal.cpu())
        state.store_analysis(key, picked)
    target, goal = picked
    a, b = st.columns(2)
    a.image(images.enlarged(images.to_uint8(x)), caption=f"source: {selection.image_label}", width="stretch")
    b.image(images.enlarged(images.to_uint8(goal)), caption=f"target image, class {model.class_names[target]} "
            f"({RULES[rule]} at this layer; the bank holds only images the model classifies as their class)",
            width="stretch")


def page() -> None:
    started = widgets.page_start("Transfer lab", "transfer")
    if started is None:
        return
    selection, white, black_models = started
    blacks = [m.name for m in black_models]
    if not black_models:
        st.warning(widgets.no_black_box_text(white.name))
        return
    if not widgets.has_images(white, "The Transfer lab"):
        return
    domain = domains.of(white)
    own = domain.defaults["transfer"]
    layered = not white.layers_unavailable  # AA works on a layer: not offered where the model hides its layers
    offered = [m for m in transfer.METHODS if layered or m != "aa"]
    if not layered:
        st.caption(f"AA and the layer sweep are not offered: {white.layers_unavailable}.")
    with st.form("transfer-form"):
        c = st.columns(4)
        methods = c[0].multiselect("Methods", offered, default=offered, key="transfer.methods")
        kind = c[1].radio("Sweep", ["ε", "layer"] if layered else ["ε"], horizontal=True, key="transfer.kind")
        source = state.evaluation_source()
        most = min(2000, resources.evaluation_capacity(selection.model, source))
        n = c[2].number_input("Images", 1, most, min(domain.defaults["images"], most), key="transfer.n",
                              help="the first of the evaluation images (sidebar: Evaluation images)")
        steps = c[3].number_input("Steps", 1, 100, own["steps"], key="transfer.steps")
        d = st.columns(3)
        eps_values = d[0].multiselect("ε values", list(transfer.EPS_CHOICES), default=list(own["eps"]),
                                      key="transfer.eps")
        layers = [layer.index for layer in white.layers()] if layered else []
        spread = sorted({layers[0], layers[len(layers) // 2], layers[-1]}) if layers else []
        layer_values = d[1].multiselect("AA layers (layer sweep)", layers, default=spread, key="transfer.layers")
        rule = d[2].selectbox("AA target image", list(RULES), format_func=RULES.get, key="transfer.rule",
                              help=glossary.help_text("AA target image"))
        go = st.form_submit_button("Run sweep", type="primary")
    key = ("transfer", selection.model, source, tuple(blacks), tuple(methods), kind, int(n), int(steps),
           tuple(sorted(eps_values)), tuple(sorted(layer_values)), rule)
    rows = state.analysis(key)
    if (go or widgets.pending("transfer") == key) and rows is None:
        if not methods or not eps_values or (kind == "layer" and not layer_values):
            st.error("Choose at least one method, one ε and (for a layer sweep) one layer.")
        else:
            jobs = transfer.plan(methods, eps_values, [None]) if kind == "ε" else \
                transfer.plan(["aa"], [max(eps_values)], layer_values)
            (x, y), bank = resources.evaluation(selection.model, int(n), source)
            if widgets.heavy_gate("transfer", key, transfer.plan_seconds(white, jobs, x.shape[0], int(steps)), go):
                progress = Progress("Transfer sweep", "transfer")
                rows = transfer.run_plan(white, black_models, jobs, x.to(white.device), y.to(white.device),
                                         steps=int(steps), bank=(bank[0].to(white.device), bank[1].to(white.device)),
                                         target_image=rule, callback=progress)
                progress.finish(lambda: state.store_analysis(key, rows))  # partial rows too: a cancelled sweep shows them
    if rows:
        counted = min(r["n"] for r in rows)
        if counted < 30:  # an honest note: with a handful of images a rate moves in big steps
            st.info(f"Only {counted} image{'s' if counted != 1 else ''} count here (both models must classify "
                    f"{'them' if counted != 1 else 'it'} correctly before the attack), so each moves a rate by "
                    f"{100 / max(counted, 1):.0f} points; more images (and models that get them right) steady "
                    "the rates.")
        axis = "eps" if kind == "ε" else "layer"
        shown = rows if axis == "eps" else [r for r in rows if r["method"] == "aa"]
        black = st.selectbox("Black-box model", blacks, key="transfer.black")
        said = transfer.summary(shown, black)
        if said:
            st.markdown(f"**What it shows:** {said}")
        cols = st.columns(2)
        pts = [r for r in shown if r["black"] == black]
        for i, metric in enumerate(METRICS):
            note = transfer.empty_note(pts, metric, black)  # a flat or empty chart would say nothing: words instead
            if note:
                cols[i % 2].info(note)
                continue
            cols[i % 2].plotly_chart(figures.lines(pts, axis, metric, group="method", title=f"{metric} on {black}",
                                                   x_title="ε" if axis == "eps" else "AA layer",
                                                   y_title=transfer.METRIC_WORDS[metric]),
                                     width="stretch", key=f"transfer-{metric}")
        st.dataframe(rows, width="stretch")
        st.download_button("Sweep (CSV)", _csv(rows), "transfer.csv", "text/csv")
    if layered:
        _target_picker(white, selection)


def _csv(rows: list[dict]) -> str:
    return pd.DataFrame(rows).to_csv(index=False)


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
