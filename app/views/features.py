"""Feature space: per-layer separability, the layer predictor and the PCA plane with the AA trajectory drawn on it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import figures, layer_section, resources, state, widgets
from app.jobs import Progress
from engine import domains
from engine.analysis import features
from engine.analysis.target_images import choose_target_images
from engine.attacks.activation import layer_name


def _separability(model, n: int, source: str) -> None:
    key = ("separability", model.name, n, source)
    rows = state.analysis(key)
    if rows is None:
        (x, y), _ = resources.evaluation(model.name, n, source)
        with st.spinner("Features of every layer…"):
            rows = features.separability(model, x.to(model.device), y.to(model.device))
        state.store_analysis(key, rows)

    def defined(row) -> bool:  # one photo per class leaves the within-class distance undefined
        return row["ratio"] is not None and bool(np.isfinite(row["ratio"]))

    pts = [r for r in rows if r["layer"] >= 0 and defined(r)]
    if not pts:  # an honest note, not an empty chart
        st.info(
            "Class separability needs several reference images of each class; these reference images have at "
            "most one per class, so it is not defined here. The PCA plane below still works. Labelled images "
            "with several per class (sidebar: Evaluation images) define it."
        )
        return
    measured = rows[0]["classes_measured"]
    if measured < 3:  # e.g. the gallery: a couple of classes with two photos
        more = (
            "more labelled images per class"
            if domains.of(model).custom
            else "labelled images of your own or a Fashion-MNIST model (hundreds per class)"
        )
        st.info(
            f"The within-class angle comes from only {measured} class{'es' if measured != 1 else ''} with several "
            f"reference images, so this curve is a hint, not a measurement: {more} (sidebar: Evaluation images) "
            "make it one."
        )
    base = next((r for r in rows if r["layer"] < 0), None)
    fig = figures.separability(
        pts,
        base["ratio"] if base is not None and defined(base) else None,
        "Class separability per layer (between-class / within-class angle)",
    )
    st.plotly_chart(fig, width="stretch", key="separability")
    st.markdown(f"**What it shows:** {features.separability_sentence(rows)}")


def page() -> None:
    started = widgets.page_start("Feature space", "features")
    if started is None:
        return
    selection, model, black_models = started
    if not widgets.has_layers(model, "Feature space") or not widgets.has_images(model, "Feature space"):
        return
    domain = domains.of(model)
    own = domain.defaults["features"]
    layers = model.layers()
    form = st.form("features-form")
    c = form.columns(4)
    layer = c[0].select_slider(
        "Layer",
        [layer.index for layer in layers],
        value=model.layer(layer_name(model, None)).index,
        format_func=lambda i: f"{i}: {layers[i].name}",
        key="features.layer",
    )
    source = state.evaluation_source()
    most = resources.evaluation_capacity(selection.model, source)
    n = c[1].number_input("Reference images", min(7, most), most, min(own["images"], most), key="features.n")
    eps = c[2].number_input("AA ε", 0.001, 1.0, own["eps"], step=0.01, format="%.3f", key="features.eps")
    steps = c[3].number_input("AA steps", 1, 100, 10, key="features.steps")
    go = form.form_submit_button("Compute", type="primary")
    with st.expander("Which layer should AA attack? Separability, class distance and AA's tSuc per layer"):
        layer_section.show(selection, model, black_models, int(n), float(eps), int(steps), source)

    x = resources.image_tensor(selection.model, selection.image_key, selection.upload).to(model.device)
    key = ("plane", selection.model, selection.image_key, source, layer, int(n), float(eps), int(steps))
    found = state.analysis(key)
    if found is None and not go:
        st.info(
            "Choose a layer and press Compute: the separability curve of every layer, then the PCA plane of "
            "that layer with the AA trajectory of the current image."
        )
        return
    _separability(model, int(n), source)
    if found is None:
        (x_ref, y_ref), _ = resources.evaluation(selection.model, int(n), source)
        plane = features.Plane.fit(model, x_ref.to(model.device), layer)
        target, goal = choose_target_images(model, x, layer)
        progress = Progress("AA trajectory", "features")
        traj = features.aa_trajectory(
            model, plane, x, goal.to(model.device), eps=float(eps), steps=int(steps), callback=progress
        )
        found = {
            "reference": plane.project(x_ref.to(model.device)),
            "labels": y_ref.tolist(),
            "traj": traj,
            "explained": plane.explained,
            "target": int(target[0]),
        }
        progress.finish(lambda: state.store_analysis(key, found))
    traj = found["traj"]
    names = model.class_names
    points = {
        f"{names[c]}": (
            found["reference"][np.array(found["labels"]) == c],
            [names[c]] * int((np.array(found["labels"]) == c).sum()),
        )
        for c in sorted(set(found["labels"]))
    }
    points["source"] = (traj["source"], ["source"])
    points["target"] = (traj["target"], [f"target image ({names[found['target']]})"])
    points["adversarial"] = (traj["adversarial"], ["adversarial"])
    explained = ", ".join(f"{v:.0%}" for v in found["explained"])
    st.plotly_chart(
        figures.plane(
            points,
            traj["trajectory"][:, 0, :],
            f"PCA plane of layer {layer} ({layers[layer].name}); explained variance {explained}",
        ),
        width="stretch",
        key="plane",
    )
    st.markdown(f"**What it shows:** {features.trajectory_sentence(traj, names[found['target']])}")
    result = traj["result"]
    m = st.columns(5)
    m[0].metric("AA reached the target class", "yes" if bool(result.success[0]) else "no")
    m[1].metric("Pixel L2, adversarial", f"{traj['pixel_l2_adversarial'][0]:.3f}")
    m[2].metric("Pixel L2, target image", f"{traj['pixel_l2_target'][0]:.3f}")
    m[3].metric("Plane distance to target, before", f"{traj['plane_distance_before'][0]:.2f}")
    m[4].metric("… after", f"{traj['plane_distance_after'][0]:.2f}")


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
