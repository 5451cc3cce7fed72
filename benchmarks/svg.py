"""A horizontal bar chart as a standalone SVG string, so the benchmarks need
no plotting library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["Bar", "bar_chart"]

Bar = tuple[str, float, bool]  # label, value, highlighted

_ROW = 18
_GAP = 10
_TITLE = 22
_LABEL_WIDTH = 250
_PLOT_WIDTH = 440
_VALUE_WIDTH = 90
_COLOR = "#9aa5b1"
_HIGHLIGHT = "#d9480f"
_FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        first = math.floor(math.log10(low))
        last = math.ceil(math.log10(high))
        return [10.0**e for e in range(first, last + 1)]
    step = 10 ** math.floor(math.log10(high))
    if high / step < 3:
        step /= 2
    return [i * step for i in range(int(high / step) + 2)]


def bar_chart(
    title: str,
    groups: Sequence[tuple[str, Sequence[Bar]]],
    *,
    unit: str = "ns",
    log: bool = False,
    fmt: str = "{:,.0f}",
) -> str:
    """Bars grouped under headings; a log scale when values span decades."""
    values = [v for _, bars in groups for _, v, _ in bars if v > 0]
    if not values:
        values = [1.0]
    ticks = _ticks(min(values), max(values), log)
    low, high = (ticks[0], ticks[-1]) if log else (0.0, ticks[-1])

    def x(value: float) -> float:
        if log:
            span = (math.log10(high) - math.log10(low)) or 1.0  # one value: no span
            frac = (math.log10(max(value, low)) - math.log10(low)) / span
        else:
            frac = value / high
        return _LABEL_WIDTH + frac * _PLOT_WIDTH

    rows = sum(len(bars) for _, bars in groups)
    height = 40 + len(groups) * (_TITLE + _GAP) + rows * _ROW + 30
    width = _LABEL_WIDTH + _PLOT_WIDTH + _VALUE_WIDTH
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {_FONT}>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    y = 40.0
    plot_top = y
    for heading, bars in groups:
        y += _TITLE
        out.append(f'<text x="10" y="{y - 6:.0f}" font-weight="bold">{escape(heading)}</text>')
        for label, value, highlight in bars:
            color = _HIGHLIGHT if highlight else _COLOR
            end = x(value)
            out.append(
                f'<text x="{_LABEL_WIDTH - 8}" y="{y + 13:.0f}" text-anchor="end">'
                f"{escape(label)}</text>"
            )
            width = max(end - _LABEL_WIDTH, 1)
            out.append(
                f'<rect x="{_LABEL_WIDTH}" y="{y + 3:.0f}" width="{width:.1f}" '
                f'height="{_ROW - 5}" fill="{color}"/>'
            )
            out.append(f'<text x="{end + 4:.1f}" y="{y + 13:.0f}">{fmt.format(value)}</text>')
            y += _ROW
        y += _GAP
    for tick in ticks:
        tx = x(tick)
        out.append(
            f'<line x1="{tx:.1f}" y1="{plot_top:.0f}" x2="{tx:.1f}" y2="{y:.0f}" '
            'stroke="#ccc" stroke-width="0.5"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{y + 14:.0f}" text-anchor="middle" fill="#555">'
            f"{fmt.format(tick)}</text>"
        )
    scale = "log scale" if log else "linear scale"
    out.append(
        f'<text x="{_LABEL_WIDTH + _PLOT_WIDTH / 2:.0f}" y="{y + 28:.0f}" text-anchor="middle" '
        f'fill="#555">{escape(unit)} ({scale})</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
