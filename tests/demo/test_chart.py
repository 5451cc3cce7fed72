from __future__ import annotations

import xml.etree.ElementTree as ET

from resilient.demo.chart import Timeline, render_svg


def test_render_svg_is_well_formed_and_shows_each_series() -> None:
    timeline = Timeline(
        duration=4.0,
        phases=[("healthy", True), ("failing", False), ("failing", False), ("ok", True)],
        breaker_states=["closed", "open", "half_open", "closed"],
        protected_error_rate=[0.0, 0.1, 0.0, 0.0],
        protected_fallback_rate=[0.0, 0.9, 0.5, 0.0],
        unprotected_error_rate=[0.0, 1.0, 1.0, 0.0],
    )
    svg = render_svg(timeline, "demo <test>")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    polylines = root.findall(f"{ns}polyline")
    assert len(polylines) == 3
    titles = [t.text for t in root.iter(f"{ns}title")]
    assert titles.count("open") == 1
    assert titles.count("half_open") == 1
    assert "failing" in titles
    assert "demo &lt;test&gt;" in svg
