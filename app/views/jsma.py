"""JSMA lab: the pixels JSMA changes step by step, success vs Υ, and the hardness matrix."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app import figures, resources, state, widgets
from app.jobs import Progress
from engine import attacks, cost, domains, glossary, images, report
from engine.analysis import jsma_extras, masking


def _replay(model, x: torch.Tensor, target: int, theta: int, upsilon: float, pairs: int, against: str, key: tuple):
    found = state.analysis(key)
    if found is not None:
        return found
    frames = [x.detach().cpu().clone()]
    progress = Progress("JSMA", "jsma")

    def record(step, total, s):
        frames.append(s["x_adv"].detach().cpu().clone())
        return progress(step, total)

    result = jsma_extras.run_jsma(model, x, target, against=against, theta=theta, max_distortion=upsilon,
                                    pairs=pairs, callback=record)
    found = {"frames": frames, "words": report.headline(report.run_record(result, model)),
             "changed": float((result.delta.abs() > 0).float().mean()), "success": bool(result.success[0])}
    progress.finish(lambda: state.store_analysis(key, found))
    return found


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
    with torch.no_grad():
        source = int(model(x).argmax(1))
    _fresh_defaults(selection, own, jsma_extras.default_target(model, x))
    form = st.form("jsma-form")
    c = form.columns(5)
    target = c[0].selectbox("Target class", [i for i in range(len(names)) if i != source],
                            format_func=lambda i: f"{i}: {names[i]}", key="jsma.target",
                            help="starts at the image's runner-up: the class the model finds most likely after its own")
    theta = c[1].radio("Variant", [1, -1], format_func=lambda t: "increase (θ=+1)" if t > 0 else "decrease (θ=−1)",
                       horizontal=True, key="jsma.theta")
    against = c[2].radio("Target against", list(jsma_extras.AGAINST), format_func=jsma_extras.AGAINST.get,
                         key="jsma.against", help="what the saliency map weighs the target class against: the sum of "
                         "every other class (the paper, on ten classes), or the one class it must overtake (on a "
                         "thousand classes the sum is mostly classes that do not compete)")
    upsilon = c[3].slider("Υ (largest share of features changed)", 0.01, 0.3, step=0.005, key="jsma.upsilon")
    pairs = c[4].number_input("Pairs per step", 1, 1024, key="jsma.pairs",
                              help="1 is the paper's algorithm; photos need many pairs per step to finish quickly")
    go = form.form_submit_button("Run JSMA", type="primary")
    key = ("jsma", selection.model, selection.image_key, target, theta, upsilon, int(pairs), against)
    if state.analysis(key) is None and not go:
        st.info("Pick a target class and press Run JSMA to replay the pixels it changes, step by step.")
        return
    found = _replay(model, x, target, theta, float(upsilon), int(pairs), against, key)
    frames = found["frames"]
    words = found["words"]
    st.subheader(f"{words['title']} — {words['verdict']}")
    st.caption(f"{found['changed']:.2%} of features changed. {words['rounding'] or ''}".rstrip())
    step = st.slider("Iteration", 0, len(frames) - 1, len(frames) - 1, key="jsma.step") if len(frames) > 1 else 0
    frame = frames[step]
    changed = (frame - frames[0]).abs().amax(1)[0] > 0
    # On a photo one pixel is a fraction of a screen pixel: each is marked with its neighbours to stay visible.
    seen = masking.morph(changed[None], 1)[0].numpy() if max(changed.shape) > 64 else changed.numpy()
    changed = changed.numpy()
    marked = images.to_uint8(frame).copy()
    marked[seen] = (0.4 * marked[seen] + 0.6 * np.array([255, 0, 0])).astype(np.uint8)
    a, b = st.columns(2)
    a.image(images.enlarged(images.to_uint8(frame)), caption=f"after {step} iterations", width="stretch")
    ringed = ", each ringed by its neighbours" if seen.sum() > changed.sum() else ""
    b.image(images.enlarged(marked), caption=f"changed features in red ({int(changed.sum())} pixels{ringed})",
            width="stretch")
    st.markdown("**What it shows:** " + (
        f"changing {found['changed']:.2%} of the features ({int((frames[-1] - frames[0]).abs().amax(1)[0].gt(0).sum())}"
        f" pixels, in red) makes {model.name} answer {names[target]}: a few well-chosen pixels flip the decision."
        if found.get("success") else
        f"within Υ = {float(upsilon):.1%} JSMA did not make {model.name} answer {names[target]}: raise Υ, or pick a "
        "class nearer the image (the runner-up, which the target starts at)."))

    st.header("Success rate vs Υ")
    if not widgets.has_images(model, "The success-rate curve"):
        return
    c = st.columns(3)
    source = state.evaluation_source()
    most = min(500, resources.evaluation_capacity(selection.model, source))
    n = c[0].number_input("Images", 1, most, min(domain.defaults["images"], most), key="jsma.n")
    top, towards = own["curve_max"], own["curve_target"]
    aim = names[target] if towards == "chosen" else "their runner-up"
    curve_key = ("jsma-curve", selection.model, source, int(n), target if towards == "chosen" else None, theta,
                 int(pairs), against, top)
    curve = state.analysis(curve_key)
    clicked = c[1].button("Compute the curve", key="jsma.curve_go")

    def seconds() -> float:  # priced only when asked for: the first price of a model times it
        passes = cost.attack_passes(model, "jsma", {"max_distortion": top, "pairs": int(pairs)})
        return passes * cost.pass_seconds(model, int(n))

    if (clicked or widgets.pending("jsma-curve") == curve_key) and (curve is None or curve["cancelled"]) \
            and widgets.heavy_gate("jsma-curve", curve_key, seconds(), clicked, at_most=True):
        (xs, ys), _ = resources.evaluation(selection.model, int(n), source)
        xs, ys = xs.to(model.device), ys.to(model.device)
        rows, goals = jsma_extras.curve_targets(model, xs, ys, target, towards)
        progress = Progress("JSMA on every image", "jsma-curve")
        d = jsma_extras.distortions(model, xs[rows], ys[rows], goals, max_distortion=top, theta=theta,
                                      pairs=int(pairs), against=against, callback=progress)
        curve = {"rows": jsma_extras.success_curve(d.cpu(), np.linspace(0.0, top, 31)), "images": int(rows.numel()),
                 "cancelled": progress.cancelled}
        progress.finish(lambda: state.store_analysis(curve_key, curve))
    if curve:
        if curve["cancelled"]:
            st.info("Cancelled: the images the run had not finished count as failures, so the curve is a lower bound. "
                    "Press Compute the curve again for the full one.")
        st.plotly_chart(figures.lines(curve["rows"], "upsilon", "success_rate", y_format=".0%",
                                      title=f"JSMA success towards {aim}",
                                      x_title="Υ (largest share of features changed)", y_title="images that reach "
                                      "the target"), width="stretch", key="curve")
        st.markdown("**What it shows:** " + jsma_extras.curve_sentence(curve["rows"], aim,
                                                                          curve.get("images", int(n))))

    _table_and_robustness(model, selection, source, float(upsilon), int(pairs))

    if resources.evaluation_capacity(selection.model, source) >= 500:  # every source class needs images: not a gallery
        st.header("Hardness matrix")
        c = st.columns(3)
        classes = c[0].multiselect("Classes", list(range(len(names))), default=[c for c in (0, 1, 7, 9) if c < len(names)], format_func=lambda i: names[i],
                                   key="jsma.classes")
        per_pair = c[1].number_input("Images per pair", 1, 50, 5, key="jsma.per_pair")
        h_key = ("jsma-hardness", selection.model, tuple(sorted(classes)), int(per_pair), theta)
        rows = state.analysis(h_key)
        if c[2].button("Compute hardness", key="jsma.hard_go") and rows is None and len(classes) >= 2:
            (xs, ys), _ = resources.evaluation(selection.model, 2000, source)
            progress = Progress("JSMA for every source/target pair", "jsma-hardness")
            rows = jsma_extras.hardness_matrix(model, xs.to(model.device), ys.to(model.device),
                                                 classes=sorted(classes), per_pair=int(per_pair), theta=theta,
                                                 callback=progress)
            progress.finish(lambda: state.store_analysis(h_key, rows))
        if rows:
            order = sorted({r["source"] for r in rows} | {r["target"] for r in rows})
            m = np.full((len(order), len(order)), np.nan)
            for r in rows:
                if r["hardness"] is not None:
                    m[order.index(r["source"]), order.index(r["target"])] = r["hardness"]
            labels = [names[i] for i in order]
            st.plotly_chart(figures.matrix(m, labels, labels, "hardness H(source → target)", fmt=".4f",
                                           row_title="source class (the image's)", col_title="target class"),
                            width="stretch", key="hardness")


def _table_and_robustness(model, selection, source: str, upsilon: float, pairs: int) -> None:
    """Seed 001's increasing-vs-decreasing table and R(F), from a few images towards every other class."""
    st.header("Increasing vs decreasing, and robustness R(F)", help=glossary.help_text("increasing vs decreasing JSMA"))
    names = model.class_names
    if len(names) > 20:  # every image towards every other class: 999 attacks per photo
        st.info(f"The seed's table attacks each image towards every other class: {len(names) - 1} attacks per image "
                "here. Choose a model with few classes (a Fashion-MNIST one) for it.")
        return
    c = st.columns(3)
    most = min(50, resources.evaluation_capacity(selection.model, source))
    n = c[0].number_input("Images for the table", 1, most, min(2, most), key="jsma.table_n",
                          help=f"each image the model classifies correctly is attacked towards the {len(names) - 1} other classes")
    key = ("jsma-table", selection.model, source, int(n), upsilon, pairs)
    found = state.analysis(key)
    clicked = c[1].button("Compute table and R(F)", key="jsma.table_go")

    def seconds() -> float:  # two JSMA runs over every pair, and one Jacobian of every pair for A(X, t)
        batch = int(n) * (len(names) - 1)
        per_run = cost.attack_passes(model, "jsma", {"max_distortion": upsilon, "pairs": pairs})
        return (2 * per_run + 2) * cost.pass_seconds(model, batch)

    if (clicked or widgets.pending("jsma-table") == key) and found is None \
            and widgets.heavy_gate("jsma-table", key, seconds(), clicked, at_most=True):
        (xs, ys), _ = resources.evaluation(selection.model, int(n), source)
        xs, ys = xs.to(model.device), ys.to(model.device)
        progress = Progress("JSMA from every image to every other class", "jsma-table")
        rows = jsma_extras.jsma_table([model], xs, ys, max_distortion=upsilon, pairs=pairs, callback=progress)
        r = jsma_extras.robustness(model, xs, ys) if not progress.cancelled else None
        found = {"rows": rows, "robustness": r, "cancelled": progress.cancelled}
        progress.finish(lambda: state.store_analysis(key, found))
    if not found:
        return
    if found["cancelled"]:
        st.info("Cancelled: only the variants that finished are shown. Press Compute again for the rest.")
    seed = jsma_extras.SEED_TABLE
    pct = lambda v: "—" if v is None else f"{v:.1%}"  # noqa: E731
    st.dataframe([{"variant": f"{r['variant']} (θ = {r['theta']:+d})", "pairs": r["pairs"],
                   "success": f"{pct(r['success_rate'])} ± {pct(r['success_se'])}",
                   "mean distortion": pct(r["mean_distortion"]),
                   "seed (MNIST)": f"{pct(seed[r['theta']]['success_rate'])}, distortion "
                                   f"{'not given' if seed[r['theta']]['mean_distortion'] is None else pct(seed[r['theta']]['mean_distortion'])}"}
                  for r in found["rows"]], width="stretch", hide_index=True)
    st.caption(f"Υ = {upsilon:.1%}. Success is over every (image, other class) pair of the images the model gets right; "
               "mean distortion is the share of features changed, over the successes. The seed's figures are for an "
               "MNIST LeNet at Υ = 14.5 % (no distortion given for the decreasing variant).")
    r = found["robustness"]
    if r and r["R"] is not None:
        at = r["argmin"]
        c = st.columns(3)
        c[0].metric("R(F) = min A(X, t)", f"{r['R']:.3f}", help=glossary.help_text("robustness R(F)"))
        c[1].metric("mean A(X, t)", f"{r['mean_A']:.3f}", help=glossary.help_text("adversarial distance A(X, t)"))
        c[2].metric("Most exposed pair (smallest A)", f"{names[at['source']]} → {names[at['target']]}",
                    help=f"image {at['image']} of the evaluation images: the most features with positive saliency")
        st.caption(f"A(X, t) = 1 − the share of features whose saliency towards t is positive, over {r['pairs']} pairs; "
                   "a small A means many features help the attack. R(F) is the smallest: the model's most exposed pair. "
                   "The seed defines R(F) but reports no value for its network.")


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
