"""mypy and pyright over ``tests/typing/cases``: decorated callables keep
their exact types, and settings are typed.

Each case file states what mypy must say about a line in a trailing comment:
``# N: <note>`` (a ``reveal_type``) or ``# E: <error>  [code]``; mypy must say
exactly that, and nothing else. A case file may instead use ``assert_type``
and ``# type: ignore[code]`` (under --strict an unneeded ignore is an error):
then mypy must say nothing about it.

pyright (configured in pyproject.toml to disregard ``# type: ignore``) must
report an error on exactly the lines mypy must flag (``# E:`` or an
ignore), and on a line marked ``# P: <text>`` an error containing that text.
A line where pyright rightly differs says so with ``# pyright: ignore[rule]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = Path("tests", "typing", "cases")
_EXPECTED = re.compile(r"#\s*([NE]):\s*(.+?)\s*$")
_PYRIGHT = re.compile(r"#\s*P:\s*(.+?)\s*(?=#|$)")
_FLAGGED = re.compile(r"#\s*E:|#\s*type:\s*ignore")
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


def _pyright_expects(path: Path) -> tuple[set[int], dict[int, str]]:
    """The lines pyright must flag, and the text its error must contain."""
    flagged: set[int] = set()
    texts: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if _FLAGGED.search(line):
            flagged.add(number)
        match = _PYRIGHT.search(line)
        if match:
            flagged.add(number)
            texts[number] = match[1]
    return flagged, texts


@pytest.fixture(scope="session")
def pyright_says() -> dict[str, dict[int, list[str]]]:
    """pyright's errors, by case file name and line."""
    exe = shutil.which("pyright")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pyright is not installed (it is in the test extra)")
        pytest.skip("pyright is not installed (pip install pyright)")
    run = subprocess.run(
        [exe, "--outputjson", "--project", "pyproject.toml", str(CASES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(run.stdout)
    said: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            line = diagnostic["range"]["start"]["line"] + 1
            said[Path(diagnostic["file"]).name][line].append(diagnostic["message"])
    return {name: dict(lines) for name, lines in said.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted((ROOT / CASES).glob("*.py")), ids=lambda p: p.name)
def test_pyright_flags_exactly_the_lines_mypy_must(
    case: Path, pyright_says: dict[str, dict[int, list[str]]]
) -> None:
    flagged, texts = _pyright_expects(case)
    said = pyright_says.get(case.name, {})
    assert set(said) == flagged, {line: said.get(line) for line in set(said) ^ flagged}
    for line, text in texts.items():
        assert any(text in message for message in said[line]), (line, text, said[line])
