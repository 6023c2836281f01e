"""Line charts as a standalone SVG string (no plotting library in the environment): panels side by
side, each with log or linear axes, one polyline and marker per series, and a legend."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PANEL_W, PANEL_H = 420, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 36, 46
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


@dataclass
class Series:
    label: str
    points: Sequence[tuple[float, float]]


@dataclass
class Panel:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    log_x: bool = False
    log_y: bool = False


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    step = 10.0 ** math.floor(math.log10(max(hi - lo, 1e-12)))
    if (hi - lo) / step < 4:
        step /= 2
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 2)]


def _label(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1e6:g}M"
    if v >= 1_000:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _panel(panel: Panel, x0: float) -> list[str]:
    pts = [p for s in panel.series for p in s.points if not (panel.log_y and p[1] <= 0)]
    if not pts:
        return []
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x_ticks = _ticks(min(xs), max(xs), panel.log_x)
    y_ticks = _ticks(min(ys) if panel.log_y else 0.0, max(ys), panel.log_y)
    fx = math.log10 if panel.log_x else (lambda v: v)
    fy = math.log10 if panel.log_y else (lambda v: v)
    x_lo, x_hi = fx(x_ticks[0]), fx(x_ticks[-1])
    y_lo, y_hi = fy(y_ticks[0]), fy(y_ticks[-1])
    w, h = PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B

    def px(x: float) -> float:
        return x0 + MARGIN_L + (fx(x) - x_lo) / max(x_hi - x_lo, 1e-12) * w

    def py(y: float) -> float:
        return MARGIN_T + h - (fy(y) - y_lo) / max(y_hi - y_lo, 1e-12) * h

    out = [f'<text x="{x0 + PANEL_W / 2}" y="20" text-anchor="middle" font-weight="bold">{escape(panel.title)}</text>',
           f'<rect x="{x0 + MARGIN_L}" y="{MARGIN_T}" width="{w}" height="{h}" fill="none" stroke="#888"/>']
    for t in x_ticks:
        out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{MARGIN_T}" y2="{MARGIN_T + h}" stroke="#eee"/>')
        out.append(f'<text x="{px(t):.1f}" y="{MARGIN_T + h + 16}" text-anchor="middle">{_label(t)}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{x0 + MARGIN_L}" x2="{x0 + MARGIN_L + w}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
                   'stroke="#eee"/>')
        out.append(f'<text x="{x0 + MARGIN_L - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    out.append(f'<text x="{x0 + MARGIN_L + w / 2}" y="{PANEL_H - 8}" text-anchor="middle">'
               f'{escape(panel.x_label)}</text>')
    out.append(f'<text transform="translate({x0 + 14},{MARGIN_T + h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(panel.y_label)}</text>')
    for n, s in enumerate(panel.series):
        colour = COLOURS[n % len(COLOURS)]
        kept = [p for p in s.points if not (panel.log_y and p[1] <= 0)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in kept)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}"/>' for x, y in kept]
        ly = MARGIN_T + 14 + 16 * n
        out.append(f'<line x1="{x0 + MARGIN_L + 8}" x2="{x0 + MARGIN_L + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{x0 + MARGIN_L + 28}" y="{ly}">{escape(s.label)}</text>')
    return out


def line_chart_svg(panels: Sequence[Panel]) -> str:
    """One SVG document with ``panels`` laid out left to right."""
    width = PANEL_W * len(panels)
    body = [line for n, p in enumerate(panels) for line in _panel(p, n * PANEL_W)]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{PANEL_H}" '
            f'viewBox="0 0 {width} {PANEL_H}" font-family="sans-serif" font-size="11">\n'
            f'<rect width="{width}" height="{PANEL_H}" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")
