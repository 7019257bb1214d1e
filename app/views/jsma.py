"""JSMA lab: the pixels JSMA changes step by step, success vs Υ, and the hardness matrix."""

from __future__ import annotations

from functools import partial
from operator import itemgetter

import streamlit as st

from app import figures, resources, state, widgets
from engine import domains, glossary, images
from engine.analysis import jsma_extras as jx
from engine.analysis import jsma_views as jv


def page() -> None:
    started = widgets.page_start("JSMA lab", "jsma")
    if started is None:
        return
    selection, model, _ = started
    domain = domains.of(model)
    own = domain.defaults["jsma"]
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload).to(model.device)
    names = model.class_names
    here = (selection.model, selection.image_key)
    widgets.start_values(jv.starts(st.session_state.get("jsma.for"), here, own, jx.default_target(model, x)))
    st.session_state["jsma.for"] = here
    form = st.form("jsma-form")
    c = form.columns(5)
    classes = jx.target_choices(model, x)
    target = c[0].selectbox(
        "Target class", classes, format_func=lambda i: f"{i}: {names[i]}", key="jsma.target", help=jv.TARGET_HELP
    )
    theta = c[1].radio("Variant", list(jv.THETAS), format_func=jv.THETAS.get, horizontal=True, key="jsma.theta")
    against = c[2].radio(
        "Target against", list(jx.AGAINST), format_func=jx.AGAINST.get, key="jsma.against", help=jx.AGAINST_HELP
    )
    upsilon = float(c[3].slider("Υ (largest share of features changed)", 0.01, 0.3, step=0.005, key="jsma.upsilon"))
    pairs = int(c[4].number_input("Pairs per step", 1, 1024, key="jsma.pairs", help=jv.PAIRS_HELP))
    go = form.form_submit_button("Run JSMA", type="primary")
    key = ("jsma", selection.model, selection.image_key, target, theta, upsilon, pairs, against)
    if state.analysis(key) is None and not go:
        st.info(jv.PRESS_RUN)
        return
    run = {"theta": theta, "pairs": pairs, "against": against}
    found = widgets.gated_run(
        "jsma", key, go, lambda: 0.0, "JSMA", lambda p: jx.replay(model, x, target, upsilon=upsilon, callback=p, **run)
    )
    frames, words = found["frames"], found["words"]
    st.subheader(f"{words['title']} — {words['verdict']}")
    st.caption(jv.changed_caption(found))
    step = st.slider("Iteration", 0, len(frames) - 1, len(frames) - 1, key="jsma.step") if len(frames) > 1 else 0
    shown = jx.marked_frame(frames, step)
    a, b = st.columns(2)
    a.image(images.enlarged(shown["picture"]), caption=f"after {step} iterations", width="stretch")
    b.image(images.enlarged(shown["marked"]), caption=jv.marked_caption(shown), width="stretch")
    st.markdown("**What it shows:** " + jx.replay_sentence(found, model.name, names[target], upsilon))

    st.header("Success rate vs Υ")
    if not widgets.has_images(model, "The success-rate curve"):
        return
    c = st.columns(3)
    source = state.evaluation_source()
    n = widgets.count_input(c[0], "Images", selection.model, source, 500, domain.defaults["images"], "jsma.n")
    top, towards = own["curve_max"], own["curve_target"]
    aim = jv.curve_aim(names, target, towards)
    chosen = target if towards == "chosen" else None
    curve_key = ("jsma-curve", selection.model, source, n, chosen, theta, pairs, against, top)

    def compute_curve(progress) -> dict:
        xs, ys = (t.to(model.device) for t in resources.evaluation(selection.model, n, source)[0])
        got = jx.success_vs_upsilon(model, xs, ys, target, towards, max_distortion=top, callback=progress, **run)
        return {**got, "cancelled": progress.cancelled}

    # Priced only when asked for: the first price of a model times it.
    price = partial(jx.curve_seconds, model, n, top, pairs)
    go = c[1].button("Compute the curve", key="jsma.curve_go")
    curve = widgets.gated_run(
        "jsma-curve", curve_key, go, price, jv.CURVE_RUN, compute_curve, at_most=True, redo=itemgetter("cancelled")
    )
    if curve:
        if curve["cancelled"]:
            st.info(jv.CURVE_CANCELLED)
        st.plotly_chart(figures.jsma_curve(curve["rows"], aim), width="stretch", key="curve")
        st.markdown("**What it shows:** " + jx.curve_sentence(curve["rows"], aim, curve.get("images", n)))
    _table_and_robustness(model, selection, source, upsilon, pairs)
    if resources.evaluation_capacity(selection.model, source) >= 500:  # every source class needs images: not a gallery
        st.header("Hardness matrix")
        c = st.columns(3)
        everyone, start = list(range(len(names))), jx.hardness_classes(len(names))
        picked = c[0].multiselect("Classes", everyone, default=start, format_func=names.__getitem__, key="jsma.classes")
        classes = sorted(picked)
        per_pair = int(c[1].number_input("Images per pair", 1, 50, 5, key="jsma.per_pair"))

        def hardness(progress) -> list[dict]:
            xs, ys = (t.to(model.device) for t in resources.evaluation(selection.model, 2000, source)[0])
            return jx.hardness_matrix(model, xs, ys, classes=classes, per_pair=per_pair, theta=theta, callback=progress)

        key = ("jsma-hardness", selection.model, tuple(classes), per_pair, theta)
        go = c[2].button("Compute hardness", key="jsma.hard_go") and len(classes) >= 2
        rows = widgets.gated_run("jsma-hardness", key, go, lambda: 0.0, "JSMA for every source/target pair", hardness)
        if rows:
            m, order = jx.hardness_grid(rows)
            st.plotly_chart(figures.hardness(m, [names[i] for i in order]), width="stretch", key="hardness")


def _table_and_robustness(model, selection, source: str, upsilon: float, pairs: int) -> None:
    """The increasing-vs-decreasing table and R(F), from a few images towards every other class."""
    st.header("Increasing vs decreasing, and robustness R(F)", help=glossary.help_text("increasing vs decreasing JSMA"))
    names = model.class_names
    if len(names) > 20:  # every image towards every other class: 999 attacks per photo
        st.info(jx.too_many_classes(len(names)))
        return
    c = st.columns(3)
    words = jv.table_images_help(len(names))
    n = widgets.count_input(c[0], "Images for the table", selection.model, source, 50, 2, "jsma.table_n", help=words)

    def compute(progress) -> dict:
        xs, ys = (t.to(model.device) for t in resources.evaluation(selection.model, n, source)[0])
        rows = jx.jsma_table([model], xs, ys, max_distortion=upsilon, pairs=pairs, callback=progress)
        r = jx.robustness(model, xs, ys) if not progress.cancelled else None
        return {"rows": rows, "robustness": r, "cancelled": progress.cancelled}

    key = ("jsma-table", selection.model, source, n, upsilon, pairs)
    go = c[1].button("Compute table and R(F)", key="jsma.table_go")
    found = widgets.gated_run(
        "jsma-table", key, go, lambda: jx.table_seconds(model, n, upsilon, pairs), jv.TABLE_RUN, compute, at_most=True
    )
    if not found:
        return
    if found["cancelled"]:
        st.info(jv.TABLE_CANCELLED)
    st.dataframe(jx.shown_table(found["rows"]), width="stretch", hide_index=True)
    st.caption(jx.table_caption(upsilon))
    r = found["robustness"]
    if r and r["R"] is not None:
        for col, (label, value, words) in zip(st.columns(3), jx.robustness_metrics(r, names)):
            col.metric(label, value, help=words)
        st.caption(jx.robustness_caption(r))


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
