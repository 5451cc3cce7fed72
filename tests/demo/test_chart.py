from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from resilient._demo.chart import Timeline, render_svg

NS = "{http://www.w3.org/2000/svg}"


def _timeline(**changes: object) -> Timeline:
    fields: dict[str, object] = {
        "duration": 8.0,
        "phases": [
            ("healthy", 0.0, True),
            ("failing", 2.0, False),
            ("slow", 4.0, False),
            ("recovering", 6.0, True),
        ],
        "breaker": [
            (0.0, "closed"),
            (2.2, "open"),
            (3.0, "half_open"),
            (3.001, "open"),
            (6.5, "half_open"),
            (6.6, "closed"),
        ],
        "protected_error_rate": [0.0, 0.0, 0.0, 0.0],
        "protected_fallback_rate": [0.0, 1.0, 1.0, 0.0],
        "unprotected_error_rate": [0.0, 1.0, 0.0, 0.0],
        "protected_latency": [0.005, 0.002, 0.2, 0.005],
        "unprotected_latency": [0.005, 0.004, 0.5, 0.005],
    }
    fields.update(changes)
    return Timeline(**fields)  # type: ignore[arg-type]


def _rects(root: ET.Element) -> dict[str, list[ET.Element]]:
    found: dict[str, list[ET.Element]] = {}
    for rect in root.iter(f"{NS}rect"):
        title = rect.find(f"{NS}title")
        if title is not None and title.text:
            found.setdefault(title.text, []).append(rect)
    return found


def test_the_chart_is_well_formed_and_escapes_its_title() -> None:
    svg = render_svg(_timeline(), "demo <test>")
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert "demo &lt;test&gt;" in svg


def test_each_phase_has_its_own_colour_and_a_boundary_through_the_chart() -> None:
    root = ET.fromstring(render_svg(_timeline(), "t"))
    rects = _rects(root)
    colours = [rects[name][0].get("fill") for name in ("healthy", "failing", "slow", "recovering")]
    assert len(set(colours)) == 4
    boundaries = [line for line in root.iter(f"{NS}line") if line.get("stroke-dasharray") == "3,3"]
    assert len(boundaries) == 3  # one per change of phase
    # Each runs from the phase band down to the time axis.
    assert len({(b.get("y1"), b.get("y2")) for b in boundaries}) == 1
    y1, y2 = float(boundaries[0].get("y1", 0)), float(boundaries[0].get("y2", 0))
    assert y2 - y1 > 300


def test_the_time_axis_has_ticks_in_seconds() -> None:
    root = ET.fromstring(render_svg(_timeline(), "t"))
    labels = [t.text for t in root.iter(f"{NS}text")]
    for second in ("0", "1", "2", "4", "8"):
        assert second in labels
    assert "seconds since the start" in labels


def test_latency_is_plotted_for_both_arms() -> None:
    root = ET.fromstring(render_svg(_timeline(), "t"))
    labels = [t.text for t in root.iter(f"{NS}text")]
    assert "p99 latency (ms)" in labels
    assert "500" in labels or "600" in labels  # the scale covers the slowest bin (500 ms)
    # Two rate lines + the fallback line + two latency lines.
    assert len(root.findall(f"{NS}polyline")) == 5


def test_a_line_at_zero_is_drawn_above_the_frame_not_on_it() -> None:
    root = ET.fromstring(render_svg(_timeline(), "t"))
    frame = next(r for r in root.iter(f"{NS}rect") if r.get("fill") == "none" and r.get("stroke"))
    bottom = float(frame.get("y", 0)) + float(frame.get("height", 0))
    protected = root.findall(f"{NS}polyline")[2]  # drawn last of the rates: on top
    ys = {float(p.split(",")[1]) for p in (protected.get("points") or "").split()}
    assert len(ys) == 1
    assert bottom - ys.pop() >= 5


def test_a_brief_half_open_is_visible_and_the_legend_names_only_states_shown() -> None:
    svg = render_svg(_timeline(), "t")
    rects = _rects(ET.fromstring(svg))
    assert any(float(r.get("width", 0)) >= 3 for r in rects["half_open"])
    assert "forced_open" not in rects
    legend = svg[svg.index(">breaker:<") :]
    assert re.findall(r">(closed|open|half_open|forced_open|forced_closed)<", legend) == [
        "closed",
        "open",
        "half_open",
    ]


def test_the_legend_gives_each_series_its_peak() -> None:
    svg = render_svg(_timeline(), "t")
    assert "unprotected (failed: peak 100%)" in svg
    assert "with_resilience (failed: peak 0%)" in svg
    assert "with_resilience, fallback (peak 100%)" in svg
