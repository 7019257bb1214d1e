"""Patch distance: one noise patch at growing distance from the Grad-CAM centre, against random positions."""

from __future__ import annotations

import streamlit as st

from app import figures, resources, state, widgets
from engine import glossary
from engine.analysis import patch_distance as pd
from engine.analysis import patch_views as pv


def _settings(model) -> tuple[dict, bool]:
    own = pd.defaults(model)
    side = min(model.input_size[1:])
    source = state.evaluation_source()
    with st.form("patch-form"):
        c = st.columns(4)
        size = c[0].number_input("Patch side (px)", 1, side, own["size"], key="patch.size")
        amplitude = c[1].number_input("Amplitude (L∞)", 0.01, 1.0, float(own["amplitude"]), 0.05, key="patch.amplitude")
        reach = c[2].number_input("Farthest distance (px)", 0, side, int(max(own["distances"])), key="patch.reach")
        count = c[3].number_input("Distances", 1, 24, len(own["distances"]), key="patch.count")
        d = st.columns(4)
        directions = d[0].number_input("Directions", 1, 32, own["directions"], key="patch.directions")
        n = widgets.count_input(d[1], "Images", model.name, source, None, own["images"], "patch.n", help=pv.IMAGES_HELP)
        pattern = d[2].radio("Pattern", pd.PATTERNS, horizontal=True, key="patch.pattern", help=pv.PATTERN_HELP)
        centre = d[3].radio(
            "Centre", pd.CENTRES, horizontal=True, key="patch.centre", help=glossary.help_text("heat-map centre")
        )
        go = st.form_submit_button("Place the patch", type="primary")
    form = {
        "size": size,
        "amplitude": amplitude,
        "directions": directions,
        "n": n,
        "pattern": pattern,
        "centre": centre,
    }
    return pv.settings(form, pd.spaced(int(reach), int(count)), source), go


def _view(model, selection, s: dict) -> float:
    """The chosen photo with the patch where it goes for the distance on the slider; returns that distance."""
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload)
    found = widgets.cached(
        ("patch-centre", selection.model, selection.image_key, s["centre"]),
        lambda: pd.photo_centre(model, x, s["centre"]),
    )
    c = st.columns(2)
    angles = pd.angles(s["directions"])
    # New image or settings: start where the patch fits, nearest the centre (a skipped spot would draw no patch).
    view = (selection.image_key, s["centre"], tuple(s["distances"]), s["directions"], s["size"])
    if (
        st.session_state.get("patch.view_for") != view
        or st.session_state.get("patch.view_distance") not in s["distances"]
        or st.session_state.get("patch.view_angle") not in angles
    ):
        st.session_state["patch.view_for"] = view
        st.session_state["patch.view_distance"], st.session_state["patch.view_angle"] = pd.start_view(
            found["centre"], s["distances"], s["directions"], s["size"], tuple(x.shape[-2:])
        )
    distance = c[0].select_slider("Distance (px)", s["distances"], key="patch.view_distance")
    angle = c[1].select_slider("Direction (°, counter-clockwise from right)", angles, key="patch.view_angle")
    if found["centre"] is None:
        st.warning(pv.NO_CENTRE)
        return distance
    view = pd.view_at(model, x, found, s, distance, angle)
    heat = found["heat"].numpy() if st.toggle("Show the heat map", key="patch.show_heat") else None
    picture = figures.patch_view(**pv.view_args(view, found, s, distance, angle, heat))
    st.plotly_chart(picture, width="stretch", key="patch-view")
    st.caption(pv.view_caption(selection.image_label, view))
    return distance


def _curves(result: pd.PatchDistance, distance: float) -> None:
    for metric, title, axis, own in pv.CURVES:
        chart = figures.distance_curve(result.curve, result.control, metric, title, axis, chosen=distance, **own)
        st.plotly_chart(chart, width="stretch", key=f"patch-{metric}")
    st.markdown(f"**What it shows:** {pd.summary(result)}")
    st.caption(pd.counted_sentence(result), help=glossary.help_text("random-position control"))
    with st.expander("Numbers per distance"):
        st.dataframe(pd.table_rows(result), width="stretch")


def page() -> None:
    started = widgets.page_start("Patch distance", "patch")
    if started is None:
        return
    selection, model, _ = started
    if not widgets.has_layers(model, "Patch distance") or not widgets.has_images(model, "Patch distance"):
        return
    s, go = _settings(model)

    def compute(progress) -> pd.PatchDistance:
        (x, y), _ = resources.evaluation(selection.model, s["n"], s["source"])
        return pd.patch_distance(model, x, y, callback=progress, **pv.run_args(s))

    result = widgets.gated_run(
        "patch",
        pv.key(selection.model, s),
        go,
        lambda: pd.seconds(model, s["n"], s["distances"], s["directions"]),
        "Patch at every placement",
        compute,
        at_most=True,
    )
    left, right = st.columns([1, 1.2])
    with left:
        distance = _view(model, selection, s)
    with right:
        if result is None:
            st.info(pv.press_text(s["n"]))
        else:
            if result.stopped_early:
                st.warning(pv.cancelled_text(result.settings["photos_counted"]))
            _curves(result, distance)


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
