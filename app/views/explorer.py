"""Explorer: one image, a white-box model, black-box models and an attack; every view of the result side by side."""

from __future__ import annotations

import streamlit as st

from app import compare_section, figures, heat_section, resources, run_controls, state, urlstate, widgets
from app.views import deck
from engine import glossary, report
from engine.analysis.panels import EPS_INTRO, eps_panels, eps_view, model_heading
from engine.models import ModelUnavailable

VIEWS = urlstate.VIEW_KINDS  # label → panel kind


def _models(panels: dict, row: dict) -> None:
    highlight = {row["label"]} | ({row["target"]} if row["target"] is not None else set())
    for p in panels["predictions"]:
        st.markdown(model_heading(p))
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
    st.markdown(EPS_INTRO)
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
        figures.eps_pictures(found, view["index"], chosen, 260), width="stretch", key="fgsm-many-pictures"
    )
    left.caption(view["answers"])
    right.plotly_chart(figures.eps_curve(view, chosen, 260), width="stretch", key="fgsm-many-curve")


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
    heat_section.show(result, model, run, panels)
    left, right = st.columns([1, 2])
    left.plotly_chart(figures.spectrum_figure(panels["spectrum"], 360), width="stretch", key="spectrum")
    with right:
        _models(panels, row)
    run_controls.twin_section(result, model, run)
    compare_section.show(result, model, run)
    widgets.download_row(report.result_files(result, record, panels["predictions"], selection.image_label))
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
