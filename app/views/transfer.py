"""Transfer lab: AA vs the targeted baselines from the white-box model to the black-box ones."""

from __future__ import annotations

import functools

import streamlit as st

from app import direct_section, figures, resources, state, widgets
from engine import domains, glossary, images
from engine.analysis import transfer

RULES = transfer.TARGET_RULES


def _target_picker(model, selection: state.Selection) -> None:
    """The AA target image for the current source, by the chosen rule at the chosen layer."""
    st.markdown("#### AA's target image for the current source")
    layers = model.layers()
    c1, c2, c3 = st.columns(3)
    layer = c1.select_slider(
        "Layer",
        [layer.index for layer in layers],
        value=transfer.default_layer(model),
        key="transfer.pick_layer",
        format_func=lambda i: f"{i}: {layers[i].name}",
    )
    seed = c2.number_input("Seed (random target class)", 0, 10_000, 0, key="transfer.pick_seed")
    rule = c3.selectbox("Target image", list(RULES), format_func=RULES.get, key="transfer.pick_rule")
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload).to(model.device)
    target, goal = widgets.cached(
        ("target-pick", selection.model, selection.image_key, layer, int(seed), rule),
        lambda: transfer.target_pick(model, x, layer, int(seed), rule),
    )
    a, b = st.columns(2)
    a.image(images.enlarged(images.to_uint8(x)), caption=f"source: {selection.image_label}", width="stretch")
    b.image(
        images.enlarged(images.to_uint8(goal)),
        caption=transfer.target_caption(model.class_names[target], rule),
        width="stretch",
    )


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
        n = widgets.count_input(
            c[2],
            "Images",
            selection.model,
            source,
            2000,
            domain.defaults["images"],
            "transfer.n",
            help="the first of the evaluation images (sidebar: Evaluation images)",
        )
        steps = c[3].number_input("Steps", 1, 100, own["steps"], key="transfer.steps")
        d = st.columns(3)
        eps_values = d[0].multiselect(
            "ε values", list(transfer.EPS_CHOICES), default=list(own["eps"]), key="transfer.eps"
        )
        layers = [layer.index for layer in white.layers()] if layered else []
        layer_values = d[1].multiselect(
            "AA layers (layer sweep)", layers, default=transfer.default_layers(layers), key="transfer.layers"
        )
        rule = d[2].selectbox(
            "AA target image",
            list(RULES),
            format_func=RULES.get,
            key="transfer.rule",
            help=glossary.help_text("AA target image"),
        )
        go = st.form_submit_button("Run sweep", type="primary")
    chosen = (tuple(methods), kind, n, int(steps), tuple(sorted(eps_values)), tuple(sorted(layer_values)), rule)
    key = ("transfer", selection.model, source, tuple(blacks), *chosen)
    ready = bool(methods and eps_values and (kind == "ε" or layer_values))
    if go and not ready and state.analysis(key) is None:
        st.error("Choose at least one method, one ε and (for a layer sweep) one layer.")
    jobs = transfer.sweep_plan(kind, methods, eps_values, layer_values) if ready else []
    data = functools.cache(lambda: resources.evaluation(selection.model, n, source))  # loaded only for a run

    def sweep(progress) -> list[dict]:
        return transfer.run_loaded(
            white, black_models, jobs, data(), steps=int(steps), target_image=rule, callback=progress
        )

    # A cancelled sweep keeps the rows it finished, and shows them.
    rows = widgets.gated_run(
        "transfer",
        key,
        go and ready,
        lambda: transfer.plan_seconds(white, jobs, data()[0][0].shape[0], int(steps)),
        "Transfer sweep",
        sweep,
    )
    if rows:
        note = transfer.count_note(rows)  # an honest note: with a handful of images a rate moves in big steps
        if note:
            st.info(note)
        axis = "eps" if kind == "ε" else "layer"
        shown = transfer.shown(rows, axis)
        black = st.selectbox("Black-box model", blacks, key="transfer.black")
        widgets.what_it_shows(transfer.summary(shown, black))
        cols = st.columns(2)
        pts = [r for r in shown if r["black"] == black]
        for i, metric in enumerate(transfer.METRICS):
            widgets.show_chart(
                cols[i % 2],
                lambda m=metric: figures.lines(pts, axis, m, group="method", **transfer.chart_words(axis, m, black)),
                f"transfer-{metric}",
                transfer.empty_note(pts, metric, black),  # a flat or empty chart would say nothing: words instead
            )
        st.dataframe(rows, width="stretch")
        st.download_button("Sweep (CSV)", transfer.to_csv(rows), "transfer.csv", "text/csv")
    direct_section.show(selection, white, black_models, rows, data)
    if layered:
        _target_picker(white, selection)


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
