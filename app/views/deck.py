"""Presentation mode: the Explorer's result as a deck for a projector, one idea a slide.

Every slide is the same frame, sized so that it ends inside a 1280×720 screen with the sidebar folded:
the slide bar (◀, the slide names, ▶; ←/→ on the keyboard), the headline, one figure, two lines of
explanation and the slide's key numbers. Text is 16 px or larger, so the back row can read it.
"""

from __future__ import annotations

import streamlit as st

from app import figures, urlstate, widgets
from engine import glossary
from engine.analysis import slides

SLIDES = urlstate.SLIDES
FIGURE_HEIGHT = 330  # with the frame around it, a slide ends above a 720-px screen's bottom edge
FONT = 17  # every label on a slide, in px

CSS = """<style>
.stMainBlockContainer {padding-top: 3.9rem; padding-bottom: 1rem; max-width: 100%;}
.stMainBlockContainer p, .stMainBlockContainer li {font-size: 1.2rem;}
/* A 1080-line screen has room for larger words; figures keep their height (Plotly sizes itself in pixels). */
@media (min-height: 1000px) {.st-key-deck-explain p {font-size: 1.45rem;} .st-key-deck-headline h3 {font-size: 2rem;}}
.st-key-deck-headline h3 {font-size: 1.6rem; padding: 0;}
.st-key-deck-explain p {font-size: 1.15rem; line-height: 1.45;}
[data-testid="stMetricLabel"] p {font-size: 1rem;}
[data-testid="stMetricValue"] p {font-size: 2rem; line-height: 1.2;}
.st-key-deck-nav kbd {font-size: 1rem;}
[data-testid="stCaptionContainer"] p {font-size: 1rem;}
</style>"""


def _figure(fig, key: str) -> None:
    st.plotly_chart(figures.larger_type(fig, FONT), width="stretch", key=key)


def _explain(concept: str) -> None:
    with st.container(key="deck-explain"):
        st.markdown(slides.EXPLAIN[concept])


def nav() -> int:
    """◀, the slide names and ▶ in one row (← and → on the keyboard); returns the slide to show."""
    current = SLIDES.index(st.session_state.get("slide", SLIDES[0]))
    row = st.container(horizontal=True, vertical_alignment="center", key="deck-nav", gap="small")
    with row:
        back = st.button("◀ Back", key="slide_prev", disabled=current == 0, shortcut="Left")
        names = st.empty()
        forward = st.button("Next ▶", key="slide_next", disabled=current == len(SLIDES) - 1, shortcut="Right")
    current += int(forward) - int(back)
    st.session_state["slide"] = SLIDES[current]
    with names:
        st.segmented_control("Slide", SLIDES, key="slide", required=True, label_visibility="collapsed")
    return SLIDES.index(st.session_state["slide"])


def _attack(result, model, panels: dict, row: dict, view: str) -> None:
    kind = urlstate.VIEW_KINDS[view]
    _figure(figures.result_pictures(panels, row, view, kind, FIGURE_HEIGHT), "deck-pictures")
    _explain("attack")
    widgets.metric_row(slides.attack_items(row))


def _perturbation(result, model, panels: dict, row: dict, view: str) -> None:
    _figure(
        figures.linked_images(
            [
                (label, panels[kind], "signed" if kind == "signed" else "rgb")
                for label, kind in urlstate.VIEW_KINDS.items()
            ],
            height=FIGURE_HEIGHT,
        ),
        "deck-views",
    )
    _explain("perturbation")
    widgets.metric_row(slides.perturbation_items(row))


def _heat(result, model, panels: dict, row: dict, view: str) -> None:
    heat = panels["heat"]
    if heat is None:
        st.info(f"No heat maps for this model: {panels['no_heat']}.")
        return
    opacity = st.session_state.get("heat_opacity", 0.5)
    _figure(figures.heat_pictures(panels, model.class_names, FIGURE_HEIGHT, opacity, plain=True), "deck-heat")
    _explain("heat")
    left, right = st.columns([3, 1])
    with left:
        numbers = slides.heat_numbers(result.delta[:1], heat)
        widgets.metric_row(slides.heat_items(numbers, model.class_names[heat["source_class"]]))
    right.slider("Heat-map opacity", 0.0, 1.0, opacity, 0.05, key="heat_opacity", help=glossary.help_text("Grad-CAM"))


def _spectrum(result, model, panels: dict, row: dict, view: str) -> None:
    # Beside the square, not under it: at the deck's type size a bar below squeezes the spectrum to a stamp.
    _figure(figures.spectrum_figure(panels["spectrum"], FIGURE_HEIGHT, bar_beside=True), "deck-spectrum")
    _explain("spectrum")
    widgets.metric_row(slides.spectrum_items(slides.spectrum_numbers(result.delta[:1])))


def _models(result, model, panels: dict, row: dict, view: str) -> None:
    numbers = slides.transfer_numbers(panels["predictions"], row["label"])
    _figure(figures.before_after(numbers["rows"], row["label_name"], height=FIGURE_HEIGHT), "deck-models")
    _explain("models")
    widgets.metric_row(slides.transfer_items(numbers))


_SLIDE_VIEWS = (_attack, _perturbation, _heat, _spectrum, _models)  # in the order of SLIDES


def present(result, model, panels: dict, view: str) -> int:
    """Draw the slide bar, the result's headline and the chosen slide (the Explorer's perturbation `view` on the
    first); returns the slide's number (from 1, as the link names it)."""
    st.html(CSS)
    slide = nav()
    with st.container(key="deck-headline"):
        widgets.headline(panels["record"])
    _SLIDE_VIEWS[slide](result, model, panels, panels["record"]["examples"][0], view)
    return slide + 1
