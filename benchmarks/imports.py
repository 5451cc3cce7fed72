"""Import time: what a fresh process pays for ``import resilient``, for its
first real use, and for the peers' imports, measured side by side.

Each statement runs in a process of its own, timed with ``perf_counter``
around the statement alone (interpreter start-up is left out). The process
starts with ``-S`` and puts the checkout and the site-packages directories
on ``sys.path`` itself: site's ``.pth`` files would load an editable
install's import hook, which brings ``pathlib``, ``re`` and more at start-up
and so hides their cost from the statement that would pay it in a regular
install. One warm-up run of each statement writes its ``.pyc`` files
(``PYTHONDONTWRITEBYTECODE`` is removed from the child's environment); the
timed runs then interleave the statements, so whatever else the machine
does falls on all of them alike, and the fastest run of each (the least
disturbed) is its time.
"""

from __future__ import annotations

import os
import site
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .cases import installed

__all__ = ["BASELINE", "NAME", "STATEMENTS", "ImportTime", "Statement", "measure", "selected"]

ROOT = Path(__file__).resolve().parent.parent
NAME = "import time"  # what --only TEXT is matched against
RUNS = 30


@dataclass(frozen=True)
class Statement:
    code: str
    peer: str | None = None  # module that must be importable
    note: str = ""
    setup: str = ""  # run before the timer starts

    @property
    def key(self) -> str:
        return f"{self.setup}; {self.code}" if self.setup else self.code


STATEMENTS = [
    Statement("import asyncio", note="for reference: the stdlib's asyncio alone"),
    Statement("import resilient"),
    Statement("from resilient import with_resilience", note="the first real use"),
    Statement(
        "from resilient import with_resilience",
        note="asyncio imported untimed before it, as in an async program",
        setup="import asyncio",
    ),
    Statement(
        "import resilient._pytest_plugin",
        "pytest",
        note="what the pytest11 entry point loads into every pytest run",
        setup="import pytest",
    ),
    Statement(
        "import resilient.testing",
        "pytest",
        note="the fake clock and the rest, which `-p resilient.testing` loads",
        setup="import pytest",
    ),
    Statement("import stamina", "stamina"),
    Statement("import tenacity", "tenacity"),
    Statement("import pybreaker", "pybreaker", note="it imports redis when redis is installed"),
    Statement(
        "import pybreaker",
        "pybreaker",
        note="redis hidden from it, as where redis is not installed",
        setup="sys.modules['redis'] = None",
    ),
]
BASELINE = "import stamina"  # the ratios divide by its time


@dataclass(frozen=True)
class ImportTime:
    statement: Statement
    best: float  # seconds
    median: float
    modules: int  # how many modules the statement loaded
    runs: int
    warmups: int


def selected(only: str | None) -> bool:
    """Whether ``--only TEXT`` (``None``: every case) asks for the import times."""
    return only is None or only in NAME


def _child(code: str, setup: str = "") -> str:
    # -S: site is imported (os and the rest of a regular start-up) but no
    # .pth file is read; the path site would build is put in place by hand.
    paths = [str(ROOT), *site.getsitepackages()]
    return (
        "import site, sys, time\n"
        f"sys.path[1:1] = {paths!r}\n"
        f"{setup}\n"
        "before = len(sys.modules)\n"
        "start = time.perf_counter()\n"
        f"{code}\n"
        "elapsed = time.perf_counter() - start\n"
        "print(elapsed, len(sys.modules) - before)\n"
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


def run_once(code: str, setup: str = "") -> tuple[float, int]:
    """Seconds ``code`` takes in a fresh process (once ``setup`` has run),
    and the modules it loads."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", _child(code, setup)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{code!r} failed in a fresh process:\n{done.stderr}")
    seconds, modules = done.stdout.split()
    return float(seconds), int(modules)


def available() -> tuple[list[Statement], dict[str, str]]:
    """The statements that can run here, and why the others cannot."""
    found, skipped = [], {}
    for statement in STATEMENTS:
        if statement.peer is not None and not installed(statement.peer):
            skipped[statement.code] = f"{statement.peer} is not installed"
        else:
            found.append(statement)
    return found, skipped


def measure(runs: int = RUNS, warmups: int = 1) -> tuple[list[ImportTime], dict[str, str]]:
    """Every available statement timed ``runs`` times, after ``warmups``
    untimed runs; and why the others were not."""
    statements, skipped = available()
    for _ in range(warmups):
        for s in statements:
            run_once(s.code, s.setup)
    seen: dict[str, list[float]] = {s.key: [] for s in statements}
    modules: dict[str, int] = {}
    for _ in range(runs):
        for s in statements:
            seconds, modules[s.key] = run_once(s.code, s.setup)
            seen[s.key].append(seconds)
    return [
        ImportTime(
            s, min(seen[s.key]), statistics.median(seen[s.key]), modules[s.key], runs, warmups
        )
        for s in statements
    ], skipped
