"""JSMA lab: the pixels JSMA changes step by step, success vs Υ, and the hardness matrix."""

from __future__ import annotations

import streamlit as st

from app import figures, resources, state, widgets
from engine import domains, glossary, images
from engine.analysis import jsma_extras as jx


def _fresh_defaults(selection, own: dict, default_target: int) -> None:
    """A new image starts at its own default target; a new model at its domain's settings too. (Streamlit also
    forgets a widget's value when a run on another page left it out.)"""
    seen = st.session_state.get("jsma.for")
    st.session_state["jsma.for"] = (selection.model, selection.image_key)
    starts = {"jsma.target": (default_target, seen != (selection.model, selection.image_key))}
    new_model = seen is None or seen[0] != selection.model
    starts.update({f"jsma.{name}": (own[name], new_model) for name in ("against", "upsilon", "pairs")})
    for key, (value, fresh) in starts.items():
        if fresh or key not in st.session_state:
            st.session_state[key] = value


def page() -> None:
    started = widgets.page_start("JSMA lab", "jsma")
    if started is None:
        return
    selection, model, _ = started
    domain = domains.of(model)
    own = domain.defaults["jsma"]
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload).to(model.device)
    names = model.class_names
    _fresh_defaults(selection, own, jx.default_target(model, x))
    form = st.form("jsma-form")
    c = form.columns(5)
    target = c[0].selectbox(
        "Target class",
        jx.target_choices(model, x),
        format_func=lambda i: f"{i}: {names[i]}",
        key="jsma.target",
        help="starts at the image's runner-up: the class the model finds most likely after its own",
    )
    theta = c[1].radio(
        "Variant",
        [1, -1],
        format_func=lambda t: "increase (θ=+1)" if t > 0 else "decrease (θ=−1)",
        horizontal=True,
        key="jsma.theta",
    )
    against = c[2].radio(
        "Target against", list(jx.AGAINST), format_func=jx.AGAINST.get, key="jsma.against", help=jx.AGAINST_HELP
    )
    upsilon = float(c[3].slider("Υ (largest share of features changed)", 0.01, 0.3, step=0.005, key="jsma.upsilon"))
    pairs = int(
        c[4].number_input(
            "Pairs per step",
            1,
            1024,
            key="jsma.pairs",
            help="1 is the paper's algorithm; photos need many pairs per step to finish quickly",
        )
    )
    go = form.form_submit_button("Run JSMA", type="primary")
    key = ("jsma", selection.model, selection.image_key, target, theta, upsilon, pairs, against)
    if state.analysis(key) is None and not go:
        st.info("Pick a target class and press Run JSMA to replay the pixels it changes, step by step.")
        return
    found = widgets.gated_run(
        "jsma",
        key,
        go,
        lambda: 0.0,
        "JSMA",
        lambda p: jx.replay(model, x, target, theta=theta, upsilon=upsilon, pairs=pairs, against=against, callback=p),
    )
    frames, words = found["frames"], found["words"]
    st.subheader(f"{words['title']} — {words['verdict']}")
    st.caption(f"{found['changed']:.2%} of features changed. {words['rounding'] or ''}".rstrip())
    step = st.slider("Iteration", 0, len(frames) - 1, len(frames) - 1, key="jsma.step") if len(frames) > 1 else 0
    shown = jx.marked_frame(frames, step)
    a, b = st.columns(2)
    a.image(images.enlarged(shown["picture"]), caption=f"after {step} iterations", width="stretch")
    ringed = ", each ringed by its neighbours" if shown["ringed"] else ""
    b.image(
        images.enlarged(shown["marked"]),
        caption=f"changed features in red ({shown['pixels']} pixels{ringed})",
        width="stretch",
    )
    st.markdown("**What it shows:** " + jx.replay_sentence(found, model.name, names[target], upsilon))

    st.header("Success rate vs Υ")
    if not widgets.has_images(model, "The success-rate curve"):
        return
    c = st.columns(3)
    source = state.evaluation_source()
    n = widgets.count_input(c[0], "Images", selection.model, source, 500, domain.defaults["images"], "jsma.n")
    top, towards = own["curve_max"], own["curve_target"]
    aim = names[target] if towards == "chosen" else "their runner-up"
    curve_key = (
        "jsma-curve",
        selection.model,
        source,
        n,
        target if towards == "chosen" else None,
        theta,
        pairs,
        against,
        top,
    )

    def compute_curve(progress) -> dict:
        xs, ys = (t.to(model.device) for t in resources.evaluation(selection.model, n, source)[0])
        got = jx.success_vs_upsilon(
            model,
            xs,
            ys,
            target,
            towards,
            max_distortion=top,
            theta=theta,
            pairs=pairs,
            against=against,
            callback=progress,
        )
        return {**got, "cancelled": progress.cancelled}

    # Priced only when asked for: the first price of a model times it.
    curve = widgets.gated_run(
        "jsma-curve",
        curve_key,
        c[1].button("Compute the curve", key="jsma.curve_go"),
        lambda: jx.curve_seconds(model, n, top, pairs),
        "JSMA on every image",
        compute_curve,
        at_most=True,
        redo=lambda found: found["cancelled"],
    )
    if curve:
        if curve["cancelled"]:
            st.info(
                "Cancelled: the images the run had not finished count as failures, so the curve is a lower bound. "
                "Press Compute the curve again for the full one."
            )
        st.plotly_chart(figures.jsma_curve(curve["rows"], aim), width="stretch", key="curve")
        st.markdown("**What it shows:** " + jx.curve_sentence(curve["rows"], aim, curve.get("images", n)))

    _table_and_robustness(model, selection, source, upsilon, pairs)

    if resources.evaluation_capacity(selection.model, source) >= 500:  # every source class needs images: not a gallery
        st.header("Hardness matrix")
        c = st.columns(3)
        classes = sorted(
            c[0].multiselect(
                "Classes",
                list(range(len(names))),
                default=jx.hardness_classes(len(names)),
                format_func=lambda i: names[i],
                key="jsma.classes",
            )
        )
        per_pair = int(c[1].number_input("Images per pair", 1, 50, 5, key="jsma.per_pair"))

        def hardness(progress) -> list[dict]:
            xs, ys = (t.to(model.device) for t in resources.evaluation(selection.model, 2000, source)[0])
            return jx.hardness_matrix(model, xs, ys, classes=classes, per_pair=per_pair, theta=theta, callback=progress)

        rows = widgets.gated_run(
            "jsma-hardness",
            ("jsma-hardness", selection.model, tuple(classes), per_pair, theta),
            c[2].button("Compute hardness", key="jsma.hard_go") and len(classes) >= 2,
            lambda: 0.0,
            "JSMA for every source/target pair",
            hardness,
        )
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
    n = widgets.count_input(
        c[0],
        "Images for the table",
        selection.model,
        source,
        50,
        2,
        "jsma.table_n",
        help=f"each image the model classifies correctly is attacked towards the {len(names) - 1} other classes",
    )

    def compute(progress) -> dict:
        xs, ys = (t.to(model.device) for t in resources.evaluation(selection.model, n, source)[0])
        rows = jx.jsma_table([model], xs, ys, max_distortion=upsilon, pairs=pairs, callback=progress)
        r = jx.robustness(model, xs, ys) if not progress.cancelled else None
        return {"rows": rows, "robustness": r, "cancelled": progress.cancelled}

    found = widgets.gated_run(
        "jsma-table",
        ("jsma-table", selection.model, source, n, upsilon, pairs),
        c[1].button("Compute table and R(F)", key="jsma.table_go"),
        lambda: jx.table_seconds(model, n, upsilon, pairs),
        "JSMA from every image to every other class",
        compute,
        at_most=True,
    )
    if not found:
        return
    if found["cancelled"]:
        st.info("Cancelled: only the variants that finished are shown. Press Compute again for the rest.")
    st.dataframe(jx.shown_table(found["rows"]), width="stretch", hide_index=True)
    st.caption(jx.table_caption(upsilon))
    r = found["robustness"]
    if r and r["R"] is not None:
        for col, (label, value, words) in zip(st.columns(3), jx.robustness_metrics(r, names)):
            col.metric(label, value, help=words)
        st.caption(jx.robustness_caption(r))


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
