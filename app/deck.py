"""Presentation mode: the Explorer's result as a deck for a projector, one idea a slide.

Every slide is the same frame, sized so that it ends inside a 1280×720 screen with the sidebar folded:
the slide bar (◀, the slide names, ▶; ←/→ on the keyboard), the headline, one figure, two lines of
explanation and the slide's key numbers. Text is 16 px or larger, so the back row can read it.
"""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app import figures, urlstate
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

# Two lines at 1280 px each: the one idea of the slide, in the app's own words.
EXPLAIN = {
    "attack": "δ is too small to see, yet the white-box model changes its answer. Gradient attacks step along the "
              "loss gradient within ε; C&W and DeepFool look for the smallest change that crosses the boundary.",
    "perturbation": "The same δ three ways: signed (red brighter, blue darker), |δ| amplified to show where the attack "
                    "acts, and display-normalised, where an averaged δ can start to look like the object.",
    "heat": "Grad-CAM: warm regions are the model's evidence for a class. Compare the clean image's evidence for its "
            "class with the adversarial image's; the last panel keeps δ only where the model looks.",
    "spectrum": "δ's power at each spatial frequency, zero in the centre. Noise spreads evenly; a regular grid (the "
                "checkerboard artefacts of strided layers) shows up as bright peaks off the centre.",
    "models": "The black-box models never saw the attack. When their answer changes too, the perturbation transfers: "
              "each bar is a model's confidence in the true class, before and after.",
}


def _large(fig):
    """The deck's type size on a figure built for the page."""
    # Streamlit's chart theme sizes ticks and legends on its own: each is set here, not only the default font.
    fig.update_layout(font={"size": FONT}, title_font_size=FONT + 1, legend_font_size=FONT)
    fig.update_xaxes(tickfont_size=FONT - 1, title_font_size=FONT)
    fig.update_yaxes(tickfont_size=FONT - 1, title_font_size=FONT)
    fig.update_annotations(font_size=FONT)
    fig.update_traces(textfont_size=FONT, selector={"type": "bar"})
    fig.update_traces(colorbar_tickfont_size=FONT - 1, colorbar_title_font_size=FONT, selector={"type": "heatmap"})
    return fig


def _figure(fig, key: str) -> None:
    st.plotly_chart(_large(fig), width="stretch", key=key)


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


def _explain(concept: str) -> None:
    with st.container(key="deck-explain"):
        st.markdown(EXPLAIN[concept])


def _numbers(items: list[tuple[str, str, str | None]]) -> None:
    """The slide's key numbers, one metric each: (label, value, glossary term or None)."""
    for column, (label, value, term) in zip(st.columns(len(items)), items):
        column.metric(label, value, help=glossary.help_text(term) if term else None)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _attack(panels: dict, row: dict, view: str, views: dict) -> None:
    _figure(figures.result_pictures(panels, row, view, views[view], FIGURE_HEIGHT), "deck-pictures")
    _explain("attack")
    steps = ("Queries", row["queries"], "queries") if row["queries"] is not None else \
        ("Iterations", row["iterations"], "iterations")
    _numbers([("L∞ (of 255 levels)", f"{row['linf'] * 255:.1f}", "L∞"), ("L2", f"{row['l2']:.3f}", "L2"),
              ("SSIM", f"{row['ssim']:.3f}", "SSIM"), (steps[0], f"{steps[1]:,}", steps[2])])


def _perturbation(panels: dict, row: dict, views: dict) -> None:
    _figure(figures.linked_images(
        [(label, panels[kind], "signed" if kind == "signed" else "rgb") for label, kind in views.items()],
        height=FIGURE_HEIGHT), "deck-views")
    _explain("perturbation")
    _numbers([("Pixels changed", f"{row['l0_pct']:.1f} %", "L0"), ("Largest change", f"{row['linf'] * 255:.1f} / 255", "L∞"),
              ("L2", f"{row['l2']:.3f}", "L2")])


def _heat(result, panels: dict, names: list[str]) -> None:
    heat = panels["heat"]
    if heat is None:
        st.info(f"No heat maps for this model: {panels['no_heat']}.")
        return
    src, adv = names[heat["source_class"]], names[heat["adversarial_class"]]
    opacity = st.session_state.get("heat_opacity", 0.5)
    _figure(figures.linked_images([
        (f"clean · evidence for {src}", (panels["clean"], heat["clean · source"]), "overlay"),
        (f"adversarial · evidence for {adv}", (panels["adversarial"], heat["adversarial · adversarial class"]), "overlay"),
        (f"adversarial · evidence for {src}", (panels["adversarial"], heat["adversarial · source"]), "overlay"),
        ("δ where the clean map is warm", panels["masked"], "signed"),
    ], height=FIGURE_HEIGHT, opacity=opacity), "deck-heat")
    _explain("heat")
    numbers = slides.heat_numbers(result.delta[:1], heat)
    kept = "—" if numbers["kept"] is None else f"{numbers['kept']:.2f}"
    left, right = st.columns([3, 1])
    with left:
        _numbers([(f"{src}: clean vs adversarial map (correlation)", kept, None),
                  (f"|δ| in the warmest {numbers['hot_share']:.0%} of pixels", _percent(numbers["in_hot"]), None)])
    right.slider("Heat-map opacity", 0.0, 1.0, opacity, 0.05, key="heat_opacity", help=glossary.help_text("Grad-CAM"))


def _spectrum(result, panels: dict) -> None:
    fig = figures.linked_images([("power spectrum of δ (log₁₀)", panels["spectrum"], "spectrum")],
                                height=FIGURE_HEIGHT, link=False)
    # Beside the square, not under it: at the deck's type size a bar below squeezes the spectrum to a stamp.
    fig.update_traces(colorbar={"orientation": "v", "x": 1.0, "xanchor": "left", "y": 0.5, "yanchor": "middle",
                                "len": 0.9, "title": {"side": "right"}}, selector={"type": "heatmap"})
    _figure(fig, "deck-spectrum")
    _explain("spectrum")
    numbers = slides.spectrum_numbers(result.delta[:1])
    period = "—" if numbers["period"] is None else f"{numbers['period']:.1f} px"
    prominence = "—" if numbers["prominence"] is None else f"{numbers['prominence']:.0f}×"
    _numbers([("Strongest repeat: period", period, None), ("Its peak over the median power", prominence, None),
              ("Power in detail under 4 px", _percent(numbers["fine_share"]), None)])


def _models(panels: dict, row: dict) -> None:
    numbers = slides.transfer_numbers(panels["predictions"], row["label"])
    _figure(figures.before_after(numbers["rows"], row["label_name"], height=FIGURE_HEIGHT), "deck-models")
    _explain("models")
    items = [("Models fooled", f"{numbers['fooled']} of {numbers['models']}", None)]
    if numbers["blacks"]:
        items.append(("Black boxes fooled", f"{numbers['black_fooled']} of {numbers['blacks']}", "black-box model"))
    _numbers(items)


def present(result, model, panels: dict, row: dict, view: str, views: dict, headline: Callable[[], object]) -> int:
    """Draw the slide bar, the result's `headline()` and the chosen slide; returns its number (from 1, as the link
    names it)."""
    st.html(CSS)
    slide = nav()
    with st.container(key="deck-headline"):
        headline()
    if slide == 0:
        _attack(panels, row, view, views)
    elif slide == 1:
        _perturbation(panels, row, views)
    elif slide == 2:
        _heat(result, panels, model.class_names)
    elif slide == 3:
        _spectrum(result, panels)
    else:
        _models(panels, row)
    return slide + 1
