"""A self-contained SVG timeline: dependency phase, breaker state, error rates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Timeline", "render_svg"]

_STATE_COLOURS = {
    "closed": "#2e9d4f",
    "open": "#d43f3a",
    "half_open": "#f0ad4e",
    "forced_open": "#8b0000",
    "forced_closed": "#1f6f3a",
}
_PHASE_COLOURS = {True: "#dff0d8", False: "#f2dede"}


@dataclass(frozen=True, slots=True)
class Timeline:
    """One run cut into equal bins of time."""

    duration: float
    phases: Sequence[tuple[str, bool]]  # (name, healthy) per bin
    breaker_states: Sequence[str]  # the worst state seen in each bin
    protected_error_rate: Sequence[float]  # failures seen by users, 0..1
    protected_fallback_rate: Sequence[float]
    unprotected_error_rate: Sequence[float]


def render_svg(timeline: Timeline, title: str) -> str:
    width, height, left, right, top = 900, 400, 60, 20, 40
    plot_w = width - left - right
    n = max(1, len(timeline.phases))
    step = plot_w / n

    def x(i: float) -> float:
        return left + i * step

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    # Band 1: the dependency's phase.
    band_y, band_h = top, 24
    parts.append(f'<text x="4" y="{band_y + 16}">phase</text>')
    for i, (name, healthy) in enumerate(timeline.phases):
        colour = _PHASE_COLOURS[healthy]
        parts.append(
            f'<rect x="{x(i):.1f}" y="{band_y}" width="{step + 0.5:.1f}" height="{band_h}" '
            f'fill="{colour}"><title>{escape(name)}</title></rect>'
        )
    previous = None
    for i, (name, _) in enumerate(timeline.phases):
        if name != previous:
            parts.append(f'<text x="{x(i) + 3:.1f}" y="{band_y + 16}">{escape(name)}</text>')
            previous = name
    # Band 2: the breaker's state.
    state_y = band_y + band_h + 8
    parts.append(f'<text x="4" y="{state_y + 16}">breaker</text>')
    for i, state in enumerate(timeline.breaker_states):
        colour = _STATE_COLOURS.get(state, "#999999")
        parts.append(
            f'<rect x="{x(i):.1f}" y="{state_y}" width="{step + 0.5:.1f}" height="{band_h}" '
            f'fill="{colour}"><title>{escape(state)}</title></rect>'
        )
    # Plot: error rates.
    plot_top = state_y + band_h + 20
    plot_h = height - plot_top - 62
    parts.append(
        f'<rect x="{left}" y="{plot_top}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#cccccc"/>'
    )
    for frac in (0.0, 0.5, 1.0):
        y = plot_top + plot_h * (1 - frac)
        parts.append(f'<text x="{left - 36}" y="{y + 4:.1f}">{int(frac * 100)}%</text>')
    parts.append(f'<text x="4" y="{plot_top - 6}">share of calls, over time</text>')

    def line(values: Sequence[float], colour: str, label: str, dy: int, dash: str = "") -> None:
        if not values:
            return
        points = " ".join(
            f"{x(i + 0.5):.1f},{plot_top + plot_h * (1 - max(0.0, min(1.0, v))):.1f}"
            for i, v in enumerate(values)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        parts.append(
            f'<text x="{left + 10}" y="{height - 40 + dy}" fill="{colour}">{escape(label)}</text>'
        )

    line(timeline.unprotected_error_rate, "#d43f3a", "unprotected: failed", 0)
    line(timeline.protected_error_rate, "#1f5fa8", "with_resilience: failed", 14)
    dashed = ' stroke-dasharray="5,4"'
    line(timeline.protected_fallback_rate, "#7aa6d6", "with_resilience: fallback", 28, dashed)
    parts.append(
        f'<text x="{width - right - 90}" y="{height - 8}">time: {timeline.duration:g} s</text>'
    )
    legend_x = width - right - 330
    for j, (state, colour) in enumerate(list(_STATE_COLOURS.items())[:3]):
        parts.append(
            f'<rect x="{legend_x + j * 100}" y="{height - 50}" width="10" height="10" '
            f'fill="{colour}"/><text x="{legend_x + j * 100 + 14}" y="{height - 41}">'
            f"{state}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
