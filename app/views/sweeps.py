"""Sweep results: open a tidy file written by `python -m engine sweep` (issue 8 item 5; metrics).

The file is read from the upload's bytes in memory; nothing is written or opened on disk.
"""
from __future__ import annotations

import json

import streamlit as st

from app import figures
from app.text import EXPLAIN
from engine import sweep

METRICS = {"error": "black-box error", "uTR": "uTR", "tSuc": "tSuc", "tTR": "tTR", "white_error": "white-box error"}


def _chart(summary, metric: str, x: str) -> None:
    """One panel per black-box model: the metric against `x`, one line per attack (and white-box model)."""
    whites = summary["white"].nunique() > 1
    records = json.loads(summary.to_json(orient="records"))  # missing values → None, which figures.lines skips
    rows = [{**r, "curve": f"{r['attack']} · {r['white']}" if whites else r["attack"]}
            for r in records if r[x] is not None]
    blacks = sorted({r["black"] for r in rows})
    if not blacks:
        st.info(f"No finished job has a value of {x}.")
        return
    for column, black in zip(st.columns(min(len(blacks), 3)) * len(blacks), blacks):
        points = sorted((r for r in rows if r["black"] == black), key=lambda r: r[x])
        column.plotly_chart(figures.lines(points, x, metric, group="curve", title=f"→ {black}",
                                          x_title="ε" if x == "eps" else x, y_title=METRICS[metric]),
                            key=f"sweeps.chart.{black}")


def page() -> None:
    st.title("Sweep results")
    if st.session_state.get("presentation"):
        st.info(EXPLAIN["sweeps"])
    st.caption("Open the .csv or .parquet file written by `python -m engine sweep` (README, \"Sweeps\"); "
               "shards are pooled per setting, each rate weighted by its own denominator.")
    upload = st.file_uploader("Results file", type=["csv", "parquet"], key="sweeps.file")
    if upload is None:
        st.info("No results file opened yet.")
        return
    try:
        frame = sweep.load_results(upload.getvalue(), name=upload.name)
    except ValueError as err:
        st.error(f"{upload.name} cannot be opened: {err}")
        return
    failed = frame[frame["status"] != "ok"]
    if len(failed):
        st.warning(f"{failed['job'].nunique()} job(s) failed after their retries; `--resume` runs them again.")
        st.dataframe(failed[["attack", "white", "black", "eps", "layer", "shard", "attempt", "message"]],
                     hide_index=True)
    summary = sweep.summarise(frame)
    if summary.empty:
        st.warning("The file holds no finished job.")
        return
    c1, c2 = st.columns(2)
    metric = c1.selectbox("Metric", list(METRICS), format_func=METRICS.get, key="sweeps.metric")
    axes = [a for a in ("eps", "layer", "steps") if summary[a].nunique() > 1] or ["eps"]
    x = c2.radio("Along", axes, horizontal=True, key="sweeps.x", format_func=lambda a: "ε" if a == "eps" else a)
    _chart(summary, metric, x)
    st.dataframe(summary, hide_index=True)
    with st.expander(f"Every row ({len(frame)}: one per job and black-box model)"):
        st.dataframe(frame, hide_index=True)


if __name__ == "__main__":
    page()
