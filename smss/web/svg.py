"""Charts drawn on the server as inline SVG: no script, no font or file from elsewhere.

``bars`` draws a ``charts.Chart`` as grouped bars, ``line`` a series of
(time, value) points such as a modem's signal.  Colours and fonts come from
classes styled in ``static/smss.css`` (the Content-Security-Policy allows no
inline style).  Every bar and point carries its numbers (``data-*`` and a
``<title>`` the browser shows on hover), and the pages print the same numbers
in a table, so nothing depends on seeing the picture.
"""

from __future__ import annotations

from datetime import datetime
from typing import List, Optional, Sequence, Tuple

from markupsafe import Markup, escape

from smss.web.charts import SERIES, Chart

WIDTH, HEIGHT = 600, 200  # user units; the picture scales to the width of its box
LEFT, RIGHT, TOP, BOTTOM = 36, 6, 8, 22


def _nice_top(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 5)."""
    top = max(5.0, float(value))
    step = 1
    while True:
        for factor in (1, 2, 5):
            if factor * step >= top:
                return factor * step
        step *= 10


def _grid(width: int, ticks: Sequence[Tuple[float, str]]) -> List[str]:
    out = []
    for y, label in ticks:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}"'
                   f' y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{LEFT - 5}" y="{y + 4:.1f}"'
                   f' text-anchor="end">{escape(label)}</text>')
    return out


def bars(chart: Chart, css_id: str) -> Markup:
    names = [name for name, _ in SERIES]
    count = len(chart.keys)
    top = _nice_top(max([max(values) for values in chart.series.values()] + [0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    bar_w = slot * 0.8 / len(names)
    totals = ", ".join(f"{chart.total(name)} {label}" for name, label in SERIES)
    out = [f'<svg class="chart" id="{escape(css_id)}" viewBox="0 0 {WIDTH} {HEIGHT}"'
           f' role="img" aria-labelledby="{escape(css_id)}-title"'
           f' data-unit="{escape(chart.unit)}">',
           f'<title id="{escape(css_id)}-title">{escape(chart.title)}: {escape(totals)}</title>']
    steps = 4 if str(top).startswith("2") else 5  # whole numbers at every line
    ticks = [(TOP + plot_h - plot_h * step / steps, str(top * step // steps))
             for step in range(steps + 1)]
    out += _grid(WIDTH, ticks)
    for index, key in enumerate(chart.keys):
        x0 = LEFT + slot * index + slot * 0.1
        for offset, name in enumerate(names):
            value = chart.series[name][index]
            height = plot_h * value / top
            x = x0 + bar_w * offset
            y = TOP + plot_h - height
            tip = f"{chart.names[index]}: {value} {name}"
            out.append(
                f'<rect class="bar {name}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}"'
                f' height="{height:.1f}" data-series="{name}" data-bucket="{escape(key)}"'
                f' data-value="{value}"><title>{escape(tip)}</title></rect>')
        label = chart.labels[index]
        if label:
            out.append(f'<text class="axis" x="{LEFT + slot * (index + 0.5):.1f}"'
                       f' y="{HEIGHT - 6}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}"'
               f' y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    out.append("</svg>")
    return Markup("\n".join(out))


def line(points: Sequence[Tuple[datetime, Optional[float]]], start: datetime, end: datetime,
         *, low: float, high: float, unit: str, css_id: str, title: str,
         labels: Sequence[Tuple[datetime, str]] = (), width: int = 2 * WIDTH) -> Markup:
    """A line through ``points`` (a None value breaks it) between ``start`` and ``end``,
    values clipped to [low, high]; twice as wide as a bar chart (it spans the page)."""
    plot_w, plot_h = width - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max((end - start).total_seconds(), 1.0)

    def x_of(when: datetime) -> float:
        return LEFT + plot_w * min(max((when - start).total_seconds() / span, 0.0), 1.0)

    def y_of(value: float) -> float:
        clipped = min(max(value, low), high)
        return TOP + plot_h - plot_h * (clipped - low) / (high - low)

    out = [f'<svg class="chart wide" id="{escape(css_id)}" viewBox="0 0 {width} {HEIGHT}"'
           f' role="img" aria-labelledby="{escape(css_id)}-title">',
           f'<title id="{escape(css_id)}-title">{escape(title)}</title>']
    ticks = [(y_of(low + (high - low) * step / 4), f"{low + (high - low) * step / 4:g}")
             for step in range(5)]
    out += _grid(width, ticks)
    segment: List[str] = []
    segments: List[List[str]] = [segment]
    for when, value in points:
        if value is None:
            segment = []
            segments.append(segment)
            continue
        segment.append(f"{x_of(when):.1f},{y_of(value):.1f}")
    for part in segments:
        if len(part) > 1:
            out.append(f'<polyline class="line" points="{" ".join(part)}"/>')
    for when, value in points:
        if value is not None:
            out.append(f'<circle class="point" cx="{x_of(when):.1f}" cy="{y_of(value):.1f}"'
                       f' r="2" data-at="{when:%Y-%m-%dT%H:%M:%S}" data-value="{value:g}">'
                       f'<title>{when:%Y-%m-%d %H:%M}: {value:g} {escape(unit)}</title></circle>')
    for when, label in labels:
        out.append(f'<text class="axis" x="{x_of(when):.1f}" y="{HEIGHT - 6}"'
                   f' text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line class="baseline" x1="{LEFT}" x2="{width - RIGHT}"'
               f' y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    out.append("</svg>")
    return Markup("\n".join(out))
