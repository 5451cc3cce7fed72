"""mypy over ``tests/typing/cases``: decorated callables keep their exact types.

Each case file states what mypy must say about a line in a trailing comment:
``# N: <note>`` (a ``reveal_type``) or ``# E: <error>  [code]``; mypy must say
exactly that, and nothing else. A case file may instead use ``assert_type``
and ``# type: ignore[code]`` (under --strict an unneeded ignore is an error):
then mypy must say nothing about it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = Path("tests", "typing", "cases")
_EXPECTED = re.compile(r"#\s*([NE]):\s*(.+?)\s*$")
_REPORTED = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?P<kind>note|error): (?P<msg>.*)$")
_KIND = {"N": "note", "E": "error"}

Said = dict[int, list[str]]


def _expected(path: Path) -> Said:
    said: Said = defaultdict(list)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECTED.search(line)
        if match:
            said[number].append(f"{_KIND[match[1]]}: {match[2]}")
    return dict(said)


@pytest.fixture(scope="session")
def mypy_says() -> dict[str, Said]:
    """What mypy --strict reports, by case file name and line."""
    api = pytest.importorskip("mypy.api")
    with pytest.MonkeyPatch.context() as patch:
        # From the checkout's root, so `import resilient` is this checkout.
        patch.chdir(ROOT)
        out, err, _status = api.run(
            [
                "--config-file",
                "pyproject.toml",
                "--strict",
                "--no-error-summary",
                "--hide-error-context",
                "--no-pretty",
                "--cache-dir",
                "/dev/null",
                str(CASES),
            ]
        )
    assert not err, err
    said: dict[str, Said] = defaultdict(lambda: defaultdict(list))
    for line in out.splitlines():
        match = _REPORTED.match(line)
        assert match, f"unexpected mypy output: {line!r}"
        said[Path(match["path"]).name][int(match["line"])].append(
            f"{match['kind']}: {match['msg']}"
        )
    return {name: dict(lines) for name, lines in said.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted((ROOT / CASES).glob("*.py")), ids=lambda p: p.name)
def test_mypy_says_exactly_what_the_case_expects(case: Path, mypy_says: dict[str, Said]) -> None:
    text = case.read_text()
    assert "reveal_type(" in text or "assert_type(" in text, f"{case.name} checks nothing"
    assert mypy_says.get(case.name, {}) == _expected(case)
