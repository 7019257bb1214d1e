"""Anatomy of a perturbation: averaging, masking effect, checkerboards, similarity, noise classes."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app import figures, resources, state, widgets
from app.jobs import Progress
from app.text import EXPLAIN
from engine import cost, domains, glossary, images, targets
from engine.analysis import checkerboard, masking, recognisable

ATTACKS = ("bim", "cw", "deepfool")  # the similarity section compares these three
AVERAGED = (*ATTACKS, "square")  # Square: query-only, seed 002 §5.1


def _params(attack: str, settings: dict) -> dict:
    eps, steps = settings["eps"], settings["steps"]
    if attack == "bim":
        return {"eps": eps, "steps": steps, "alpha": 2 * eps / steps}  # the thesis' α = 2ε/K
    if attack == "square":
        return {"eps": eps, "n_queries": settings["queries"], "zero_init": settings["zero_init"]}
    return {"steps": steps}  # C&W and DeepFool find their own size


def _average_all(sources, x, settings: dict, attack: str, aim, key: tuple):
    """δ for single / multi / noisy multi, cached; cancelling keeps what finished. Targeted: `aim` = (y, target)."""
    found = state.analysis(key)
    if found is not None:
        return found
    progress = Progress(f"Averaging {attack}", "anatomy")
    y, target = aim if aim is not None else (None, None)
    deltas = recognisable.perturbations(sources, x, y, {attack: _params(attack, settings)}, target=target,
                                        copies=settings["copies"], sigma=settings["sigma"], callback=progress)
    found = {setting: delta for (_, setting), delta in deltas.items()}  # a cancelled one: the rows it finished
    progress.finish(lambda: state.store_analysis(key, found))
    return found


def _aim(model, x, policy: str):
    """(source class, target class) of the image under a target policy or class name; None if they coincide."""
    with torch.no_grad():
        y = model(x).argmax(1)
    names = model.class_names
    target = targets.choose(model, x, policy if policy in targets.POLICIES else names.index(policy), y=y)
    if bool((target == y).any()):
        st.error(f"{model.name} already classifies the image as {policy}: pick another target.")
        return None
    return y, target


def _generation_section(rows: list[dict], names: list[str], target) -> None:
    """The judges' verdicts on the targeted δ alone, scaled to the display peak."""
    st.header("Generation effect")
    st.caption(f"Target: {names[int(target[0])]}. Each judge classifies the display-normalised targeted δ alone "
               "(no image under it); the thesis sees the target's features drawn in it (a hen's comb grows "
               "towards cock).")
    st.dataframe([{"setting": r["setting"], "judge": r["model"], "judged as": names[r["most common class"]],
                   "target class share": f"{r['target class share']:.0%}",
                   "source class share": f"{r['source class share']:.0%}"} for r in rows], width="stretch")


def _mask(model, x: torch.Tensor, selection: state.Selection) -> torch.Tensor:
    """Dark-background domains: a threshold; gallery photos: the committed mask or GrabCut; uploads: GrabCut. Adjustable."""
    c = st.columns(5)
    domain = domains.of(model)
    if domain.mask_threshold is not None:
        threshold = c[0].slider("Object threshold", 0.0, 0.5, domain.mask_threshold, 0.01, key="anatomy.threshold")
        mask = masking.threshold_mask(x, threshold)[0]
    else:
        stored = domain.stored_mask(selection.image_key, model) if selection.upload is None else None
        how = c[0].radio("Mask", ["stored", "GrabCut"] if stored is not None else ["GrabCut"], key="anatomy.mask_kind",
                         help="stored: the gallery photo's committed mask, or the one that came with your images")
        if how == "stored":
            mask = stored
        else:
            left = c[1].slider("Box left", 0.0, 0.9, 0.1, 0.05, key="anatomy.left")
            top = c[2].slider("Box top", 0.0, 0.9, 0.1, 0.05, key="anatomy.top")
            width = c[3].slider("Box width", 0.1, 1.0, 0.8, 0.05, key="anatomy.width")
            height = c[4].slider("Box height", 0.1, 1.0, 0.8, 0.05, key="anatomy.height")
            rect = (left, top, min(width, 1.0 - left), min(height, 1.0 - top))
            key = ("grabcut", selection.image_key, selection.model, rect)
            mask = state.analysis(key)
            if mask is None:
                with st.spinner("GrabCut…"):
                    mask = masking.grabcut_mask(x[0], rect)
                state.store_analysis(key, mask)
    grow = st.slider("Grow (+) or shrink (−) the mask: 3×3 dilation/erosion steps", -10, 10, 0, key="anatomy.grow")
    return masking.morph(mask[None], grow)[0] if grow else mask


def _overlay(x: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    rgb = images.to_uint8(x).astype(np.float32)
    m = mask[0].cpu().numpy().astype(bool)
    rgb[~m] *= 0.35
    rgb[m] = 0.6 * rgb[m] + 0.4 * np.array([255, 60, 60])
    return rgb.astype(np.uint8)


def page() -> None:
    started = widgets.page_start("Anatomy of a perturbation", "anatomy")
    if started is None:
        return
    selection, model, black_models = started
    presenting = st.session_state.get("presentation")
    blacks = [m.name for m in black_models]
    judges = black_models or [model]
    x = resources.image_tensor(selection.model, selection.image_key, selection.upload).to(model.device)
    domain = domains.of(model)
    d = domain.defaults["anatomy"]
    options = [n for n, dom in widgets.usable_models().items() if dom == model.domain and n != model.name and n not in blacks]
    with st.form("anatomy-form"):
        c = st.columns(6)
        attack = c[0].selectbox("Attack", AVERAGED, key="anatomy.attack")
        preferred = [n for n in options if n in domain.sources] or options  # the judges stay held out
        extra = c[1].multiselect("More source models", options, default=preferred[:2], key="anatomy.sources")
        copies = c[2].number_input("Noisy copies n", 1, 1000, d["copies"], key="anatomy.copies")
        sigma = c[3].number_input("σ", 0.0, 1.0, d["sigma"], 0.01, format="%.3f", key="anatomy.sigma")
        eps = c[4].number_input("ε (BIM, Square and δ')", 0.001, 1.0, d["eps"], 0.005, format="%.3f", key="anatomy.eps")
        steps = c[5].number_input("Steps", 1, 200, d["steps"], key="anatomy.steps")
        c = st.columns(4)
        targeted = c[0].toggle("Targeted (generation effect)", key="anatomy.targeted",
                               help=glossary.help_text("generation effect"))
        aim = c[1].selectbox("Target", [*targets.POLICIES, *model.class_names], key="anatomy.target")
        queries = c[2].number_input("Square: queries", 10, 10000, 300, 10, key="anatomy.queries")
        zero_init = c[3].checkbox("Square: start from δ = 0", True, key="anatomy.zero_init",
                                  help=glossary.help_text("Square from δ = 0"))
        go = st.form_submit_button("Average", type="primary")
    settings = {"copies": int(copies), "sigma": float(sigma), "eps": float(eps), "steps": int(steps),
                "queries": int(queries), "zero_init": bool(zero_init), "target": aim if targeted else None}
    sources = [model] + [resources.model(n) for n in extra]
    key = ("anatomy", selection.model, selection.image_key, attack, tuple(extra), tuple(sorted(settings.items())))
    if state.analysis(key) is None:
        if not (go or widgets.pending("anatomy") == key):
            st.info("Press Average: the attack runs on every source model and noisy copy of the image, "
                    "then the sections below judge the averaged perturbation.")
            return
        params = _params(attack, settings)
        seconds = sum(cost.averaged_seconds(attack, models, 1, n, params)
                      for models, n in ((sources[:1], 1), (sources, 1), (sources, settings["copies"])))
        if not widgets.heavy_gate("anatomy", key, seconds, go, cost.stops_early(attack)):
            return
    labels = _aim(model, x, aim) if targeted else None
    if targeted and labels is None:
        return
    deltas = _average_all(sources, x, settings, attack, labels, key)
    judge_names = ", ".join(j.name for j in judges)
    st.caption(f"Sources: {', '.join(s.name for s in sources)}. Judges (black-box models): {judge_names}.")

    titles = {name: name for name in deltas}
    if targeted:  # each setting's panel says what the judges see in the targeted δ
        verdicts = recognisable.target_recognisability_table(judges, *labels, {("", s): d for s, d in deltas.items()},
                                                             model.domain)
        for name in deltas:
            seen = [model.class_names[r["most common class"]] for r in verdicts if r["setting"] == name]
            titles[name] = f"{name}: judged {', '.join(dict.fromkeys(seen))}"
    pics = [("image", images.to_uint8(x), "rgb")]
    pics += [(titles[name], images.to_uint8(recognisable.display_normalise(delta, model.domain, targeted)), "rgb")
             for name, delta in deltas.items()]
    if "noisy multi-model" in deltas:
        pics.append(("complementarity (|δ| ≥ mean)", images.signed_map(recognisable.complementarity(deltas["noisy multi-model"])),
                     "signed"))
    st.plotly_chart(figures.linked_images(pics,
                                          height=420 if presenting else 300), width="stretch", key="averages")
    if "noisy multi-model" not in deltas:
        st.warning("Cancelled before the noisy multi-model average finished: the sections below need it.")
        return
    delta = deltas["noisy multi-model"]
    if targeted:
        _generation_section(verdicts, model.class_names, labels[1])
    y = recognisable.consensus_labels([model, *judges], x)

    st.header("Contour vs background")
    mask = _mask(model, x, selection)
    left, right = st.columns([1, 2])
    left.image(images.enlarged(_overlay(x, mask)), caption=f"object mask: {masking.area(mask):.1%} of the image", width="stretch")
    share = masking.area(mask)
    if not 0.1 <= share <= 0.9:  # one part is a sliver: its accuracy says little
        part = "background" if share > 0.9 else "object"
        st.warning(f"The mask covers {share:.0%} of the image, so the {part} is only {min(share, 1 - share):.0%} of it: "
                   f"δ' on so few pixels barely moves any model, and the {part} numbers below say little. Shrink or grow "
                   "the mask, draw a GrabCut box, or pick a photo where the object fills less of the frame.")
    rows = masking.contour_vs_background(judges, x, y, delta, mask[None], float(eps))
    right.dataframe([{k: (f"{v:.0%}" if k in ("accuracy", "area") else v) for k, v in r.items()} for r in rows], width="stretch")
    right.markdown(f"**What it shows:** {masking.contour_sentence(rows)}")
    sweep = masking.mask_sweep(judges, x, y, delta, mask[None], float(eps), steps=masking.sweep_steps(mask[None]))
    linf = masking.linf_sweep(judges, x, y, delta, mask[None],
                              eps_values=[round(float(eps) * f, 4) for f in (0.25, 0.5, 1, 1.5, 2, 3, 4)])
    s1, s2, s3 = st.columns(3)
    flat = masking.sweep_note(sweep, float(eps))  # a flat line and a zero derivative say nothing: words instead
    if flat:
        s1.info(flat)
    else:
        s1.plotly_chart(figures.lines(sweep, "area", "accuracy", title="accuracy vs mask area",
                                      x_title="mask area (share of the image)", y_title="judges' accuracy"),
                        width="stretch", key="sweep")
        s2.plotly_chart(figures.lines(sweep, "area", "per +1% area", title="change per +1 % area", y_format=".3f",
                                      x_title="mask area (share of the image)",
                                      y_title="accuracy change per +1 % area"), width="stretch", key="sweep-derivative")
    still = masking.linf_note(linf)
    if still:
        s3.info(still)
    else:
        s3.plotly_chart(figures.lines(linf, "eps", "accuracy", group="part", title="ε·sign(δ) per part", x_title="ε",
                                      y_title="judges' accuracy"), width="stretch", key="linf")
    c = masking.complementarity_coverage(delta, mask[None])
    st.caption(f"Complementarity: after zeroing |δ| below its mean, {c['object kept'] or 0:.0%} of object pixels and "
               f"{c['background kept'] or 0:.0%} of background pixels are still perturbed.")

    _checkerboard_section(model, x, selection, settings, presenting)
    _similarity_section(sources, x, y, settings, selection)
    _noise_section([model, *judges], selection)


def _checkerboard_section(model, x, selection, settings, presenting) -> None:
    st.header("Checkerboard artefacts")
    if presenting:
        st.info(EXPLAIN["checkerboard"])
    c = st.columns(3)
    sigmas = c[0].multiselect("σ values", [0.02, 0.05, 0.1, 0.2, 0.3, 0.5], default=[0.05, 0.2, 0.5], key="anatomy.sigmas")
    copies = c[1].number_input("Copies", 1, 2000, domains.of(model).defaults["checkerboard_copies"], key="anatomy.cb_copies")
    key = ("checkerboard", selection.model, selection.image_key, tuple(sorted(sigmas)), int(copies), settings["eps"], settings["steps"])
    rows = state.analysis(key)
    clicked = c[2].button("Compute checkerboards", key="anatomy.cb_go")
    bim = _params("bim", settings)
    # Priced only when asked for: the first price of a model times it (a second or so for a photo model).
    if (clicked or widgets.pending("checkerboard") == key) and rows is None and sigmas and widgets.heavy_gate(
            "checkerboard", key, len(sigmas) * cost.averaged_seconds("bim", [model], 1, int(copies), bim), clicked):
        progress = Progress("Checkerboard averages", "checkerboard")
        rows = checkerboard.checkerboard(model, x, sigmas=sorted(sigmas), copies=int(copies), callback=progress, **bim)
        progress.finish(lambda: state.store_analysis(key, rows))
    if rows:
        st.plotly_chart(figures.linked_images(
            [(f"σ={r['sigma']:g}: period {r['period']:.1f} px", images.signed_map(r["delta"][None]), "signed") for r in rows],
            height=320), width="stretch", key="checker")


def _similarity_section(sources, x, y, settings, selection) -> None:
    st.header("Similarity across attacks")
    key = ("similarity", selection.model, selection.image_key, tuple(s.name for s in sources), tuple(sorted(settings.items())))
    rows = state.analysis(key)
    clicked = st.button("Compare BIM, C&W and DeepFool", key="anatomy.sim_go")
    params = {a: _params(a, settings) for a in ATTACKS}

    def seconds() -> float:  # priced only when asked for
        return sum(cost.averaged_seconds(a, models, 1, n, params[a])
                   for a in ATTACKS for models, n in ((sources[:1], 1), (sources, settings["copies"])))

    if (clicked or widgets.pending("similarity") == key) and rows is None \
            and widgets.heavy_gate("similarity", key, seconds(), clicked, at_most=True):
        progress = Progress("Three attacks, single and noisy multi-model", "similarity")
        deltas = recognisable.perturbations(sources, x, y, params, copies=settings["copies"], sigma=settings["sigma"],
                                            settings=("single-model", "noisy multi-model"), callback=progress)
        rows = recognisable.similarity_table(deltas)
        progress.finish(lambda: state.store_analysis(key, rows))
    if rows:
        cols = st.columns(2)
        for i, setting in enumerate(("single-model", "noisy multi-model")):
            m = np.eye(3)
            for r in rows:
                if r["setting"] == setting:
                    a, b = ATTACKS.index(r["a"]), ATTACKS.index(r["b"])
                    m[a, b] = m[b, a] = r["cosine"]
            cols[i].plotly_chart(figures.matrix(m, ATTACKS, ATTACKS, f"cosine similarity, {setting}", colorscale="RdBu_r",
                                                zrange=(-1.0, 1.0)),
                                 width="stretch", key=f"sim-{i}")


def _noise_section(models, selection) -> None:
    st.header("Noise classes")
    key = ("noise", tuple(m.name for m in models))
    rows = state.analysis(key)
    if st.button("Classify Gaussian noise", key="anatomy.noise_go") and rows is None:
        with st.spinner("Noise through every model…"):
            rows = recognisable.noise_classes(models, count=domains.of(models[0]).defaults["noise_count"])
        state.store_analysis(key, rows)
    if rows:
        cols = st.columns(len(models))
        for i, m in enumerate(models):
            mine = [r for r in rows if r["model"] == m.name]
            cols[i].plotly_chart(figures.bars([r["name"] for r in mine], [r["share"] for r in mine], m.name),
                                 width="stretch", key=f"noise-{i}")


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
