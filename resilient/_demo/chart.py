"""A self-contained SVG timeline of one demo run.

From the top: the dependency's phases (one colour each, with boundaries
drawn through the whole chart), the breaker's state (from its exact
transitions, so a brief half-open shows), the share of calls that failed or
were answered by the fallback, and the p99 latency of each arm; a time axis
with ticks in seconds under both plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Timeline", "render_svg"]

_STATE_COLOURS = {
    "closed": "#2e9d4f",
    "half_open": "#f0ad4e",
    "open": "#d43f3a",
    "forced_open": "#8b0000",
    "forced_closed": "#1f6f3a",
}
_PHASE_COLOURS = {
    "healthy": "#dff0d8",
    "recovering": "#d0e9f5",
    "failing": "#f2c6c4",
    "flaky": "#f7dcc0",
    "slow": "#efe3a8",
}
_UNHEALTHY = "#f2dede"
_HEALTHY = "#dff0d8"
_UNPROTECTED = "#d43f3a"
_PROTECTED = "#1f5fa8"
_FALLBACK = "#7aa6d6"

_WIDTH, _LEFT, _RIGHT = 900, 70, 20


@dataclass(frozen=True, slots=True)
class Timeline:
    """One run: its phases and breaker states in seconds, and per-bin series
    (equal bins of time) of each arm."""

    duration: float
    phases: Sequence[tuple[str, float, bool]]  # (name, start s, healthy), in order
    breaker: Sequence[tuple[float, str]]  # (s, state): each holds until the next
    protected_error_rate: Sequence[float]  # failures seen by users, 0..1
    protected_fallback_rate: Sequence[float]
    unprotected_error_rate: Sequence[float]
    protected_latency: Sequence[float]  # p99 seconds per bin (0.0: no call)
    unprotected_latency: Sequence[float]


def _ticks(limit: float, count: int = 8) -> list[float]:
    """Round steps (1, 2 or 5 times a power of 10) from 0 to ``limit``."""
    if limit <= 0:
        return [0.0]
    raw = limit / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(limit / step + 1e-9) + 1)]


def _covering(peak: float) -> list[float]:
    """Round ticks from 0 up to at least ``peak`` (and above 0)."""
    marks = _ticks(max(peak, 1.0), 4)
    if marks[-1] < peak or len(marks) == 1:
        marks.append(marks[-1] + (marks[1] if len(marks) > 1 else 1.0))
    return marks


def _label(value: float) -> str:
    return f"{value:g}"


def render_svg(timeline: Timeline, title: str) -> str:
    """The chart of ``timeline`` as an SVG document headed ``title``."""
    plot_w = _WIDTH - _LEFT - _RIGHT
    duration = timeline.duration if timeline.duration > 0 else 1.0
    bins = max(
        1,
        len(timeline.protected_error_rate),
        len(timeline.unprotected_error_rate),
        len(timeline.protected_latency),
    )

    def x_at(seconds: float) -> float:
        return _LEFT + plot_w * max(0.0, min(1.0, seconds / duration))

    def x_bin(i: float) -> float:
        return _LEFT + plot_w * (i / bins)

    band_h = 24
    phase_y = 40
    state_y = phase_y + band_h + 6
    rates_top = state_y + band_h + 30
    rates_h = 170
    latency_top = rates_top + rates_h + 34
    latency_h = 130
    axis_y = latency_top + latency_h
    legend_y = axis_y + 44
    height = legend_y + 40

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{_WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{_LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]

    # The dependency's phases, and their boundaries through the whole chart.
    parts.append(f'<text x="4" y="{phase_y + 16}">phase</text>')
    spans = [
        (name, start, timeline.phases[k + 1][1] if k + 1 < len(timeline.phases) else duration)
        for k, (name, start, _) in enumerate(timeline.phases)
    ]
    for (name, start, end), (_, _, healthy) in zip(spans, timeline.phases, strict=True):
        colour = _PHASE_COLOURS.get(name, _HEALTHY if healthy else _UNHEALTHY)
        left, right = x_at(start), x_at(end)
        parts.append(
            f'<rect x="{left:.1f}" y="{phase_y}" width="{max(0.0, right - left):.1f}" '
            f'height="{band_h}" fill="{colour}"><title>{escape(name)}</title></rect>'
        )
        parts.append(f'<text x="{left + 4:.1f}" y="{phase_y + 16}">{escape(name)}</text>')
    for _, start, _ in timeline.phases[1:]:
        parts.append(
            f'<line x1="{x_at(start):.1f}" y1="{phase_y}" x2="{x_at(start):.1f}" y2="{axis_y}" '
            'stroke="#555555" stroke-width="1" stroke-dasharray="3,3"/>'
        )

    # The breaker's state, span by span. Spans overlap by half a pixel (no
    # seams); a brief one (a half-open probe) is drawn again on top, 3 px wide.
    parts.append(f'<text x="4" y="{state_y + 16}">breaker</text>')
    changes = list(timeline.breaker) or [(0.0, "closed")]
    seen: list[str] = []
    brief: list[str] = []
    for k, (start, state) in enumerate(changes):
        end = changes[k + 1][0] if k + 1 < len(changes) else duration
        left, right = x_at(start), x_at(end)
        colour = _STATE_COLOURS.get(state, "#999999")
        rect = (
            f'<rect x="{left:.1f}" y="{state_y}" width="{{:.1f}}" height="{band_h}" '
            f'fill="{colour}"><title>{escape(state)}</title></rect>'
        )
        parts.append(rect.format(right - left + 0.5))
        if right - left < 3:
            brief.append(rect.format(3.0))
        if state not in seen:
            seen.append(state)
    parts.extend(brief)

    def frame(top: int, h: int, caption: str) -> None:
        parts.append(
            f'<rect x="{_LEFT}" y="{top}" width="{plot_w}" height="{h}" '
            'fill="none" stroke="#bbbbbb"/>'
        )
        parts.append(f'<text x="4" y="{top - 8}" font-weight="bold">{escape(caption)}</text>')

    def polyline(points: list[str], colour: str, extra: str = "") -> None:
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}"{extra}/>'
        )

    # Failures and fallbacks: 0 sits a little above the frame's bottom, so a
    # line that stays at 0 % is seen, not hidden on the frame.
    frame(rates_top, rates_h, "share of calls: failed (solid), answered by the fallback (dashed)")
    pad = 8
    span_h = rates_h - 2 * pad

    def y_rate(v: float) -> float:
        return rates_top + pad + span_h * (1 - max(0.0, min(1.0, v)))

    for frac in (0.0, 0.5, 1.0):
        y = y_rate(frac)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="#eeeeee"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{int(frac * 100)}%</text>'
        )

    def rate_points(values: Sequence[float]) -> list[str]:
        return [f"{x_bin(i + 0.5):.1f},{y_rate(v):.1f}" for i, v in enumerate(values)]

    polyline(rate_points(timeline.unprotected_error_rate), _UNPROTECTED, ' stroke-width="2"')
    polyline(
        rate_points(timeline.protected_fallback_rate),
        _FALLBACK,
        ' stroke-width="2" stroke-dasharray="5,4"',
    )
    polyline(rate_points(timeline.protected_error_rate), _PROTECTED, ' stroke-width="2.5"')

    # p99 latency per bin, each arm.
    frame(latency_top, latency_h, "p99 latency (ms)")
    marks = _covering(max([*timeline.unprotected_latency, *timeline.protected_latency]) * 1000)
    top_ms = marks[-1]

    def y_ms(ms: float) -> float:
        return latency_top + pad + (latency_h - 2 * pad) * (1 - min(1.0, ms / top_ms))

    for ms in marks:
        y = y_ms(ms)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="#eeeeee"/>'
        )
        parts.append(f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{ms:g}</text>')

    def latency_points(values: Sequence[float]) -> list[str]:
        return [f"{x_bin(i + 0.5):.1f},{y_ms(v * 1000):.1f}" for i, v in enumerate(values) if v > 0]

    polyline(latency_points(timeline.unprotected_latency), _UNPROTECTED, ' stroke-width="2"')
    polyline(latency_points(timeline.protected_latency), _PROTECTED, ' stroke-width="2"')

    # The time axis.
    for t in _ticks(duration, 10):
        x = x_at(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}" stroke="#333333"/>'
        )
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 18}" text-anchor="middle">{_label(t)}</text>')
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{axis_y + 34}" text-anchor="middle">'
        "seconds since the start</text>"
    )

    # Legend: the series (with their peaks), then the breaker states shown.
    def peak_of(values: Sequence[float]) -> str:
        return f"{max(values, default=0.0):.0%}"

    entries = [
        (
            _UNPROTECTED,
            "",
            f"unprotected (failed: peak {peak_of(timeline.unprotected_error_rate)})",
        ),
        (
            _PROTECTED,
            "",
            f"with_resilience (failed: peak {peak_of(timeline.protected_error_rate)})",
        ),
        (
            _FALLBACK,
            ' stroke-dasharray="5,4"',
            f"with_resilience, fallback (peak {peak_of(timeline.protected_fallback_rate)})",
        ),
    ]
    for j, (colour, dash, text) in enumerate(entries):
        x = _LEFT + j * 270
        parts.append(
            f'<line x1="{x}" y1="{legend_y - 4}" x2="{x + 18}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="3"{dash}/>'
        )
        parts.append(f'<text x="{x + 24}" y="{legend_y}" fill="#222222">{escape(text)}</text>')
    parts.append(f'<text x="{_LEFT}" y="{legend_y + 22}">breaker:</text>')
    for j, state in enumerate(seen):
        x = _LEFT + 60 + j * 110
        parts.append(
            f'<rect x="{x}" y="{legend_y + 12}" width="12" height="12" '
            f'fill="{_STATE_COLOURS.get(state, "#999999")}"/>'
            f'<text x="{x + 16}" y="{legend_y + 22}">{escape(state)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
