"""Every ```python block in README.md and docs/*.md runs, each in a fresh namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[pytest.ParameterSet]:
    params = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            rel = path.relative_to(ROOT)
            params.append(pytest.param(path, line, match.group(1), id=f"{rel}:{line}"))
    return params


@pytest.mark.parametrize(("path", "line", "code"), _blocks())
def test_doc_example_runs(path: Path, line: int, code: str) -> None:
    # Pad so tracebacks point at the line in the markdown file.
    source = "\n" * (line - 1) + code
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    exec(compile(source, str(path), "exec"), namespace)
