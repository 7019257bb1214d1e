"""Plotly figures built from the engine's plain numbers (no tensor maths here).

Figures are written as plain trace and layout dicts and wrapped without Plotly's
validators: validating graph objects (make_subplots, update_layout) cost ~0.3 s of
every Explorer rerun, more than the whole Fashion-MNIST attack. The
browser test renders every page, so a malformed figure would still show up there.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from engine import images
from engine.analysis.panels import spectrum_view

HEAT = "Jet"
# Plotly's toolbar appears over a chart's top right corner on hover: titles sit below this band, never under it.
TOOLBAR = 36  # its buttons are 26 px tall, 2 px from the top; a title's glyph box starts ~5 px above its pad
MARGIN = dict(l=10, r=10, t=40, b=10)


def _figure(data: list[dict], **layout) -> go.Figure:
    title = layout.get("title")
    if title and title.get("text"):  # a chart's own title: below the toolbar's band, however narrow the column
        margin = {**MARGIN, **(layout.get("margin") or {})}
        layout["margin"] = {**margin, "t": max(margin["t"], TOOLBAR + 28)}
        layout["title"] = {"yref": "container", "y": 1.0, "yanchor": "top", "pad": {"t": TOOLBAR}, **title}
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def topk_bars(rows: list[dict], title: str, highlight: set[int] = frozenset(), height: int = 240) -> go.Figure:
    """Horizontal bars of the top-k classes, most probable on top; highlighted classes in red."""
    rows = list(reversed(rows))
    bar = {
        "type": "bar",
        "orientation": "h",
        "x": [r["probability"] for r in rows],
        "y": [f"{r['label']} ({r['index']})" for r in rows],
        "marker": {"color": ["#d62728" if r["index"] in highlight else "#1f77b4" for r in rows]},
        "hovertemplate": "%{y}: %{x:.2%}<extra></extra>",
        "text": [f"{r['probability']:.1%}" for r in rows],
        "textposition": "auto",
    }
    return _figure(
        [bar], title={"text": title}, height=height, margin=MARGIN, xaxis={"range": [0, 1], "tickformat": ".0%"}
    )


def _png_source(rgb: np.ndarray) -> str:
    """An RGB picture as a PNG data URI: a few kB on the wire instead of a JSON array of every pixel."""
    rgb = np.ascontiguousarray(rgb)
    return _png_uri(rgb.tobytes(), rgb.shape, rgb.dtype.str)


@lru_cache(maxsize=64)
def _png_uri(raw: bytes, shape: tuple, dtype: str) -> str:
    # Keyed by the full pixel bytes (hashed and compared whole), so sessions can share entries
    # safely; a display-only rerun then re-sends pictures instead of re-encoding them.
    rgb = np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape)
    return "data:image/png;base64," + base64.b64encode(images.png_bytes(rgb, compress_level=1)).decode("ascii")


def diverging(arr: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] → RGB: blue (−1), white (0), red (+1)."""
    a = np.clip(arr, -1.0, 1.0)[..., None]
    red, blue, white = np.array([178, 24, 43.0]), np.array([33, 102, 172.0]), np.array([247, 247, 247.0])
    rgb = np.where(a >= 0, white + a * (red - white), white - a * (blue - white))
    return rgb.astype(np.uint8)


def _trace(kind: str, arr: np.ndarray, name: str) -> dict:
    # Full-resolution pictures travel as PNG; hover then shows the pixel position.
    if kind == "rgb":
        return {
            "type": "image",
            "source": _png_source(arr),
            "name": name,
            "hovertemplate": "x %{x}, y %{y}<extra>" + name + "</extra>",
        }
    if kind == "signed":
        return {
            "type": "image",
            "source": _png_source(diverging(arr)),
            "name": name,
            "hovertemplate": "x %{x}, y %{y}<extra>" + name + " (red = brighter, blue = darker)</extra>",
        }
    if kind == "spectrum":
        view = spectrum_view(arr)
        return {
            "type": "heatmap",
            "z": np.round(view["z"], 2),
            "colorscale": "Viridis",
            "name": name,
            "x": np.round(view["fx"], 4),
            "y": np.round(view["fy"], 4),
            "zmin": round(view["zmin"], 2),
            "zmax": round(view["zmax"], 2),
            # Below the axes: in a narrow column a colour bar beside the square would take a third of its width.
            "colorbar": {
                "title": {"text": "log₁₀ power", "side": "top"},
                "orientation": "h",
                "thickness": 10,
                "len": 0.9,
                "x": 0.5,
                "xanchor": "center",
                "y": -0.3,
                "yanchor": "top",
            },
            "hovertemplate": "fx %{x:.3f}, fy %{y:.3f} cycles/px: log₁₀P %{z:.2f}<extra></extra>",
        }
    return _heat_trace(arr, name)


def _heat_trace(arr: np.ndarray, name: str, opacity: float = 1.0, scale: bool = False) -> dict:
    # Heat maps are upsampled from a coarse layer: every other pixel loses nothing visible and
    # quarters what is sent; dx/dy keep the coordinates aligned with the full-size pictures.
    step = max(1, -(-max(arr.shape) // 112))
    return {
        "type": "heatmap",
        "z": np.round(arr[::step, ::step], 3),
        "x0": 0,
        "dx": step,
        "y0": 0,
        "dy": step,
        "colorscale": HEAT,
        "zmin": 0,
        "zmax": 1,
        "showscale": scale,
        "opacity": opacity,
        "name": name,
        "colorbar": {"title": {"text": "Grad-CAM"}, "thickness": 12, "len": 0.9},
        "hovertemplate": "x %{x}, y %{y}: %{z:.2f}<extra>" + name + "</extra>",
    }


def _wrap(title: str, width: int = 30) -> str:
    """Long class names on several lines instead of into the next panel's title."""
    words, lines = title.split(" "), [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return "<br>".join(lines)


def _frequency_axis(log_power: np.ndarray, axis: str) -> dict:
    """A spectrum's axis: exactly the frequencies it holds (y downwards, as the picture's rows), named in words."""
    view = spectrum_view(log_power)
    low, high = view[f"{axis}_range"]
    words = "horizontal frequency<br>fx (cycles/px)" if axis == "x" else "vertical frequency<br>fy (cycles/px)"
    return {
        "title": {"text": words, "font": {"size": 12}},
        "range": [low, high] if axis == "x" else [high, low],
        "autorange": False,
        "dtick": 0.25,
        "zeroline": False,
    }


def linked_images(panels: Sequence[tuple], height: int = 320, link: bool = True, opacity: float = 0.5) -> go.Figure:
    """Pictures side by side; zooming or panning one zooms all (linked axes).

    A panel is (title, array, kind) with kind rgb, heat, signed or spectrum, or (title, (rgb, heat), "overlay"):
    the heat map drawn over the picture at `opacity`. The last heat panel carries the colour bar; an all-zero
    heat map says so instead of showing a flat square."""
    gap = 0.02
    width = (1.0 - gap * (len(panels) - 1)) / len(panels)
    data, layout, notes, titles = [], {}, [], []
    last_heat = max((i for i, (_, _, kind) in enumerate(panels) if kind in ("heat", "overlay")), default=-1)
    for i, (title, arr, kind) in enumerate(panels):
        suffix = "" if i == 0 else str(i + 1)
        left = i * (width + gap)
        axes = {"xaxis": "x" + suffix, "yaxis": "y" + suffix}
        if kind == "overlay":
            rgb, heat = arr
            data.append({**_trace("rgb", rgb, title), **axes})
            data.append({**_heat_trace(heat, title, opacity, scale=i == last_heat), **axes})
        else:
            trace = _trace(kind, arr, title)
            if kind == "heat":
                trace["showscale"] = i == last_heat
            data.append({**trace, **axes})
        heat = arr[1] if kind == "overlay" else arr if kind == "heat" else None
        if heat is not None and float(np.max(heat)) <= 0.0:
            notes.append(
                {
                    "text": "all zero: no positive<br>evidence for this class",
                    "x": left + width / 2,
                    "y": 0.5,
                    "xref": "paper",
                    "yref": "paper",
                    "showarrow": False,
                    "bgcolor": "rgba(255,255,255,0.85)",
                    "font": {"size": 13},
                }
            )
        linked = link and i > 0 and kind != "spectrum"  # every picture follows the first one's zoom and pan
        ticks = kind == "spectrum"  # frequencies are numbers worth reading; pixel positions are not
        # "domain": a square picture in a wide slot narrows its slot instead of widening its axis beyond the data.
        layout["xaxis" + suffix] = {
            "domain": [left, left + width],
            "anchor": "y" + suffix,
            "showticklabels": ticks,
            "constrain": "domain",
            **(_frequency_axis(arr, "x") if ticks else {}),
            **({"matches": "x"} if linked else {}),
        }
        layout["yaxis" + suffix] = {
            "domain": [0.0, 1.0],
            "anchor": "x" + suffix,
            "autorange": "reversed",
            "scaleanchor": "x" + suffix,
            "showticklabels": ticks,
            "constrain": "domain",
            **(_frequency_axis(arr, "y") if ticks else {}),
            **({"matches": "y"} if linked else {}),
        }
        # Narrower panels wrap sooner: four titles of 30 characters run into each other at 1280 px.
        titles.append(
            {
                "text": _wrap(title, max(16, 110 // len(panels))),
                "x": left + width / 2,
                "y": 1.0,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 15},
            }
        )
    lines = max(t["text"].count("<br>") for t in titles) + 1
    return _figure(
        data, height=height, margin=dict(l=5, r=5, t=TOOLBAR + 22 * lines, b=5), annotations=titles + notes, **layout
    )


# Column names that reach a chart, in words: an axis says what it measures, not what a table calls it.
WORDS = {
    "success_rate": "success rate",
    "mean_distortion": "mean distortion (share of features changed)",
    "error": "black-box error",
    "uTR": "untargeted transfer (uTR)",
    "tSuc": "target hit on the black box (tSuc)",
    "tTR": "targeted transfer (tTR)",
    "white_error": "white-box error",
    "white_tSuc": "target hit on the white box",
    "eps": "ε",
    "upsilon": "Υ (share of features changed)",
    "accuracy": "accuracy",
    "area": "mask area",
    "per +1% area": "accuracy change per +1 % area",
    "ratio": "separability",
    "layer": "layer",
}


def words(column: str) -> str:
    return WORDS.get(column, column.replace("_", " "))


def lines(
    rows: list[dict],
    x: str,
    y: str,
    group: str | None = None,
    title: str = "",
    y_format: str = ".0%",
    height: int = 320,
    x_title: str | None = None,
    y_title: str | None = None,
) -> go.Figure:
    """One line per `group` value of y against x, markers on the measured points; grouped bars where every
    point has the same x (a line through one point says nothing), each labelled with its value so that a zero
    reads as 0 rather than as a missing bar."""
    single = len({r[x] for r in rows}) == 1
    x_title, y_title = x_title or words(x), y_title or words(y)
    data = []
    for g in sorted({r[group] for r in rows}, key=str) if group else [None]:
        pts = [r for r in rows if (group is None or r[group] == g) and r.get(y) is not None]
        trace = (
            {
                "type": "bar",
                "text": [format(r[y], y_format) for r in pts],
                "textposition": "outside",
                "cliponaxis": False,
            }
            if single
            else {"type": "scatter", "mode": "lines+markers"}
        )
        data.append(
            {
                **trace,
                "name": str(g) if g is not None else y_title,
                "x": [f"{x_title} = {r[x]}" if single else r[x] for r in pts],
                "y": [r[y] for r in pts],
            }
        )
    yaxis = {"title": {"text": y_title}, "tickformat": y_format}
    if y_format.endswith("%"):  # a rate: always the whole 0-100 % scale, so flat zeros look like zeros
        yaxis["range"] = [-0.02, 1.02]
    # Below the chart, the legend leaves a narrow column's whole width to the curves.
    legend = {"orientation": "h", "x": 0, "y": -0.25, "yanchor": "top"}
    return _figure(
        data,
        title={"text": title},
        height=height,
        margin=MARGIN,
        legend=legend,
        xaxis={"title": {"text": x_title}},
        yaxis=yaxis,
    )


def matrix(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    fmt: str = ".2f",
    colorscale: str = "Viridis",
    height: int = 360,
    zrange: tuple[float, float] | None = None,
    row_title: str = "",
    col_title: str = "",
) -> go.Figure:
    """A labelled heat map; `zrange` fixes the colour scale so that matrices shown side by side compare;
    `row_title` and `col_title` name what the rows and columns are."""
    text = [
        [("" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)) for v in row] for row in values
    ]
    heat = {
        "type": "heatmap",
        "z": values,
        "x": list(col_labels),
        "y": list(row_labels),
        "colorscale": colorscale,
        "text": text,
        "texttemplate": "%{text}",
        "hovertemplate": "%{y} → %{x}: %{z}<extra></extra>",
        **({"zmin": zrange[0], "zmax": zrange[1]} if zrange else {}),
    }
    return _figure(
        [heat],
        title={"text": title},
        height=height,
        margin=MARGIN,
        xaxis={"title": {"text": col_title}},
        yaxis={"autorange": "reversed", "title": {"text": row_title}},
    )


def bars(labels: Sequence[str], values: Sequence[float], title: str, height: int = 260) -> go.Figure:
    bar = {
        "type": "bar",
        "x": list(labels),
        "y": list(values),
        "text": [f"{v:.0%}" for v in values],
        "textposition": "auto",
        "hovertemplate": "%{x}: %{y:.1%}<extra></extra>",
    }
    return _figure([bar], title={"text": title}, height=height, margin=MARGIN, yaxis={"tickformat": ".0%"})


def class_answers(labels: Sequence[str], counts: Sequence[int], right: int, title: str, height: int = 330) -> go.Figure:
    """A class's answers to one question: a bar per choice, the right one (index `right`) green and ticked."""
    bar = {
        "type": "bar",
        "x": [("✓ " if i == right else "") + label for i, label in enumerate(labels)],
        "y": list(counts),
        "marker": {"color": ["#2e7d32" if i == right else "#9e9e9e" for i in range(len(labels))]},
        "text": [str(c) for c in counts],
        "textposition": "outside",
        "hovertemplate": "%{x}: %{y}<extra></extra>",
    }
    top = max([1, *counts]) * 1.25  # room above the tallest bar for its number
    return _figure(
        [bar], title={"text": title}, height=height, margin=MARGIN, yaxis={"visible": False, "range": [0, top]}
    )


MARKED = {
    "source": dict(size=16, symbol="circle", color="black"),
    "target": dict(size=16, symbol="star", color="gold", line=dict(color="black", width=1)),
    "adversarial": dict(size=16, symbol="x", color="red"),
}
LEGEND_CLASSES = 10  # more classes than this share one legend entry: 36 entries would push the markers out of sight


def _markers(name: str, xy: np.ndarray, labels, marker: dict, rank: int, hover_name: str = "") -> dict:
    """One named set of points on the PCA plane, each hovering with its label."""
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": xy[:, 0],
        "y": xy[:, 1],
        "text": list(labels),
        "marker": marker,
        "legendrank": rank,
        "hovertemplate": "%{text}<extra>" + hover_name + "</extra>",
    }


def plane(
    points: dict[str, tuple[np.ndarray, Sequence[str]]], trajectory: np.ndarray | None, title: str, height: int = 480
) -> go.Figure:
    """PCA plane: named point sets (xy, hover labels) and an optional AA trajectory (steps×2). The sets named in
    MARKED (source, target, adversarial) are drawn on top and lead the legend; the other sets are the reference
    classes, one legend entry each up to LEGEND_CLASSES, else one entry for all of them (hover names the class)."""
    classes = [(name, xy, labels) for name, (xy, labels) in points.items() if name not in MARKED]
    data = []
    if len(classes) <= LEGEND_CLASSES:
        data += [_markers(name, xy, labels, dict(size=6, opacity=0.6), 2000) for name, xy, labels in classes]
    elif classes:
        xy = np.concatenate([c[1] for c in classes])
        palette = [*qualitative.Dark24, *qualitative.Alphabet]  # named scales would need Plotly's validators
        colour = [palette[k % len(palette)] for k, c in enumerate(classes) for _ in range(len(c[1]))]
        name = f"reference images ({len(classes)} classes: colour = class, hover for its name)"
        labels = [label for c in classes for label in c[2]]
        data.append(_markers(name, xy, labels, dict(size=6, opacity=0.7, color=colour), 2000))
    if trajectory is not None:
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "AA iterates",
                "x": trajectory[:, 0],
                "y": trajectory[:, 1],
                "line": dict(color="red", dash="dot"),
                "marker": dict(size=5, color="red"),
                "legendrank": 1004,
            }
        )
    data += [
        _markers(name, xy, labels, MARKED[name], 1000 + k, hover_name=name)
        for k, name in enumerate(MARKED)
        if name in points
        for xy, labels in [points[name]]
    ]
    return _figure(
        data,
        title={"text": title},
        height=height,
        margin=MARGIN,
        xaxis={"title": {"text": "first principal component (PC 1)"}},
        yaxis={"title": {"text": "second principal component (PC 2)"}},
        legend={"orientation": "h", "y": -0.18, "x": 0, "yanchor": "top"},
    )


def separability(rows: list[dict], baseline: float | None, title: str, height: int = 320) -> go.Figure:
    """Separability per layer, with the input pixels' value as a dotted level named in the legend (a label on
    the line itself sits on top of the curve wherever the two meet)."""
    fig = lines(
        rows,
        "layer",
        "ratio",
        title=title,
        y_format=".2f",
        x_title="layer (input → output)",
        y_title="separability",
        height=height,
    )
    if baseline is not None:
        xs = [r["layer"] for r in rows]
        fig.add_trace(
            {
                "type": "scatter",
                "mode": "lines",
                "x": [min(xs), max(xs)],
                "y": [baseline] * 2,
                "name": "input pixels",
                "line": {"color": "#7f7f7f", "dash": "dot"},
                "hovertemplate": "input pixels: %{y:.2f}<extra></extra>",
            }
        )
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.3, "x": 0, "yanchor": "top"})
    return fig


def patch_view(
    rgb: np.ndarray,
    centre: tuple[float, float] | None,
    boxes: Sequence[dict],
    chosen: int | None,
    size: int,
    distance: float,
    title: str,
    heat: np.ndarray | None = None,
    opacity: float = 0.35,
    height: int = 420,
) -> go.Figure:
    """A photo with the patch's placements at one distance drawn on it: the chosen one solid, the other
    directions dashed (those that would leave the image are not drawn), the ring dotted and the heat-map
    centre as a cross. `heat` is drawn over the photo at `opacity`."""
    data = [_trace("rgb", rgb, "photo")]
    if heat is not None:
        data.append(_heat_trace(heat, "Grad-CAM", opacity))
    shapes = []
    for i, b in enumerate(boxes):
        if not b["inside"]:
            continue
        mine = i == chosen
        shapes.append(
            {
                "type": "rect",
                "x0": b["left"] - 0.5,
                "x1": b["left"] + size - 0.5,
                "y0": b["top"] - 0.5,
                "y1": b["top"] + size - 0.5,
                "line": {
                    "color": "#d62728" if mine else "rgba(255,255,255,0.8)",
                    "width": 3 if mine else 1,
                    "dash": "solid" if mine else "dash",
                },
            }
        )
    if centre is not None:
        cy, cx = centre
        if distance > 0:
            shapes.append(
                {
                    "type": "circle",
                    "x0": cx - distance,
                    "x1": cx + distance,
                    "y0": cy - distance,
                    "y1": cy + distance,
                    "line": {"color": "rgba(255,255,255,0.7)", "width": 1, "dash": "dot"},
                }
            )
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": [cx],
                "y": [cy],
                "name": "heat-map centre",
                "marker": {"symbol": "x-thin", "size": 16, "line": {"width": 3, "color": "#ffdd00"}},
                "hovertemplate": "heat-map centre: x %{x:.1f}, y %{y:.1f}<extra></extra>",
            }
        )
    h, w = rgb.shape[:2]
    return _figure(
        data,
        title={"text": title},
        height=height,
        margin=dict(l=5, r=5, t=40, b=5),
        shapes=shapes,
        showlegend=False,
        xaxis={"range": [-0.5, w - 0.5], "showticklabels": False, "constrain": "domain"},
        yaxis={"range": [h - 0.5, -0.5], "scaleanchor": "x", "showticklabels": False, "constrain": "domain"},
    )


def _band(xs: list, mean: list, spread: list, colour: str, name: str, limits: tuple[float, float]) -> dict:
    """mean ± spread as a filled outline, cut at the metric's own limits (no hover: the line carries the numbers)."""
    upper = [min(m + s, limits[1]) for m, s in zip(mean, spread)]
    lower = [max(m - s, limits[0]) for m, s in zip(mean, spread)]
    return {
        "type": "scatter",
        "mode": "lines",
        "x": xs + xs[::-1],
        "y": upper + lower[::-1],
        "fill": "toself",
        "fillcolor": colour,
        "line": {"width": 0},
        "hoverinfo": "skip",
        "name": name,
        "showlegend": True,
    }


def distance_curve(
    rows: list[dict],
    control: dict,
    metric: str,
    title: str,
    y_title: str,
    rate: str | None = None,
    zero_line: str | None = None,
    chosen: float | None = None,
    height: int = 360,
) -> go.Figure:
    """`metric`_mean against distance with its spread (± 1 std, shaded) and the mean's uncertainty (error bars:
    ± 2 standard errors), the random-position control as a dashed level; `rate` adds that share per distance
    (and the control's) on the same axis; `zero_line` marks y = 0 with that text; `chosen` a vertical line at
    the distance the view shows."""
    pts = [r for r in rows if r["n"]]
    xs = [r["distance"] for r in pts]
    mean, spread = [r[f"{metric}_mean"] for r in pts], [r[f"{metric}_std"] for r in pts]
    limits = (0.0, 1.0) if metric == "wrong" else (-1.0, 1.0)
    data = [
        _band(xs, mean, spread, "rgba(31,119,180,0.18)", "± 1 std", limits),
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": xs,
            "y": mean,
            "name": "mean at this distance",
            "line": {"color": "#1f77b4"},
            "customdata": [r["n"] for r in pts],
            "error_y": {
                "type": "data",
                "array": [2 * sd / max(r["n"], 1) ** 0.5 for sd, r in zip(spread, pts)],
                "thickness": 1,
                "width": 3,
            },
            "hovertemplate": "d %{x} px: %{y:.3f} (n %{customdata})<extra></extra>",
        },
    ]
    shapes, notes = [], []
    span = [min(xs), max(xs)] if xs else [0, 1]
    if control.get("n"):
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": span,
                "y": [control[f"{metric}_mean"]] * 2,
                "name": f"random positions (n {control['n']})",
                "line": {"color": "#7f7f7f", "dash": "dash"},
            }
        )
    if rate:
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": xs,
                "y": [r[rate] for r in pts],
                "name": "share flipped",
                "line": {"color": "#d62728"},
                "hovertemplate": "d %{x} px: %{y:.1%} flipped<extra></extra>",
            }
        )
        if control.get("n"):
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": span,
                    "y": [control[rate]] * 2,
                    "name": "share flipped, random",
                    "line": {"color": "#d62728", "dash": "dash", "width": 1},
                }
            )
    if zero_line:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": 0,
                "y1": 0,
                "line": {"color": "#d62728", "dash": "dot"},
            }
        )
        notes.append(
            {
                "text": zero_line,
                "xref": "paper",
                "x": 1,
                "y": 0,
                "xanchor": "right",
                "yanchor": "top",
                "showarrow": False,
                "font": {"color": "#d62728", "size": 12},
            }
        )
    if chosen is not None:
        shapes.append(
            {
                "type": "line",
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "x0": chosen,
                "x1": chosen,
                "line": {"color": "#2ca02c", "width": 2},
            }
        )
    return _figure(
        data,
        title={"text": title},
        height=height,
        margin=MARGIN,
        shapes=shapes,
        annotations=notes,
        xaxis={"title": {"text": "distance from the heat-map centre (px)"}},
        yaxis={"title": {"text": y_title}},
        legend={"orientation": "h", "y": -0.25},
    )


def before_after(rows: list[dict], class_name: str, height: int = 320) -> go.Figure:
    """Each model's probability of the true class before and after the attack, side by side, with the answer it
    gives now: one chart however many models there are."""
    names = [f"{r['model']} ({r['role']})" for r in rows]
    before = {
        "type": "bar",
        "name": "before",
        "x": names,
        "y": [r["before"] for r in rows],
        "marker": {"color": "#9ecae1"},
        "text": [f"{r['before']:.0%}" for r in rows],
        "textposition": "outside",
        "hovertemplate": "%{x}: %{y:.1%} before<extra></extra>",
    }
    after = {
        "type": "bar",
        "name": "after",
        "x": names,
        "y": [r["after"] for r in rows],
        "marker": {"color": ["#d62728" if r["fooled"] else "#1f77b4" for r in rows]},
        "text": [f"{r['after']:.0%} · now {r['now']}" for r in rows],
        "textposition": "outside",
        "hovertemplate": "%{x}: %{y:.1%} after<extra></extra>",
    }
    return _figure(
        [before, after],
        barmode="group",
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        yaxis={"range": [0, 1.15], "tickformat": ".0%", "title": {"text": f"P({class_name})"}},
        legend={"orientation": "h", "y": 1.08, "x": 0},
    )


def result_pictures(panels: dict, row: dict, view: str, kind: str, height: int) -> go.Figure:
    """An attack result's three pictures: clean and adversarial with each one's top-1, and δ shown as `view`
    (the panel `kind`: signed, amplified or display)."""
    clean, adv = row["clean_top5"][0], row["adversarial_top5"][0]
    return linked_images(
        [
            (f"clean: {clean['label']} ({clean['probability']:.0%})", panels["clean"], "rgb"),
            (f"adversarial: {adv['label']} ({adv['probability']:.0%})", panels["adversarial"], "rgb"),
            (f"perturbation ({view})", panels[kind], "signed" if kind == "signed" else "rgb"),
        ],
        height=height,
    )


# The four Grad-CAM panels' titles: the Explorer names the method, the deck says what a viewer sees.
_HEAT_TITLES = {
    False: (
        "clean · {method} of {src}",
        "adversarial · {method} of {adv}",
        "adversarial · {method} of {src}",
        "δ masked by the clean heat map",
    ),
    True: (
        "clean · evidence for {src}",
        "adversarial · evidence for {adv}",
        "adversarial · evidence for {src}",
        "δ where the clean map is warm",
    ),
}


def heat_pictures(
    panels: dict, names: Sequence[str], height: int, opacity: float, plain: bool = False, method: str = "Grad-CAM"
) -> go.Figure:
    """A result's heat maps over its images: the clean image's evidence for the true class, the adversarial
    image's for its new class and for the true class, and δ kept where the clean map is warm."""
    heat = panels["heat"]
    titles = [
        t.format(src=names[heat["source_class"]], adv=names[heat["adversarial_class"]], method=method)
        for t in _HEAT_TITLES[plain]
    ]
    clean, adversarial = panels["clean"], panels["adversarial"]
    figure = linked_images(
        [
            (titles[0], (clean, heat["clean · source"]), "overlay"),
            (titles[1], (adversarial, heat["adversarial · adversarial class"]), "overlay"),
            (titles[2], (adversarial, heat["adversarial · source"]), "overlay"),
            (titles[3], panels["masked"], "signed"),
        ],
        height=height,
        opacity=opacity,
    )
    return figure.update_traces(colorbar={"title": {"text": method}}, selector={"type": "heatmap"})


def method_pair(pictures: tuple, maps: tuple, classes: tuple[str, str], height: int) -> go.Figure:
    """One heat-map method on a result: its map of the clean image for the source class beside its map of the
    adversarial image for the class the attack produced. No colour bar: the pairs share the 0-1 scale of the
    heat maps above, and a bar in each would leave the pictures a third less room."""
    (clean, adversarial), (src, adv) = pictures, classes
    fig = linked_images(
        [(f"clean · {src}", (clean, maps[0]), "overlay"), (f"adversarial · {adv}", (adversarial, maps[1]), "overlay")],
        height=height,
    )
    return fig.update_traces(showscale=False, selector={"type": "heatmap"})


def spectrum_figure(log_power: np.ndarray, height: int, bar_beside: bool = False) -> go.Figure:
    """δ's power spectrum (log₁₀) as one square; `bar_beside` moves the colour bar to its right."""
    fig = linked_images([("power spectrum of δ (log₁₀)", log_power, "spectrum")], height=height, link=False)
    if bar_beside:  # at a deck's type size a bar below squeezes the spectrum to a stamp
        fig.update_traces(
            colorbar={
                "orientation": "v",
                "x": 1.0,
                "xanchor": "left",
                "y": 0.5,
                "yanchor": "middle",
                "len": 0.9,
                "title": {"side": "right"},
            },
            selector={"type": "heatmap"},
        )
    return fig


def larger_type(fig: go.Figure, size: int) -> go.Figure:
    """Every label of a figure at `size` px (ticks one smaller), for a projector."""
    # Streamlit's chart theme sizes ticks and legends on its own: each is set here, not only the default font.
    fig.update_layout(font={"size": size}, title_font_size=size + 1, legend_font_size=size)
    fig.update_xaxes(tickfont_size=size - 1, title_font_size=size)
    fig.update_yaxes(tickfont_size=size - 1, title_font_size=size)
    fig.update_annotations(font_size=size)
    fig.update_traces(textfont_size=size, selector={"type": "bar"})
    fig.update_traces(colorbar_tickfont_size=size - 1, colorbar_title_font_size=size, selector={"type": "heatmap"})
    return fig


def mask_sweeps(sweep: list[dict], linf: list[dict]) -> list[go.Figure]:
    """The contour-vs-background sweeps: accuracy against mask area, its change per +1 % area, and the
    accuracy of ε·sign(δ) on each part against ε."""
    area = "mask area (share of the image)"
    return [
        lines(sweep, "area", "accuracy", title="accuracy vs mask area", x_title=area, y_title="judges' accuracy"),
        lines(
            sweep,
            "area",
            "per +1% area",
            title="change per +1 % area",
            y_format=".3f",
            x_title=area,
            y_title="accuracy change per +1 % area",
        ),
        lines(
            linf, "eps", "accuracy", group="part", title="ε·sign(δ) per part", x_title="ε", y_title="judges' accuracy"
        ),
    ]


def cosines(setting: str, values: np.ndarray, attacks: Sequence[str]) -> go.Figure:
    """The mean cosine similarity between every two attacks' perturbations in one setting, on a fixed −1…1 scale."""
    return matrix(values, attacks, attacks, f"cosine similarity, {setting}", colorscale="RdBu_r", zrange=(-1.0, 1.0))


def noise_bars(rows: list[dict], model: str) -> go.Figure:
    """The classes one model sees in pure noise, with their shares (`recognisable.noise_classes` rows)."""
    mine = [r for r in rows if r["model"] == model]
    return bars([r["name"] for r in mine], [r["share"] for r in mine], model)


def jsma_curve(rows: list[dict], aim: str) -> go.Figure:
    """JSMA's success rate against Υ, the largest share of features it may change."""
    return lines(
        rows,
        "upsilon",
        "success_rate",
        y_format=".0%",
        title=f"JSMA success towards {aim}",
        x_title="Υ (largest share of features changed)",
        y_title="images that reach the target",
    )


def hardness(values: np.ndarray, labels: Sequence[str]) -> go.Figure:
    """JSMA's hardness H(source → target) per pair of classes."""
    return matrix(
        values,
        labels,
        labels,
        "hardness H(source → target)",
        fmt=".4f",
        row_title="source class (the image's)",
        col_title="target class",
    )


def eps_pictures(found: dict, index: int, chosen: float, height: int) -> go.Figure:
    """The ε slider's pictures (panels.eps_panels at grid position `index`): the adversarial image and signed δ."""
    return linked_images(
        [
            (f"adversarial at ε {chosen:g}", found["pictures"][index], "rgb"),
            ("perturbation (signed δ)", found["deltas"][index], "signed"),
        ],
        height=height,
    )


def eps_curve(view: dict, chosen: float, height: int) -> go.Figure:
    """Every model's probability of the true class along the ε grid (panels.eps_view), a dotted line at `chosen`."""
    fig = lines(view["curves"], "eps", "p", "model", view["title"], height=height, x_title="ε", y_title="probability")
    fig.add_vline(x=chosen, line_dash="dot")
    return fig
