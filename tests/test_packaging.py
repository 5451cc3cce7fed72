"""The distribution: its name and metadata, the install hints the package
prints, and a project that stands on its own."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import resilient

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _text_files() -> list[Path]:
    found = [ROOT / name for name in ("README.md", "CHANGELOG.md", "pyproject.toml", "tox.ini")]
    for folder in ("resilient", "tests", "docs", "benchmarks", ".ci"):
        found += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in {".py", ".md", ".toml", ".ini", ".yml", ""}
        ]
    return [p for p in found if p.exists() and "__pycache__" not in p.parts]


def test_the_distribution_is_resilient_kit_with_one_version() -> None:
    assert PROJECT["name"] == "resilient-kit"
    assert "version" not in PROJECT
    assert PROJECT["dynamic"] == ["version"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "resilient.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", resilient.__version__)


def test_metadata() -> None:
    assert PROJECT["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "Framework :: Pytest" in PROJECT["classifiers"]


def test_no_project_url_is_guessed() -> None:
    # The metadata links only to the repository's own addresses. None is
    # published yet, so there are none: a made-up one would send users to
    # someone else's page. Add [project.urls] with the real repository.
    assert "urls" not in PROJECT


def test_runtime_dependencies_are_wrapt_alone_with_a_plain_lower_bound() -> None:
    # typing-extensions is not imported: Unpack, TypedDict and assert_type
    # come from typing on 3.11.
    assert PROJECT["dependencies"] == ["wrapt>=1.14"]
    for path in (ROOT / "resilient").rglob("*.py"):
        assert "typing_extensions" not in path.read_text(), path


def test_no_file_points_outside_the_project() -> None:
    # Spelled in pieces, so this file does not match itself.
    outside = re.compile("DESIGN" + r"\.md|\.\./" + "shared|/work/" + "shared")
    offenders = [str(p.relative_to(ROOT)) for p in _text_files() if outside.search(p.read_text())]
    assert offenders == []


def test_every_install_hint_names_the_distribution() -> None:
    wrong = re.compile(r"pip install[^\n]*'resilient\[")
    offenders = [str(p.relative_to(ROOT)) for p in _text_files() if wrong.search(p.read_text())]
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("resilient.redis", "redis", "redis"),
        ("resilient.metrics.prometheus", "prometheus_client", "prometheus"),
        ("resilient.metrics.otel", "opentelemetry", "otel"),
        ("resilient.http", "httpx", "http"),
    ],
)
def test_a_missing_extra_says_how_to_install_it(module: str, blocked: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "import importlib\n"
        "try:\n"
        f"    m = importlib.import_module({module!r})\n"
        "    getattr(m, 'instrument', None) and m.instrument()\n"
        "    getattr(m, 'client', None)\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert f"pip install 'resilient-kit[{extra}]'" in out.stdout
    assert extra in PROJECT["optional-dependencies"]


def test_the_sdist_carries_what_the_suite_needs() -> None:
    manifest = (ROOT / "MANIFEST.in").read_text()
    for line in ("graft tests", "graft docs", "graft benchmarks"):
        assert line in manifest
    for name in ("CHANGELOG.md", "tox.ini", "LICENSE", "mkdocs.yml"):
        assert name in manifest


def test_the_readme_quick_start_installs_the_distribution() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python -m pip install 'resilient-kit[cli]' && python -m resilient demo" in readme
    command = "python -m pip install -e '.[test]' -c constraints.txt && python -m pytest"
    assert command in readme
    # CI runs the README's test command as it is, as its last step.
    ci = (ROOT / ".ci" / "run").read_text().rstrip().splitlines()
    assert ci[-1] == command


def test_the_readme_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "index.md")
    assert [p for p in pages if f"(docs/{p})" not in readme] == []
    index = (ROOT / "docs" / "index.md").read_text()
    assert [p for p in pages if f"({p})" not in index] == []


# -- what README.md and docs/index.md say the package has -----------------------------

# Extras for working on the project, not for users.
DEVELOPMENT_EXTRAS = {"test", "docs", "bench", "dev"}
FRONT_PAGES = ["README.md", "docs/index.md"]


def _table(text: str, first_header: str) -> list[list[str]]:
    """The rows of the Markdown table whose first header is ``first_header``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"no table headed {first_header!r}")


def _code_names(rows: list[list[str]]) -> list[str]:
    names = [re.fullmatch(r"`([^`]+)`", row[0]) for row in rows]
    assert all(names), rows
    return [m[1] for m in names if m]


def _demo_scenario() -> argparse.Action:
    from resilient.__main__ import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    demo = commands.choices["demo"]
    return next(a for a in demo._actions if a.dest == "scenario")


def test_the_development_extras_exist() -> None:
    # So that the list above names real extras, and the rest are the users'.
    assert set(PROJECT["optional-dependencies"]) >= DEVELOPMENT_EXTRAS


@pytest.mark.parametrize("page", FRONT_PAGES)
def test_the_front_pages_list_exactly_the_user_extras(page: str) -> None:
    extras = {
        name: deps
        for name, deps in PROJECT["optional-dependencies"].items()
        if name not in DEVELOPMENT_EXTRAS
    }
    rows = _table((ROOT / page).read_text(), "extra")
    assert sorted(_code_names(rows)) == sorted(extras)
    assert len(rows) == len(extras)
    for row in rows:
        name = row[0].strip("`")
        wanted = [re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0] for dep in extras[name]]
        assert row[1] == ", ".join(wanted), row


@pytest.mark.parametrize("page", FRONT_PAGES)
def test_the_front_pages_list_exactly_the_demo_scenarios(page: str) -> None:
    scenario = _demo_scenario()
    choices = list(scenario.choices or ())
    assert len(choices) == 7
    text = (ROOT / page).read_text()
    # The option as --help spells it, and one row per scenario.
    assert re.findall(r"--scenario \{[^}]*\}", text) == [f"--scenario {{{','.join(choices)}}}"]
    rows = _table(text, "scenario")
    assert sorted(_code_names(rows)) == sorted(choices)
    assert len(rows) == len(choices)
    (default,) = [row for row in rows if "the default" in row[1]]
    assert default[0] == f"`{scenario.default}`"


def _figures(text: str) -> list[tuple[str, str]]:
    return re.findall(r"(\d[\d,]*(?:\.\d+)?)\s?(x|ns|µs|B)\b", text)


def _measured() -> set[tuple[str, str]]:
    """Every figure of docs/performance.md's results (between its markers)."""
    text = (ROOT / "docs" / "performance.md").read_text()
    results = text.split("<!-- benchmarks: begin -->")[1].split("<!-- benchmarks: end -->")[0]
    found: set[tuple[str, str]] = set()
    header: list[str] = []
    for line in results.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        for column, cell in zip(header, cells, strict=False):
            found.update(_figures(cell))
            if re.fullmatch(r"[\d,]+(\.\d+)?", cell):
                if column.startswith("ns"):
                    found.add((cell, "ns"))
                elif column.startswith("bytes"):
                    found.add((cell, "B"))
    return found


def test_the_readme_quotes_its_performance_figures_from_docs_performance() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Performance\n")[1].split("\n## ")[0]
    quoted = _figures(section)
    assert len(quoted) >= 10
    measured = _measured()
    assert len(measured) >= 50  # the parser reads the tables (any run of them)
    assert [figure for figure in quoted if figure not in measured] == []
    # The rest of the README quotes none.
    assert _figures(readme.replace(section, "")) == []
