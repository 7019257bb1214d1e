"""The report's figures, made here so the HTML needs nothing from the network: charts as inline SVG (every label
escaped) and picture grids as PNG bytes."""

from __future__ import annotations

import math
from html import escape

import numpy as np
from PIL import Image

from engine import images

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 680, 300, 60, 235, 20, 45


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def _text(x: float, y: float, words: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12"{extra}>{escape(words)}</text>'


def line_chart(series: list[tuple[str, list, list]], x_label: str, y_label: str, dashed: tuple[str, ...] = ()) -> str:
    """Lines over shared axes: (name, xs, ys) each, None in ys leaves a gap; names in `dashed` draw dashed."""
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None]
    if not points:
        return ""
    xs_all, ys_all = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = min(0.0, min(ys_all)), max(ys_all)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    y1 += 0.05 * (y1 - y0)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(x):
        return _LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y):
        return _TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    out = [f'<svg width="{_W}" height="{_H}" role="img">']
    out.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>')
        out.append(_text(_LEFT - 6, py(t) + 4, _label(t), "end"))
    for t in _ticks(x0, x1):
        out.append(_text(px(t), _TOP + plot_h + 16, _label(t)))
    out.append(_text(_LEFT + plot_w / 2, _H - 8, x_label))
    out.append(_text(14, _TOP + plot_h / 2, y_label, extra=f' transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})"'))
    for i, (name, xs, ys) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        run: list[str] = []
        for x, y in [*zip(xs, ys), (None, None)]:
            if y is None:
                if len(run) > 1:
                    out.append(
                        f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
                    )
                run = []
                continue
            run.append(f"{px(x):.1f},{py(y):.1f}")
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = _TOP + 14 + 18 * i
        out.append(
            f'<line x1="{_W - _RIGHT + 10}" x2="{_W - _RIGHT + 30}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out.append(_text(_W - _RIGHT + 34, ly, name[:34], "start"))
    out.append("</svg>")
    return "".join(out)


def bar_chart(groups: list[str], series: list[tuple[str, list]], y_label: str) -> str:
    """Grouped bars: one group per label, one bar per (name, values) series; None draws no bar."""
    values = [v for _, vs in series for v in vs if v is not None]
    top = max([*values, 1e-9]) * 1.1
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / max(len(groups), 1)
    bar = slot * 0.8 / max(len(series), 1)
    out = [f'<svg width="{_W}" height="{_H}" role="img">']
    out.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for t in _ticks(0.0, top):
        y = _TOP + plot_h - t / top * plot_h
        out.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(_text(_LEFT - 6, y + 4, _label(t), "end"))
    for g, name in enumerate(groups):
        out.append(_text(_LEFT + slot * (g + 0.5), _TOP + plot_h + 16, name[:24]))
        for s, (_, vs) in enumerate(series):
            v = vs[g]
            if v is None:
                continue
            h = v / top * plot_h
            x = _LEFT + slot * g + slot * 0.1 + bar * s
            colour = COLOURS[s % len(COLOURS)]
            out.append(
                f'<rect x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}"/>'
            )
    for s, (name, _) in enumerate(series):
        ly = _TOP + 14 + 18 * s
        colour = COLOURS[s % len(COLOURS)]
        out.append(f'<rect x="{_W - _RIGHT + 10}" y="{ly - 10}" width="14" height="10" fill="{colour}"/>')
        out.append(_text(_W - _RIGHT + 30, ly, name[:34], "start"))
    out.append(_text(14, _TOP + plot_h / 2, y_label, extra=f' transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})"'))
    out.append("</svg>")
    return "".join(out)


def diverging(m: np.ndarray) -> np.ndarray:
    """An H×W map in [−1, 1] as blue (−) / white / red (+) RGB uint8."""
    m = np.clip(m, -1, 1)[..., None]
    white = np.ones(m.shape[:2] + (3,))
    red, blue = np.array([0.84, 0.15, 0.16]), np.array([0.12, 0.47, 0.71])
    rgb = np.where(m >= 0, white + m * (red - 1), white - m * (blue - 1))
    return (rgb * 255 + 0.5).astype(np.uint8)


def picture(x) -> np.ndarray:
    """A tensor image in [0, 1] (C×H×W) or an H×W×3 uint8 array, as uint8 RGB."""
    return x if isinstance(x, np.ndarray) else images.to_uint8(x)


def grid_png(rows: list[list], cell: int = 112, gap: int = 4) -> bytes:
    """Pictures (uint8 H×W×3 arrays or [0, 1] tensors) in rows, each enlarged to a `cell`-px square, as PNG."""
    width = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (cell + gap) - gap, width * (cell + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, item in enumerate(row):
            arr = picture(item)
            if max(arr.shape[:2]) > cell:  # photos shrink smoothly; small images grow with crisp pixels
                arr = np.asarray(Image.fromarray(arr).resize((cell, cell), Image.Resampling.BILINEAR))
            else:
                scale = cell // max(arr.shape[:2])
                arr = arr.repeat(scale, 0).repeat(scale, 1)
            top, left = i * (cell + gap), j * (cell + gap)
            canvas[top : top + arr.shape[0], left : left + arr.shape[1]] = arr
    return images.png_bytes(canvas)
