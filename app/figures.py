"""Plotly figures built from the engine's plain numbers (no tensor maths here)."""
from __future__ import annotations

import plotly.graph_objects as go


def topk_bars(rows: list[dict], title: str, highlight: set[int] = frozenset(), height: int = 240) -> go.Figure:
    """Horizontal bars of the top-k classes, most probable on top; highlighted classes in red."""
    rows = list(reversed(rows))
    colours = ["#d62728" if r["index"] in highlight else "#1f77b4" for r in rows]
    fig = go.Figure(
        go.Bar(
            x=[r["probability"] for r in rows],
            y=[f"{r['label']} ({r['index']})" for r in rows],
            orientation="h",
            marker_color=colours,
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
            text=[f"{r['probability']:.1%}" for r in rows],
            textposition="auto",
        )
    )
    fig.update_layout(
        title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(range=[0, 1], tickformat=".0%"),
    )
    return fig
