"""mypy --strict over tests/typing/cases: decorated callables keep their types."""

from __future__ import annotations

from pathlib import Path

import pytest

CASES = Path(__file__).resolve().parent / "typing" / "cases"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES.glob("*.py")), ids=lambda p: p.name)
def test_types_are_kept(case: Path) -> None:
    from mypy import api

    stdout, stderr, status = api.run(["--strict", "--no-error-summary", str(case)])
    assert status == 0, stdout + stderr
