"""Explorer: one image, a white-box model, black-box models and an attack; every view of the result side by side."""

from __future__ import annotations

import streamlit as st

from app import figures, resources, run_controls, state, urlstate, widgets
from app.views import deck
from engine import attacks, domains, glossary, report
from engine.analysis.panels import eps_panels, eps_view
from engine.models import ModelUnavailable

VIEWS = urlstate.VIEW_KINDS  # label → panel kind


def _downloads(result, panels: dict, selection: state.Selection) -> None:
    files = report.result_files(result, panels["record"], panels["predictions"], selection.image_label)
    for column, (label, data, name, mime) in zip(st.columns(len(files)), files):
        column.download_button(label, data, name, mime)


def _heat(panels: dict, names: list[str]) -> None:
    if panels["heat"] is None:
        st.info(f"No heat maps for this model: {panels['no_heat']}.")
        return
    opacity = st.columns([1, 3])[0].slider(
        "Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key="heat_opacity", help=glossary.help_text("Grad-CAM")
    )
    st.plotly_chart(figures.heat_pictures(panels, names, 340, opacity), width="stretch", key="heat")


def _models(panels: dict, row: dict) -> None:
    highlight = {row["label"]} | ({row["target"]} if row["target"] is not None else set())
    for p in panels["predictions"]:
        st.markdown(f"**{p['model']}** ({p['role']}, {'fooled' if p['fooled'] else 'not fooled'})")
        for column, when in zip(st.columns(2), ("before", "after")):
            column.plotly_chart(
                figures.topk_bars(p[when], when, highlight, height=200),
                width="stretch",
                key=f"bars-{p['model']}-{when}",
            )


def _every_eps(result, run: state.RunSpec, models: list, row: dict) -> None:
    """FGSM needs one gradient: every ε of a grid comes from one batched forward per model, so this slider
    redraws the adversarial image and every model's answer without running the attack again."""
    found = state.cached_analysis(("fgsm-many", run, tuple(m.name for m in models)), lambda: eps_panels(models, result))
    st.markdown(
        "**Every ε at once** — one gradient, all budgets in one batched forward: drag to see the image and "
        "each model's answer change, with no new attack run."
    )
    chosen = st.select_slider(
        "FGSM ε",
        found["eps"],
        value=found["run_eps"],
        key="fgsm_eps",
        format_func=lambda v: f"{v:g}",
        help=glossary.help_text("ε"),
    )
    view = eps_view(found, chosen, row["label_name"])
    left, right = st.columns([2, 3])
    left.plotly_chart(
        figures.linked_images(
            [
                (f"adversarial at ε {chosen:g}", found["pictures"][view["index"]], "rgb"),
                ("perturbation (signed δ)", found["deltas"][view["index"]], "signed"),
            ],
            height=260,
        ),
        width="stretch",
        key="fgsm-many-pictures",
    )
    left.caption(view["answers"])
    fig = figures.lines(
        view["curves"], "eps", "p", group="model", title=view["title"], x_title="ε", y_title="probability", height=260
    )
    fig.add_vline(x=chosen, line_dash="dot")
    right.plotly_chart(fig, width="stretch", key="fgsm-many-curve")


def _twin(result, model, run: state.RunSpec) -> None:
    """One click: the same attack, parameters and target on the model's robust (or plain) twin, both δ
    display-normalised side by side, the plain model's first."""
    twin = domains.of(model).twin(model.name)
    if twin is None:
        return
    st.markdown(
        f"**Plain vs robust** — {model.name} has an adversarially trained twin: the same attack on both shows "
        "whether the perturbation follows the object."
    )
    if attacks.get(run.attack).needs_target_images:
        st.caption("The twin comparison runs the attacks that need no target image; pick another attack to use it.")
        return
    found = run_controls.stored_twin(run)
    if found is None:
        if not st.button(f"Compare with {twin}", key="twin_compare", help=glossary.help_text("robust model")):
            return
        found = run_controls.compare_twin(model, result, run, twin)
    st.plotly_chart(figures.linked_images(found["pictures"], height=300), width="stretch", key="twin-pictures")
    st.markdown("  \n".join(f"**{name}** {words}" for name, words in found["lines"]))
    st.caption(
        "Display-normalised: δ × (−1), matched to the dataset's mean and standard deviation (a targeted δ: "
        "scaled to its peak). A robust model's δ tends to draw the object; a plain model's looks like noise."
    )


def show(result, model, black_models: list, panels: dict, selection: state.Selection, run: state.RunSpec) -> bool:
    """The result, headline first; True when the user asked to continue a cancelled run."""
    record = panels["record"]
    row = record["examples"][0]
    words = widgets.headline(record)
    resume = run_controls.cancelled_note(result)
    view = st.radio(
        "Perturbation view",
        list(VIEWS),
        horizontal=True,
        key="delta_view",
        label_visibility="collapsed",
        help="the third picture: δ signed, its size amplified, or display-normalised",
    )
    st.plotly_chart(figures.result_pictures(panels, row, view, VIEWS[view], 320), width="stretch", key="pictures")
    if words["rounding"] is not None:
        (st.caption if words["survives_8bit"] else st.warning)(words["rounding"])
    widgets.metric_row(report.size_numbers(row, record["seconds"]))
    if result.attack == "fgsm":
        _every_eps(result, run, [model, *black_models], row)
    _heat(panels, model.class_names)
    left, right = st.columns([1, 2])
    left.plotly_chart(figures.spectrum_figure(panels["spectrum"], 360), width="stretch", key="spectrum")
    with right:
        _models(panels, row)
    _twin(result, model, run)
    _downloads(result, panels, selection)
    return resume


def page() -> None:
    selection: state.Selection = st.session_state["selection"]
    blacks: list[str] = st.session_state.get("blacks_chosen", [])
    presenting = bool(st.session_state.get("presentation"))
    if not presenting:
        st.title("Explorer")
        st.markdown(
            "Pick an image and models in the sidebar and an attack under **Attack settings**.",
            help="Every view of the result follows the choice; the *Method guide* explains each term.",
        )
    if selection.problem:
        st.error(f"The uploaded file cannot be used: {selection.problem} Showing the gallery photo instead.")
    try:
        model = resources.model(selection.model)
        resources.image_tensor(selection.model, selection.image_key, selection.upload)
        black_models = [resources.model(b) for b in blacks]
    except (ValueError, ModelUnavailable) as err:
        st.error(f"Cannot use this image: {err}" if isinstance(err, ValueError) else str(err))
        return

    state.remember_upload(selection)
    if not presenting:
        widgets.domain_note(model)
    # On a slide the settings wait in the (folded) sidebar: the slide keeps its whole height.
    with (st.sidebar if presenting else st).expander("Attack settings", expanded=False):
        form, submitted = widgets.attack_form(selection, model.class_names)
    run, result = run_controls.result_to_show(selection, model, form, submitted)
    if result is None:
        return
    bar = st.container()  # a continued run's progress, above the partial result it will replace
    panels = run_controls.result_panels(run, result, model, black_models)
    if presenting:
        slide = deck.present(result, model, panels, st.session_state.get("delta_view", next(iter(VIEWS))))
        resume = run_controls.cancelled_note(result)
    else:
        slide, resume = None, show(result, model, black_models, panels, selection, run)
    view = VIEWS[st.session_state.get("delta_view", next(iter(VIEWS)))]
    st.query_params.from_dict(
        urlstate.encode(selection.model, selection.image_key, run, blacks, view=view, present=presenting, slide=slide)
    )
    if resume:
        with bar:
            run_controls.continue_attack(run, result)
        st.rerun()


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
