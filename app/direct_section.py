"""The Transfer lab's direct attack: a black-box model attacked from its labels alone, beside transfer."""

from __future__ import annotations

import streamlit as st

from app import figures, resources, state, widgets
from engine import attacks, glossary, images, targets
from engine.analysis import direct

SETTING = ("method", "eps", "steps", "layer")  # a sweep row's transfer setting, rerun on the page's image
HEADING = "Attack a black box directly (labels only)"
INTRO = (
    "Transfer costs the black box nothing: the perturbation is made on the white box and simply tried. An attacker "
    "who may send images to the black box and read back its answer, and nothing more, can instead search on the "
    "black box itself. Each image sent is a query; more queries buy a smaller perturbation. The label it aims "
    "to change is the black box's own answer on the clean image."
)


def _title(attack: str) -> str:
    return attacks.get(attack).title.split(" (")[0]


def _bar(progress, attack: str, black: str):
    """The page's progress bar as the engine's callback, its text saying how many queries are spent."""

    def relay(step, total, said):
        progress.label = f"{_title(attack)} on {black} ({said['queries']:,} of {said['budget']:,} queries)"
        # The planned iterations are what the budget pays for, not a cap the run stops short of at success:
        # without upper_bound the bar also says how long is left.
        return progress(step, total, {})

    return relay


def show(selection, white, black_models: list, rows, data) -> None:
    """The heading, the choice of black box, attack and budget, the run under a bar with Cancel, and its result
    beside transfer from the white box when the sweep (`rows`, on `data()`'s images) has run."""
    st.markdown(f"#### {HEADING}")
    st.caption(INTRO)
    by_name = {m.name: m for m in black_models}
    if st.session_state.get("direct.black") not in by_name:  # the sidebar's black boxes changed since
        st.session_state.pop("direct.black", None)
    c = st.columns(2)
    black = c[0].selectbox("Black-box model to attack", list(by_name), key="direct.black")
    attack = c[1].selectbox(
        "Label-only attack",
        direct.DECISION,
        format_func=_title,
        key="direct.attack",
        help=glossary.help_text("label-only attack"),
    )
    model = by_name[black]
    with st.form("direct-form"):
        d = st.columns(2)
        budget = d[0].number_input(
            "Query budget",
            1,
            100_000,
            direct.budget(model, attack),
            key=f"direct.{attack}.n_queries",
            help=glossary.help_text("queries"),
        )
        seed = d[1].number_input("Seed", 0, 2**31 - 1, 0, key="direct.seed")
        go = st.form_submit_button("Attack the black box", type="primary", help=glossary.help_text("direct attack"))
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload)
    key = ("direct", black, selection.image_key, attack, int(budget), int(seed))
    found = widgets.gated_run(
        "direct",
        key,
        go,
        lambda: direct.seconds(model, attack, {"n_queries": int(budget)}),
        f"{_title(attack)} on {black}",
        lambda progress: direct.run(
            model, x, attack, seed=int(seed), callback=_bar(progress, attack, black), n_queries=int(budget)
        ),
        redo=lambda found: found["stopped_early"],  # a cancelled run is partial: asking again runs it whole
    )
    if found is not None:
        _result(found, selection, white, model, rows, data)


def _result(found: dict, selection, white, black, rows, data) -> None:
    if found["stopped_early"]:
        st.warning(
            f"Cancelled after {found['queries']:,} of {found['budget']:,} queries: "
            + (
                "the smallest adversarial image found so far."
                if found["success"]
                else "no adversarial image found yet."
            )
        )
    pictures = [
        (f"clean: {found['class_before']}", images.to_uint8(found["x"]), "rgb"),
        (f"adversarial: {found['class_after']}", images.to_uint8(found["x_adv"]), "rgb"),
        ("δ (red brighter, blue darker)", images.signed_map(found["delta"]), "signed"),
    ]
    st.plotly_chart(figures.linked_images(pictures, height=300), width="stretch", key="direct-pictures")
    widgets.metric_row(
        [
            ("Success", "yes" if found["success"] else "no", None),
            ("L2", f"{found['l2']:.3f}", "L2"),
            ("L∞", f"{found['linf']:.3f}", "L∞"),
            ("Queries", f"{found['queries']:,}", "queries"),
        ]
    )
    setting = direct.strongest(rows or [], black.name)
    if setting is None:
        st.caption(f"Run the sweep above to compare with a perturbation transferred from {white.name} to {black.name}.")
        return
    rule = setting["target_image"] or targets.FARTHEST  # None: a baseline, which has no target image
    transferred = widgets.cached(
        # The bank (the sweep's images) decides targets and AA's target image: its source and size key it too.
        ("direct-transfer", white.name, selection.image_key, state.evaluation_source(), setting["images"], rule)
        + tuple(setting[k] for k in SETTING),
        lambda: direct.transferred_image(
            white,
            resources.image_tensor(selection.model, selection.image_key, selection.upload),
            data()[1],
            target_image=rule,
            **{k: setting[k] for k in SETTING},
        ),
    )
    compared = direct.compare(black, found["x"], transferred, found)
    widgets.what_it_shows(
        f"{compared['sentence']} (The sweep's strongest setting on {black.name}, rerun on this image.)"
    )
