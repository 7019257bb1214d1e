"""Explorer: one image, a white-box model, black-box models and an attack; every view of the result side by side."""
from __future__ import annotations

import csv
import io
import json

import streamlit as st
import torch

from app import deck, figures, resources, state, urlstate, widgets
from app.jobs import Progress
from engine import attacks, cost, domains, glossary, images, report, targets
from engine.analysis import robust, target_images
from engine.analysis.panels import eps_panels, explorer_panels
from engine.models import ModelUnavailable

VIEWS = {label: kind for kind, label in urlstate.VIEWS.items()}  # label → panel kind


def run_attack(run: state.RunSpec, selection: state.Selection):
    """Run (or resume) one attack with a progress bar and Cancel; a cancelled run keeps its partial result."""
    model = resources.model(run.model)
    x = resources.image_tensor(run.model, selection.image_key, selection.upload).to(model.device)
    spec = attacks.get(run.attack)
    uploaded = [resources.image_tensor(run.model, key, data) for key, data in state.uploads().items()]
    # AA also draws its target image from the user's uploads
    target, extra = target_images.decide(spec, model, x, run.target, seed=run.seed, layer=dict(run.params).get("layer"),
                                         extra_images=torch.cat(uploaded) if uploaded else None)
    progress = Progress(f"Running {spec.title}", "explorer")
    result = attacks.run(run.attack, model, x, target=target, seed=run.seed, callback=progress, **dict(run.params), **extra)
    progress.finish(lambda: state.remember(run, result))
    return result


def continue_attack(run: state.RunSpec, partial):
    """Go on from where a cancelled run stopped: its iterate, optimiser and search state are in the result."""
    model = resources.model(run.model)
    progress = Progress(f"Continuing {attacks.get(run.attack).title}", "explorer")
    result = attacks.resume(partial, model, callback=progress)
    progress.finish(lambda: state.remember(run, result))
    return result


def _numbers_csv(record: dict, predictions: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    row = record["examples"][0]
    writer.writerow(["quantity", "value"])
    for key in ("success", "l0_pct", "l2", "linf", "ssim", "iterations", "queries"):
        writer.writerow([key, row.get(key)])
    writer.writerow([])
    writer.writerow(["model", "role", "when", "rank", "class", "label", "probability"])
    for p in predictions:
        for when in ("before", "after"):
            for rank, r in enumerate(p[when], start=1):
                writer.writerow([p["model"], p["role"], when, rank, r["index"], r["label"], f"{r['probability']:.6f}"])
    return out.getvalue()


def _downloads(result, panels: dict, selection: state.Selection) -> None:
    record = dict(panels["record"], image=selection.image_label, black_box=panels["predictions"][1:])
    d = st.columns(5)
    # Files are made on click (deferred), not on every rerun: PNG encoding is most of a redraw's cost.
    d[0].download_button("Adversarial (PNG)", lambda: images.png_bytes(images.to_uint8(result.x_adv)), "adversarial.png",
                         "image/png")
    d[1].download_button("Perturbation (PNG)", lambda: images.png_bytes(images.signed(result.delta)), "perturbation.png",
                         "image/png")
    d[2].download_button("Perturbation (.npy)", lambda: images.npy_bytes(result.delta[0].cpu().numpy()),
                         "perturbation.npy", "application/octet-stream")
    d[3].download_button("Numbers (JSON)", json.dumps(record, indent=2), "attack.json", "application/json")
    d[4].download_button("Numbers (CSV)", _numbers_csv(record, panels["predictions"]), "attack.csv", "text/csv")


def _metrics(row: dict, seconds: float) -> None:
    m = st.columns(6)
    m[0].metric("L0 (% pixels)", f"{row['l0_pct']:.1f}", help=glossary.help_text("L0"))
    m[1].metric("L2", f"{row['l2']:.3f}", help=glossary.help_text("L2"))
    m[2].metric("L∞", f"{row['linf']:.4f}", help=glossary.help_text("L∞"))
    m[3].metric("SSIM", f"{row['ssim']:.4f}", help=glossary.help_text("SSIM"))
    if row["queries"] is None:
        m[4].metric("Iterations", row["iterations"], help=glossary.help_text("iterations"))
    else:
        m[4].metric("Queries", row["queries"], help=glossary.help_text("queries"))
    m[5].metric("Time", f"{seconds:.2f} s")


def _pictures(panels: dict, view: str, row: dict, height: int = 360) -> None:
    st.plotly_chart(figures.result_pictures(panels, row, view, VIEWS[view], height), width="stretch", key="pictures")


def _heat(panels: dict, names: list[str]) -> None:
    heat = panels["heat"]
    if heat is None:
        st.info(f"No heat maps for this model: {panels['no_heat']}.")
        return
    src, adv = names[heat["source_class"]], names[heat["adversarial_class"]]
    opacity = st.columns([1, 3])[0].slider("Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key="heat_opacity",
                                           help=glossary.help_text("Grad-CAM"))
    clean, adversarial = panels["clean"], panels["adversarial"]
    st.plotly_chart(figures.linked_images([
        (f"clean · Grad-CAM of {src}", (clean, heat["clean · source"]), "overlay"),
        (f"adversarial · Grad-CAM of {adv}", (adversarial, heat["adversarial · adversarial class"]), "overlay"),
        (f"adversarial · Grad-CAM of {src}", (adversarial, heat["adversarial · source"]), "overlay"),
        ("δ masked by the clean heat map", panels["masked"], "signed"),
    ], height=340, opacity=opacity), width="stretch", key="heat")


def _spectrum(panels: dict) -> None:
    st.plotly_chart(figures.linked_images([("power spectrum of δ (log₁₀)", panels["spectrum"], "spectrum")],
                                          height=360, link=False), width="stretch", key="spectrum")


def _models(panels: dict, row: dict) -> None:
    highlight = {row["label"]} | ({row["target"]} if row["target"] is not None else set())
    for p in panels["predictions"]:
        verdict = "fooled" if p["fooled"] else "not fooled"
        st.markdown(f"**{p['model']}** ({p['role']}, {verdict})")
        b1, b2 = st.columns(2)
        b1.plotly_chart(figures.topk_bars(p["before"], "before", highlight, height=200), width="stretch",
                        key=f"bars-{p['model']}-before")
        b2.plotly_chart(figures.topk_bars(p["after"], "after", highlight, height=200), width="stretch",
                        key=f"bars-{p['model']}-after")


def _every_eps(result, run: state.RunSpec, models: list, row: dict) -> None:
    """FGSM needs one gradient: every ε of a grid comes from one batched forward per model, so this slider
    redraws the adversarial image and every model's answer without running the attack again."""
    eps = round(float(result.params["eps"]), 4)
    key = ("fgsm-many", run, tuple(m.name for m in models))
    found = state.analysis(key)
    if found is None:
        found = eps_panels(models, result)
        state.store_analysis(key, found)
    st.markdown("**Every ε at once** — one gradient, all budgets in one batched forward: drag to see the image and "
                "each model's answer change, with no new attack run.")
    chosen = st.select_slider("FGSM ε", found["eps"], value=eps, key="fgsm_eps",
                              format_func=lambda v: f"{v:g}", help=glossary.help_text("ε"))
    i = found["eps"].index(chosen)
    left, right = st.columns([2, 3])
    answers = ", ".join(f"{name}: {top[i][0]['label']} ({top[i][0]['probability']:.0%})" for name, top in found["top"].items())
    left.plotly_chart(figures.linked_images([(f"adversarial at ε {chosen:g}", found["pictures"][i], "rgb"),
                                             ("perturbation (signed δ)", found["deltas"][i], "signed")], height=260),
                      width="stretch", key="fgsm-many-pictures")
    left.caption(answers)
    curves = [{"eps": e, "model": name, "p": p} for name, ps in found["source"].items() for e, p in zip(found["eps"], ps)]
    fig = figures.lines(curves, "eps", "p", group="model", title=f"probability of {row['label_name']} vs ε",
                        x_title="ε", y_title="probability", height=260)
    fig.add_vline(x=chosen, line_dash="dot")
    right.plotly_chart(fig, width="stretch", key="fgsm-many-curve")


def _twin(result, model, run: state.RunSpec) -> None:
    """One click: the same attack, parameters and target on the model's robust (or plain) twin, both δ shown the
    way the thesis shows perturbations, plain first."""
    domain = domains.of(model)
    twin = domain.twin(model.name)
    if twin is None:
        return
    st.markdown(f"**Plain vs robust** — {model.name} has an adversarially trained twin: the same attack on both shows "
                "whether the perturbation follows the object.")
    if attacks.get(run.attack).needs_target_images:
        st.caption("The twin comparison runs the attacks that need no target image; pick another attack to use it.")
        return
    key = ("twin", run)
    found = state.analysis(key)
    if found is None:
        if not st.button(f"Compare with {twin}", key="twin_compare", help=glossary.help_text("robust model")):
            return
        progress = Progress(f"{attacks.get(run.attack).title} on {twin}", "twin")
        other = robust.compare([resources.model(twin)], result.x, run.attack, target=result.target, seed=run.seed,
                               callback=progress, **dict(run.params))[0]
        found = sorted([robust.row(model, result), other], key=lambda r: r["robust"])
        if not other["result"].stopped_early:
            progress.finish(lambda: state.store_analysis(key, found))
            st.rerun()  # redraw without the button that started it
        progress.finish()
        st.warning("Cancelled: the twin's perturbation below is partial and is not kept.")
    kinds = ["robust" if r["robust"] else "plain" for r in found]
    pictures = [("clean image", images.to_uint8(result.x[:1]), "rgb")] + [(f"δ of {r['model']}", r["shown"], "rgb") for r in found]
    st.plotly_chart(figures.linked_images(pictures, height=300),
                    width="stretch", key="twin-pictures")
    st.markdown("  \n".join(f"**{r['model']}** ({kind}): {'fooled' if r['fooled'] else 'not fooled'}, "
                             f"L2 {float(r['result'].delta.norm()):.2f}, L∞ {float(r['result'].delta.abs().max()):.3f}"
                             for r, kind in zip(found, kinds)))
    st.caption("Display-normalised: δ × (−1), matched to the dataset's mean and standard deviation (a targeted δ: "
               "scaled to its peak). A robust model's δ tends to draw the object; a plain model's looks like noise.")


def _headline(record: dict) -> dict:
    words = report.headline(record)
    with st.container(key="headline"):  # one line at 1280 px (app.main's CSS sizes it)
        st.subheader(f"{words['title']} — {words['verdict']}")
    return words


def _cancelled(result) -> bool:
    """The note on a partial result and its button; True when the user asked to continue it."""
    if not result.stopped_early:
        return False
    done, total = attacks.progress_of(result)
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.warning(f"Cancelled after {done:,} of {total:,} iterations: this is the partial result. "
                 "Run it to the end continues from there.")
    return right.button("Run it to the end", key="resume", type="primary", width="stretch")


def show(result, model, black_models: list, panels: dict, selection: state.Selection, run: state.RunSpec):
    """The result, headline first. Returns (the presentation slide shown or None, whether the user asked to
    continue a cancelled run)."""
    record = panels["record"]
    row = record["examples"][0]
    if st.session_state.get("presentation"):
        view = st.session_state.get("delta_view", next(iter(VIEWS)))
        slide = deck.present(result, model, panels, row, view, VIEWS, headline=lambda: _headline(record))
        return slide, _cancelled(result)
    words = _headline(record)
    resume = _cancelled(result)
    view = st.radio("Perturbation view", list(VIEWS), horizontal=True, key="delta_view", label_visibility="collapsed",
                    help="the third picture: δ signed, its size amplified, or display-normalised")
    _pictures(panels, view, row, height=320)
    if words["rounding"] is not None:
        (st.caption if words["survives_8bit"] else st.warning)(words["rounding"])
    _metrics(row, record["seconds"])
    if result.attack == "fgsm":
        _every_eps(result, run, [model, *black_models], row)
    _heat(panels, model.class_names)
    left, right = st.columns([1, 2])
    with left:
        _spectrum(panels)
    with right:
        _models(panels, row)
    _twin(result, model, run)
    _downloads(result, panels, selection)
    return None, resume


def chosen_run(selection: state.Selection, form: state.RunSpec, submitted: bool) -> tuple[state.RunSpec, bool]:
    """(run, asked for on this rerun): the form's run when submitted, else the link's run (first render),
    else a heavy run waiting for its confirmation, else the last one on this model and image, else what
    the form shows: a new image or model reruns the chosen attack, never a default."""
    if submitted:
        return form, True
    linked = st.session_state.pop("url_run", None)
    if linked is not None:
        attack, params, target, seed = linked
        return state.RunSpec(selection.model, selection.image_key, attack, params, target, seed), True
    for run in (widgets.pending("explorer"), state.last_spec()):
        if run is not None and (run.model, run.image_key) == (selection.model, selection.image_key):
            return run, False
    return form, False


def expected_seconds(run: state.RunSpec, model) -> float:
    return cost.attack_seconds(model, run.attack, 1, dict(run.params))


def page() -> None:
    selection: state.Selection = st.session_state["selection"]
    blacks: list[str] = st.session_state.get("blacks_chosen", [])
    presenting = bool(st.session_state.get("presentation"))
    if not presenting:
        st.title("Explorer")
        st.markdown("Pick an image and models in the sidebar and an attack under **Attack settings**.",
                    help="Every view of the result follows the choice; the *Method guide* explains each term.")
    if selection.problem:
        st.error(f"The uploaded file cannot be used: {selection.problem} Showing the gallery photo instead.")
    try:
        model = resources.model(selection.model)
        resources.image_tensor(selection.model, selection.image_key, selection.upload)
        black_models = [resources.model(b) for b in blacks]
    except ValueError as err:
        st.error(f"Cannot use this image: {err}")
        return
    except ModelUnavailable as err:
        st.error(str(err))
        return

    state.remember_upload(selection)
    if not presenting:
        widgets.domain_note(model)
    # On a slide the settings wait in the (folded) sidebar: the slide keeps its whole height.
    with (st.sidebar if presenting else st).expander("Attack settings", expanded=False):
        form, submitted = widgets.attack_form(selection, model.class_names)
    run, fresh = chosen_run(selection, form, submitted)
    result = state.result_for(run)
    if result is None:
        try:
            if widgets.heavy_gate("explorer", run, expected_seconds(run, model), fresh, cost.stops_early(run.attack)):
                result = run_attack(run, selection)
            else:  # waiting for the click: keep showing the last result on this image, if there is one
                run = state.last_spec()
                same = run is not None and (run.model, run.image_key) == (selection.model, selection.image_key)
                result = state.result_for(run) if same else None
                if result is None:
                    return
        except ValueError as err:
            st.error(f"Cannot run this attack: {err}")
            return
    bar = st.container()  # a continued run's progress, above the partial result it will replace
    key = ("explorer", run, tuple(blacks), attacks.progress_of(result) if result.stopped_early else None)
    panels = state.analysis(key)
    if panels is None:
        with st.spinner("Heat maps and transfer…"):
            panels = explorer_panels(model, result, black_models)
        state.store_analysis(key, panels)
    slide, resume = show(result, model, black_models, panels, selection, run)
    view = VIEWS[st.session_state.get("delta_view", next(iter(VIEWS)))]
    st.query_params.from_dict(urlstate.encode(selection.model, selection.image_key, run, blacks, view=view,
                                              present=presenting, slide=slide))
    if resume:
        with bar:
            continue_attack(run, result)
        st.rerun()


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
