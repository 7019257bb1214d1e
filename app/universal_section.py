"""The Anatomy page's universal perturbation: one δ fitted to many images, judged on images it never saw."""

from __future__ import annotations

import functools

import streamlit as st

from app import figures, resources, state, widgets
from engine import domains, images
from engine.analysis import universal

ABOUT = (
    "Every other section of this page studies the perturbation of one image. Here a single δ, v, is built for a "
    "whole set of images: pass "
    "after pass, each image v does not yet fool adds the small step that would fool it, and v is cut back to the "
    "ε-ball. If the same v then changes the model's answer on images it was never fitted to, far more often than "
    "random noise of its size does, it carries no one image's features but a direction the model reads as a "
    "class: the flipped images pile into a few dominant classes."
)


def _images_caption(domain, source: str, available: int, n_fit: int, n_held: int) -> str:
    if source != resources.BUILTIN or domain.custom:
        return f"Fitted on the first {n_fit} of your labelled images, judged on the next {n_held}."
    if domain.indexed:
        return f"Fitted on the first {n_fit} {domain.title} test images, judged on the next {n_held}."
    return (
        f"The photo gallery holds only {available} photos, so v is fitted on the first {n_fit} and judged on the "
        f"other {n_held}: one photo moves the held-out rate by {1 / n_held:.0%}, so read it as a rough figure."
    )


def show(model) -> None:
    """The section, under its own heading; a model with no images in its world gets a note instead."""
    st.header("One perturbation for every image (universal)")
    st.markdown(ABOUT)
    source = state.evaluation_source()
    available = resources.evaluation_capacity(model.name, source)
    if available < 2:
        st.info(widgets.needs_images_text("The universal perturbation"))
        return
    domain = domains.of(model)
    own = domain.defaults["universal"]
    start = universal.sizes(domain.defaults, available)[0]
    with st.form("universal-form"):
        c = st.columns(3)
        # The domain (and image set) in the keys: their own defaults and limits when the model changes world.
        eps = c[0].number_input(
            "ε (L∞)", 0.001, 1.0, float(own["params"]["eps"]), 0.01, format="%.3f", key=f"universal.eps.{domain.name}"
        )
        passes = c[1].number_input(
            "Passes over the images at most",
            1,
            50,
            int(own["params"]["max_iter"]),
            key=f"universal.passes.{domain.name}",
        )
        n_fit = c[2].number_input(
            "Images fitted on", 1, available - 1, min(start, available - 1), key=f"universal.fit.{domain.name}.{source}"
        )
        go = st.form_submit_button("Fit one perturbation for every image", type="primary")
    n_fit, n_held = universal.sizes(domain.defaults, available, int(n_fit))
    params = {**own["params"], "eps": float(eps), "max_iter": int(passes)}
    key = ("universal", model.name, source, n_fit, n_held, tuple(sorted(params.items())))
    data = functools.cache(lambda: resources.evaluation(model.name, n_fit + n_held, source)[0])

    def run(progress) -> dict:
        x, y = (t.to(model.device) for t in data())
        return universal.study(model, x, y, n_fit, callback=progress, **params)

    price = functools.partial(universal.seconds, model, n_fit, n_held, params)
    # A cancelled fit keeps its partial v; asking again fits afresh.
    found = widgets.gated_run(
        "universal", key, go, price, "Universal perturbation", run, at_most=True, redo=lambda f: f["stopped"]
    )
    if found is None:
        st.caption(_images_caption(domain, source, available, n_fit, n_held))
        return
    _result(found, _images_caption(domain, source, available, n_fit, n_held))


def _result(found: dict, caption: str) -> None:
    held, train = found["held_out"], found["train"]
    if found["stopped"]:
        st.warning(f"Cancelled after {found['steps']} steps: v below is the partial one. Fit again to finish it.")
    left, right = st.columns([1, 2])
    left.image(
        images.enlarged(found["picture"], 224),
        caption=f"v: mid-grey is no change, the ends ±{held['linf']:.3g} (‖v‖₂ = {held['l2']:.3g})",
        width="stretch",
    )
    with right:
        widgets.metric_row(
            [
                ("Fooled, held out", f"{held['fooling_rate']:.0%}", "universal perturbation"),
                ("Noise of its size", f"{held['noise_fooling_rate']:.0%}", None),
                ("Fooled, fitted", f"{train['fooling_rate']:.0%}", None),
            ]
        )
        accuracy = f" Without v the model gets {held['clean_accuracy']:.0%} of the held-out images right."
        st.caption(caption + (accuracy if "clean_accuracy" in held else ""))
        if held["dominant"]:
            shares = held["dominant"]
            figure = figures.bars(list(shares), list(shares.values()), "where the flipped held-out images land")
            st.plotly_chart(figure, width="stretch", key="universal-classes")
    widgets.what_it_shows(universal.summary(found))
    p, steps = found["params"], found["steps"]
    st.caption(
        f"Fitted in {found['seconds']:.1f} s: {steps} step{'s' * (steps != 1)} of up to {p['batch']} images each, "
        f"{p['inner']} as the per-image attack; the fooled share counts predictions that move off the clean one."
    )
