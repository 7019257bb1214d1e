"""Anatomy of a perturbation: averaging, masking effect, checkerboards, similarity, noise classes, universal δ."""

from __future__ import annotations

from functools import partial

import streamlit as st

from app import figures, recognisable_section, resources, state, universal_section, widgets
from engine import cost, domains, targets
from engine.analysis import checkerboard as cb
from engine.analysis import masking
from engine.analysis import recognisable as rec
from engine.glossary import help_text


def _mask(model, domain, x, selection: state.Selection):
    """Dark-background domains: a threshold; gallery photos: the committed mask or GrabCut; uploads: GrabCut."""
    c = st.columns(5)
    if domain.mask_threshold is not None:
        threshold = c[0].slider("Object threshold", 0.0, 0.5, domain.mask_threshold, 0.01, key="anatomy.threshold")
        mask = masking.threshold_mask(x, threshold)[0]
    else:
        mask = domain.stored_mask(selection.image_key, model) if selection.upload is None else None
        how = c[0].radio("Mask", masking.mask_kinds(mask), key="anatomy.mask_kind", help=masking.STORED_HELP)
        if how == "GrabCut":
            sliders = zip(c[1:], masking.BOX_SLIDERS)
            rect = masking.box(*(col.slider(*r[:-1], key=f"anatomy.{r[-1]}") for col, r in sliders))
            key = ("grabcut", selection.image_key, selection.model, rect)
            mask = widgets.cached(key, lambda: masking.grabcut_mask(x[0], rect), "GrabCut…")
    grow = st.slider("Grow (+) or shrink (−) the mask: 3×3 dilation/erosion steps", -10, 10, 0, key="anatomy.grow")
    return masking.morph(mask[None], grow)[0] if grow else mask


def page() -> None:
    started = widgets.page_start("Anatomy of a perturbation", "anatomy")
    if started is not None:
        _one_image(*started)
        universal_section.show(started[1])  # needs no averaged image: shown whatever the sections above did


def _one_image(selection, model, black_models) -> None:
    presenting = st.session_state.get("presentation")
    judges = black_models or [model]
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload).to(model.device)
    domain = domains.of(model)
    d = domain.defaults["anatomy"]
    options = rec.source_options(widgets.usable_models(), model, [m.name for m in black_models])
    with st.form("anatomy-form"):
        c = st.columns(6)
        attack = c[0].selectbox("Attack", rec.AVERAGED_ATTACKS, key="anatomy.attack")
        default = rec.extra_sources(options, domain.sources)
        extra = c[1].multiselect("More source models", options, default=default, key="anatomy.sources")
        copies = c[2].number_input("Noisy copies n", 1, 1000, d["copies"], key="anatomy.copies")
        sigma = c[3].number_input("σ", 0.0, 1.0, d["sigma"], 0.01, format="%.3f", key="anatomy.sigma")
        eps = c[4].number_input("ε (BIM, Square and δ')", 0.001, 1.0, d["eps"], 0.005, format="%.3f", key="anatomy.eps")
        steps = c[5].number_input("Steps", 1, 200, d["steps"], key="anatomy.steps")
        c = st.columns(4)
        targeted = c[0].toggle(
            "Targeted (generation effect)", key="anatomy.targeted", help=help_text("generation effect")
        )
        aim = c[1].selectbox("Target", [*targets.POLICIES, *model.class_names], key="anatomy.target")
        queries = c[2].number_input("Square: queries", 10, 10000, 300, 10, key="anatomy.queries")
        zero_init = c[3].checkbox(
            "Square: start from δ = 0", True, key="anatomy.zero_init", help=help_text("Square from δ = 0")
        )
        go = st.form_submit_button("Average", type="primary")
    settings = rec.averaging_settings(copies, sigma, eps, steps, queries, zero_init, aim if targeted else None)
    sources = [model] + [resources.model(n) for n in extra]
    key = ("anatomy", selection.model, selection.image_key, attack, tuple(extra), tuple(sorted(settings.items())))
    if state.analysis(key) is None and not (go or widgets.pending("anatomy") == key):
        st.info(rec.PRESS_AVERAGE)
        return
    labels = rec.aim(model, x, aim) if targeted else None
    if targeted and labels is None:
        st.error(f"{model.name} already classifies the image as {aim}: pick another target.")
        return
    price = partial(rec.averaging_seconds, attack, sources, settings)
    run = partial(rec.averages, sources, x, settings, attack, labels)
    deltas = widgets.gated_run("anatomy", key, go, price, f"Averaging {attack}", run, at_most=cost.stops_early(attack))
    if deltas is None:
        return
    st.caption(rec.sources_caption(sources, judges))
    # Targeted: each setting's panel says what the judges see in its δ.
    verdicts = rec.generation_verdicts(judges, labels, deltas, model.domain) if targeted else None
    panels = rec.average_panels(x, deltas, model.domain, targeted, verdicts, model.class_names)
    st.plotly_chart(figures.linked_images(panels, height=420 if presenting else 300), width="stretch", key="averages")
    if "noisy multi-model" not in deltas:
        st.warning("Cancelled before the noisy multi-model average finished: the sections below need it.")
        return
    y = rec.consensus_labels([model, *judges], x)
    recognisable_section.show(model, judges, y, labels, deltas, verdicts)

    st.header("Contour vs background")
    mask = _mask(model, domain, x, selection)
    left, right = st.columns([1, 2])
    left.image(masking.shown_mask(x, mask), caption=masking.mask_caption(mask), width="stretch")
    found = masking.mask_report(judges, x, y, deltas["noisy multi-model"], mask, eps)
    if found["note"]:
        st.warning(found["note"])
    right.dataframe(found["shown"], width="stretch")
    right.markdown(f"**What it shows:** {found['sentence']}")
    cols, charts = st.columns(3), figures.mask_sweeps(found["sweep"], found["linf"])
    # A flat line and a zero derivative say nothing: words instead of the first, nothing for the second.
    for i, (name, note) in enumerate((("sweep", found["flat"]), ("sweep-derivative", None), ("linf", found["still"]))):
        if not (i == 1 and found["flat"]):
            widgets.show_chart(cols[i], charts[i], name, note)
    st.caption(found["coverage"])
    _sections(model, domain.defaults, x, y, sources, judges, settings, (selection.model, selection.image_key))


def _sections(model, defaults: dict, x, y, sources, judges, settings, where: tuple) -> None:
    """Checkerboard artefacts, similarity across attacks and noise classes: each runs from its own button."""
    st.header("Checkerboard artefacts")
    widgets.explain("checkerboard")
    c = st.columns(3)
    sigmas = sorted(c[0].multiselect("σ values", cb.SIGMA_CHOICES, default=cb.DEFAULT_SIGMAS, key="anatomy.sigmas"))
    copies = int(c[1].number_input("Copies", 1, 2000, defaults["checkerboard_copies"], key="anatomy.cb_copies"))
    key = ("checkerboard", *where, tuple(sigmas), copies, settings["eps"], settings["steps"])
    go = c[2].button("Compute checkerboards", key="anatomy.cb_go") and bool(sigmas)
    # Priced only when asked for: the first price of a model times it (a second or so for a photo model).
    price = partial(cb.seconds, model, sigmas, copies, settings)
    run = partial(cb.for_settings, model, x, sigmas, copies, settings)
    rows = widgets.gated_run("checkerboard", key, go, price, "Checkerboard averages", run)
    if rows:
        st.plotly_chart(figures.linked_images(cb.panels(rows), height=320), width="stretch", key="checker")
    st.header("Similarity across attacks")
    key = ("similarity", *where, tuple(m.name for m in sources), tuple(sorted(settings.items())))
    go = st.button("Compare BIM, C&W and DeepFool", key="anatomy.sim_go")
    price, run = partial(rec.similarity_seconds, sources, settings), partial(rec.similarity, sources, x, y, settings)
    rows = widgets.gated_run("similarity", key, go, price, rec.SIMILARITY_RUN, run, at_most=True)
    for i, (col, m) in enumerate(zip(st.columns(2) if rows else [], rec.similarity_matrices(rows or []).items())):
        col.plotly_chart(figures.cosines(*m, rec.SIMILARITY_ATTACKS), width="stretch", key=f"sim-{i}")
    st.header("Noise classes")
    models = [model, *judges]
    key = ("noise", tuple(m.name for m in models))
    go = st.button("Classify Gaussian noise", key="anatomy.noise_go")
    rows = widgets.cached(key, lambda: rec.noise_classes(models, count=defaults["noise_count"]), rec.NOISE_RUN, go)
    for i, (col, m) in enumerate(zip(st.columns(len(models)) if rows else [], models)):
        col.plotly_chart(figures.noise_bars(rows, m.name), width="stretch", key=f"noise-{i}")


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
