"""The seed report button: every source paper's check that applies to the chosen model, run under one progress
bar with Cancel, and the self-contained HTML file to download (engine.seed_report)."""

from __future__ import annotations

import streamlit as st

from app import resources, state, widgets
from engine import domains, seed_report
from engine.models import ModelUnavailable


def _compute(model, blacks: list, progress) -> dict:
    report = seed_report.run(model, blacks=blacks, callback=progress)
    return {
        "html": seed_report.render(report),
        "partial": report["partial"],
        "checks": [
            (c["title"], c["section"].headline if c.get("section") else c.get("error")) for c in report["checks"]
        ],
        "not_run": report["not_run"],
        "seconds": report["seconds"],
    }


def show() -> None:
    """The button, its gate and progress bar, and the last report's summary and download."""
    name = st.session_state["selection"].model
    try:
        model = resources.model(name)
    except ModelUnavailable as err:
        st.error(str(err))
        return
    st.subheader("Seed report for this model")
    # A built-in domain's judges are the held-out models its checks use; a model of your own is judged by the
    # black-box models chosen in the sidebar.
    chosen = st.session_state.get("blacks_chosen", []) if domains.of(model).custom else []
    blacks = [resources.model(b) for b in chosen]
    todo, skipped = seed_report.plan(model, blacks=blacks)
    st.caption(
        f"Runs every check of the source papers that applies to {name} ({len(todo)} of {len(seed_report.CHECKS)}) "
        "at report size and writes one HTML file with the papers' numbers beside ours, its pictures and charts "
        "inside it (it opens offline)."
    )
    for s in skipped:
        st.caption(f"Not applicable: {s['title']} — {s['reason']}.")
    if not todo:
        return
    key = ("seed-report", name, state.evaluation_source(), tuple(chosen))
    done = state.analysis(key)
    asked = (done is None or done["partial"]) and st.button("Seed report for this model", key="seed_report")
    found = widgets.gated_run(
        "seed-report",
        key,
        asked,
        lambda: seed_report.expected_seconds(model, blacks=blacks),
        f"Seed report for {name}",
        lambda progress: _compute(model, blacks, progress),
        redo=lambda found: asked and found["partial"],
    )
    if found is None:
        return
    if found["partial"]:
        st.warning(f"Cancelled: a PARTIAL report, without {', '.join(found['not_run'])}. Run it again for all.")
    for title, line in found["checks"]:
        st.markdown(f"**{title}:** {line}")
    st.download_button(
        f"Download the report (HTML, {found['seconds']:.0f} s to make)",
        found["html"],
        seed_report.file_name(name),
        "text/html",
    )
