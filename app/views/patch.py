"""Patch distance: one noise patch at growing distance from the Grad-CAM centre, against random positions."""

from __future__ import annotations

import streamlit as st

from app import figures, resources, state, widgets
from engine import glossary, images
from engine.analysis import patch_distance as pd


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
        n = widgets.count_input(
            d[1],
            "Images",
            model.name,
            source,
            None,
            own["images"],
            "patch.n",
            help="the first of the evaluation images (sidebar: Evaluation images)",
        )
        pattern = d[2].radio(
            "Pattern",
            pd.PATTERNS,
            horizontal=True,
            key="patch.pattern",
            help="sign: ±amplitude per pixel; uniform: noise between −amplitude and +amplitude",
        )
        centre = d[3].radio(
            "Centre", pd.CENTRES, horizontal=True, key="patch.centre", help=glossary.help_text("heat-map centre")
        )
        go = st.form_submit_button("Place the patch", type="primary")
    return {
        "size": int(size),
        "amplitude": float(amplitude),
        "distances": pd.spaced(int(reach), int(count)),
        "directions": int(directions),
        "n": int(n),
        "pattern": pattern,
        "centre": centre,
        "source": source,
    }, go


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
        st.warning("The heat map of this photo is zero everywhere: it has no centre to measure from. Pick another.")
        return distance
    view = pd.view_at(model, x, found, s, distance, angle)
    heat = found["heat"].numpy() if st.toggle("Show the heat map", key="patch.show_heat") else None
    st.plotly_chart(
        figures.patch_view(
            images.to_uint8(view["picture"]),
            found["centre"],
            view["boxes"],
            view["chosen"],
            s["size"],
            distance,
            f"patch at {distance:g} px, {angle:g}°",
            heat=heat,
        ),
        width="stretch",
        key="patch-view",
    )
    st.caption(
        f"{selection.image_label}: {view['words']}. Dashed: the other directions at this distance; cross: the "
        "heat-map centre."
    )
    return distance


def _curves(result: pd.PatchDistance, distance: float) -> None:
    st.plotly_chart(
        figures.distance_curve(
            result.curve,
            result.control,
            "wrong",
            "wrong-class confidence and share flipped",
            "1 − p(true class) / share",
            rate="success",
            chosen=distance,
        ),
        width="stretch",
        key="patch-wrong",
    )
    st.plotly_chart(
        figures.distance_curve(
            result.curve,
            result.control,
            "margin",
            "margin p(true) − max p(other)",
            "margin",
            zero_line="below 0: the decision flips",
            chosen=distance,
        ),
        width="stretch",
        key="patch-margin",
    )
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
    key = ("patch", selection.model, *(s[k] if not isinstance(s[k], list) else tuple(s[k]) for k in sorted(s)))

    def compute(progress) -> pd.PatchDistance:
        (x, y), _ = resources.evaluation(selection.model, s["n"], s["source"])
        return pd.patch_distance(
            model,
            x,
            y,
            size=s["size"],
            amplitude=s["amplitude"],
            distances=s["distances"],
            directions=s["directions"],
            pattern=s["pattern"],
            centre=s["centre"],
            callback=progress,
        )

    result = widgets.gated_run(
        "patch",
        key,
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
            st.info(
                f"Press Place the patch: it goes to every distance and direction on {s['n']} evaluation image(s), "
                "then to as many random positions; the curves of the model's answers appear here."
            )
        else:
            if result.stopped_early:
                st.warning(
                    f"Cancelled: the curve holds the {result.settings['photos_counted']} image(s) that finished."
                )
            _curves(result, distance)


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
