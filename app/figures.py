"""Plotly figures built from the engine's plain numbers (no tensor maths here)."""
from __future__ import annotations

from typing import Sequence

import base64

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine import images

HEAT = "Jet"


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


def _png_source(rgb: np.ndarray) -> str:
    """An RGB picture as a PNG data URI: a few kB on the wire instead of a JSON array of every pixel."""
    return "data:image/png;base64," + base64.b64encode(images.png_bytes(rgb)).decode("ascii")


def diverging(arr: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] → RGB: blue (−1), white (0), red (+1)."""
    a = np.clip(arr, -1.0, 1.0)[..., None]
    red, blue, white = np.array([178, 24, 43.0]), np.array([33, 102, 172.0]), np.array([247, 247, 247.0])
    rgb = np.where(a >= 0, white + a * (red - white), white - a * (blue - white))
    return rgb.astype(np.uint8)


def _trace(kind: str, arr: np.ndarray, name: str):
    # Full-resolution pictures travel as PNG; hover then shows the pixel position.
    if kind == "rgb":
        return go.Image(source=_png_source(arr), name=name, hovertemplate="x %{x}, y %{y}<extra>" + name + "</extra>")
    if kind == "signed":
        return go.Image(source=_png_source(diverging(arr)), name=name,
                        hovertemplate="x %{x}, y %{y}<extra>" + name + " (red = brighter, blue = darker)</extra>")
    if kind == "spectrum":
        return go.Heatmap(z=np.round(arr, 2), colorscale="Viridis", showscale=False, name=name,
                          hovertemplate="fx %{x}, fy %{y}: log₁₀P %{z:.2f}<extra></extra>")
    # Heat maps are upsampled from a coarse layer: every other pixel loses nothing visible and
    # quarters what is sent; dx/dy keep the coordinates aligned with the full-size pictures.
    step = max(1, -(-max(arr.shape) // 112))
    return go.Heatmap(z=np.round(arr[::step, ::step], 3), x0=0, dx=step, y0=0, dy=step, colorscale=HEAT,
                      zmin=0, zmax=1, showscale=False, name=name,
                      hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra>" + name + "</extra>")


def linked_images(panels: Sequence[tuple[str, np.ndarray, str]], height: int = 320, link: bool = True) -> go.Figure:
    """Pictures side by side; zooming or panning one zooms all (linked axes). Kinds: rgb, heat, signed, spectrum."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _, _ in panels],
                        shared_xaxes="all" if link else False, shared_yaxes="all" if link else False,
                        horizontal_spacing=0.02)
    for i, (title, arr, kind) in enumerate(panels, start=1):
        fig.add_trace(_trace(kind, arr, title), row=1, col=i)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=30, b=5))
    return fig


def lines(rows: list[dict], x: str, y: str, group: str | None = None, title: str = "", y_format: str = ".0%",
          height: int = 320, x_title: str | None = None, y_title: str | None = None) -> go.Figure:
    """One line per `group` value of y against x, markers on the measured points."""
    fig = go.Figure()
    groups = sorted({r[group] for r in rows}, key=str) if group else [None]
    for g in groups:
        pts = [r for r in rows if group is None or r[group] == g]
        pts = [r for r in pts if r.get(y) is not None]
        fig.add_trace(go.Scatter(x=[r[x] for r in pts], y=[r[y] for r in pts], mode="lines+markers",
                                 name=str(g) if g is not None else y))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title=x_title or x, yaxis_title=y_title or y, yaxis_tickformat=y_format)
    return fig


def matrix(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str,
           fmt: str = ".2f", colorscale: str = "Viridis", height: int = 360) -> go.Figure:
    text = [[("" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)) for v in row] for row in values]
    fig = go.Figure(go.Heatmap(z=values, x=list(col_labels), y=list(row_labels), colorscale=colorscale,
                               text=text, texttemplate="%{text}", hovertemplate="%{y} → %{x}: %{z}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), yaxis_autorange="reversed")
    return fig


def bars(labels: Sequence[str], values: Sequence[float], title: str, height: int = 260) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(labels), y=list(values), text=[f"{v:.0%}" for v in values], textposition="auto",
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), yaxis_tickformat=".0%")
    return fig


def plane(points: dict[str, tuple[np.ndarray, Sequence[str]]], trajectory: np.ndarray | None, title: str,
          height: int = 480) -> go.Figure:
    """PCA plane: named point sets (xy, hover labels) and an optional AA trajectory (steps×2)."""
    fig = go.Figure()
    styles = {"source": dict(size=16, symbol="circle", color="black"), "target": dict(size=16, symbol="star", color="gold"),
              "adversarial": dict(size=16, symbol="x", color="red")}
    for name, (xy, labels) in points.items():
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=name, text=list(labels),
                                 marker=styles.get(name, dict(size=6, opacity=0.6)),
                                 hovertemplate="%{text}<extra>" + name + "</extra>"))
    if trajectory is not None:
        fig.add_trace(go.Scatter(x=trajectory[:, 0], y=trajectory[:, 1], mode="lines+markers", name="AA iterates",
                                 line=dict(color="red", dash="dot"), marker=dict(size=5, color="red")))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="PC 1", yaxis_title="PC 2")
    return fig
