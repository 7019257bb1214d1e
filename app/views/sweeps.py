"""Sweep results: open a tidy file written by `python -m engine sweep` (one row per metric).

The file is read from the upload's bytes in memory; nothing is written or opened on disk.
"""

from __future__ import annotations

import json

import streamlit as st

from app import figures, resources, state
from app.text import EXPLAIN
from engine import sweep
from engine.analysis import example_sweep, transfer

METRICS = {**transfer.METRIC_WORDS, "white_error": "white-box error"}


def _chart(records: list[dict], whites: bool, metric: str, x: str) -> None:
    """One panel per black-box model: the metric against `x`, one line per attack (and white-box model); a
    panel whose values are all zero or unmeasured is a sentence instead."""
    rows = [
        {**r, "curve": f"{r['attack']} · {r['white']}" if whites else r["attack"]} for r in records if r[x] is not None
    ]
    blacks = sorted({r["black"] for r in rows})
    if not blacks:
        st.info(f"No finished job has a value of {x}.")
        return
    for column, black in zip(st.columns(min(len(blacks), 3)) * len(blacks), blacks):
        points = sorted((r for r in rows if r["black"] == black), key=lambda r: r[x])
        if transfer.says_nothing(r[metric] for r in points):
            hint = "targeted metrics need a targeted attack such as tmifgsm; " if metric in ("tSuc", "tTR") else ""
            column.info(
                f"{METRICS[metric].capitalize()} on {black} is 0 or unmeasured at every "
                f"{'ε' if x == 'eps' else x} here ({hint}a larger ε shows more): pick another metric above, "
                "or sweep larger values."
            )
            continue
        column.plotly_chart(
            figures.lines(
                points,
                x,
                metric,
                group="curve",
                title=f"→ {black}",
                x_title="ε" if x == "eps" else x,
                y_title=METRICS[metric],
            ),
            key=f"sweeps.chart.{black}",
        )


def _example():
    """A small sweep of the sidebar's models run here, when no file is open: what the page shows, at first sight."""
    selection = st.session_state.get("selection")
    blacks = st.session_state.get("blacks_chosen", [])
    built_in = {r["name"] for r in resources.model_rows() if r["available"]}
    if selection is None or selection.model not in built_in or not blacks or not set(blacks) <= built_in:
        st.info(
            "No results file opened yet. With a built-in white-box model and black-box models chosen in the "
            "sidebar, a small example sweep can run here."
        )
        return None
    key = ("example-sweep", selection.model, tuple(blacks))
    frame = state.analysis(key)
    if frame is None:
        offer = st.empty()
        with offer.container():
            st.info(
                "No results file opened yet: open one above, or run a small example sweep of the sidebar's "
                "models (a few seconds)."
            )
            clicked = st.button(
                f"Run a small example sweep: {selection.model} → {', '.join(blacks)}",
                type="primary",
                key="sweeps.example",
            )
        if not clicked:
            return None
        offer.empty()
        with st.spinner("Sweeping…"):
            frame = example_sweep.run(selection.model, blacks)
        state.store_analysis(key, frame)
    st.caption(f"Example sweep of {selection.model} → {', '.join(blacks)}, run here; a file opened above replaces it.")
    return frame


def page() -> None:
    st.title("Sweep results")
    if st.session_state.get("presentation"):
        st.info(EXPLAIN["sweeps"])
    st.caption(
        'Open the .csv or .parquet file written by `python -m engine sweep` (README, "Sweeps"); '
        "shards are pooled per setting, each rate weighted by its own denominator."
    )
    upload = st.file_uploader("Results file", type=["csv", "parquet"], key="sweeps.file")
    if upload is None:
        frame = _example()
        if frame is None:
            return
    else:
        try:
            frame = sweep.load_results(upload.getvalue(), name=upload.name)
        except ValueError as err:
            st.error(f"{upload.name} cannot be opened: {err}")
            return
    failed = frame[frame["status"] != "ok"]
    if len(failed):
        st.warning(f"{failed['job'].nunique()} job(s) failed after their retries; `--resume` runs them again.")
        st.dataframe(
            failed[["attack", "white", "black", "eps", "layer", "shard", "attempt", "message"]], hide_index=True
        )
    summary = sweep.summarise(frame)
    if summary.empty:
        st.warning("The file holds no finished job.")
        return
    c1, c2 = st.columns(2)
    metric = c1.selectbox("Metric", list(METRICS), format_func=METRICS.get, key="sweeps.metric")
    axes = [a for a in ("eps", "layer", "steps") if summary[a].nunique() > 1] or ["eps"]
    x = c2.radio("Along", axes, horizontal=True, key="sweeps.x", format_func=lambda a: "ε" if a == "eps" else a)
    records = json.loads(summary.to_json(orient="records"))  # missing values → None, which figures.lines skips
    said = transfer.sweep_sentence(records, metric, x, METRICS[metric])
    if said:
        st.markdown(f"**What it shows:** {said}")
    _chart(records, summary["white"].nunique() > 1, metric, x)
    st.dataframe(summary, hide_index=True)
    with st.expander(f"Every row ({len(frame)}: one per job and black-box model)"):
        st.dataframe(frame, hide_index=True)


if __name__ == "__main__":
    page()
