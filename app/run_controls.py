"""The Explorer's run controls: which run the page shows, running or continuing it under a progress bar with
Cancel, its analysis panels, the note on a cancelled run, and the same attack on the model's robust (or plain)
twin."""

from __future__ import annotations

import streamlit as st
import torch

from app import figures, resources, state, widgets
from app.jobs import Progress
from engine import attacks, cost, domains, glossary
from engine.analysis import robust, target_images
from engine.analysis.panels import TWIN_NO_TARGET_IMAGES, TWIN_NOTE, explorer_panels, twin_intro, twin_lines, twin_view


def run_attack(run: state.RunSpec, selection: state.Selection):
    """Run one attack with a progress bar and Cancel; a cancelled run keeps its partial result."""
    model = resources.model(run.model)
    x = resources.image_tensor(run.model, selection.image_key, selection.upload).to(model.device)
    spec = attacks.get(run.attack)
    uploaded = [resources.image_tensor(run.model, key, data) for key, data in state.uploads().items()]
    # AA also draws its target image from the user's uploads
    target, extra = target_images.decide(
        spec,
        model,
        x,
        run.target,
        seed=run.seed,
        layer=dict(run.params).get("layer"),
        extra_images=torch.cat(uploaded) if uploaded else None,
    )
    progress = Progress(f"Running {spec.title}", "explorer")
    result = attacks.run(
        run.attack, model, x, target=target, seed=run.seed, callback=progress, **dict(run.params), **extra
    )
    progress.finish(lambda: state.remember(run, result))
    return result


def continue_attack(run: state.RunSpec, partial):
    """Go on from where a cancelled run stopped: its iterate, optimiser and search state are in the result."""
    model = resources.model(run.model)
    progress = Progress(f"Continuing {attacks.get(run.attack).title}", "explorer")
    result = attacks.resume(partial, model, callback=progress)
    progress.finish(lambda: state.remember(run, result))
    return result


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


def result_to_show(selection: state.Selection, model, form: state.RunSpec, submitted: bool) -> tuple:
    """(run, result) for the page: the chosen run's stored result, or a new run once the gate for slow runs lets it
    start; while the gate waits for its click, the last result on this model and image. The result is None when
    there is nothing to show (an attack that cannot run says why on the page)."""
    run, fresh = chosen_run(selection, form, submitted)
    result = state.result_for(run)
    if result is not None:
        return run, result
    try:
        if widgets.heavy_gate("explorer", run, expected_seconds(run, model), fresh, cost.stops_early(run.attack)):
            return run, run_attack(run, selection)
    except ValueError as err:
        st.error(f"Cannot run this attack: {err}")
        return run, None
    last = state.last_spec()
    same = last is not None and (last.model, last.image_key) == (selection.model, selection.image_key)
    return last, state.result_for(last) if same else None


def result_panels(run: state.RunSpec, result, model, black_models: list) -> dict:
    """panels.explorer_panels of the result, kept for this session (a partial result's under how far it got)."""
    key = (
        "explorer",
        run,
        tuple(m.name for m in black_models),
        attacks.progress_of(result) if result.stopped_early else None,
    )
    panels = state.analysis(key)
    if panels is None:
        with st.spinner("Heat maps and transfer…"):
            panels = explorer_panels(model, result, black_models)
        state.store_analysis(key, panels)
    return panels


def cancelled_note(result) -> bool:
    """The note on a partial result and its button; True when the user asked to continue it."""
    if not result.stopped_early:
        return False
    done, total = attacks.progress_of(result)
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.warning(
        f"Cancelled after {done:,} of {total:,} iterations: this is the partial result. "
        "Run it to the end continues from there."
    )
    return right.button("Run it to the end", key="resume", type="primary", width="stretch")


def stored_twin(run: state.RunSpec) -> dict | None:
    """The finished twin comparison of `run`, if this session has one."""
    return state.analysis(("twin", run))


def compare_twin(model, result, run: state.RunSpec, twin: str) -> dict:
    """The same attack, parameters and target on `twin`, under a progress bar (panels.twin_view's dict). A finished
    comparison is stored and the page redrawn without the button that started it; a cancelled one is shown once
    and not kept."""
    progress = Progress(f"{attacks.get(run.attack).title} on {twin}", "twin")
    other = robust.compare(
        [resources.model(twin)],
        result.x,
        run.attack,
        target=result.target,
        seed=run.seed,
        callback=progress,
        **dict(run.params),
    )[0]
    found = twin_view(model, result, other)
    if not other["result"].stopped_early:
        progress.finish(lambda: state.store_analysis(("twin", run), found))
        st.rerun()
    progress.finish()
    st.warning("Cancelled: the twin's perturbation below is partial and is not kept.")
    return found


def twin_section(result, model, run: state.RunSpec) -> None:
    """One click: the same attack, parameters and target on the model's robust (or plain) twin, both δ
    display-normalised side by side, the plain model's first."""
    twin = domains.of(model).twin(model.name)
    if twin is None:
        return
    st.markdown(twin_intro(model.name))
    if attacks.get(run.attack).needs_target_images:
        st.caption(TWIN_NO_TARGET_IMAGES)
        return
    found = stored_twin(run)
    if found is None:
        if not st.button(f"Compare with {twin}", key="twin_compare", help=glossary.help_text("robust model")):
            return
        found = compare_twin(model, result, run, twin)
    st.plotly_chart(figures.linked_images(found["pictures"], height=300), width="stretch", key="twin-pictures")
    st.markdown(twin_lines(found))
    st.caption(TWIN_NOTE)
