"""``python -m resilient --version``: the version, without loading the demo
or the CLI's commands."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import resilient
from resilient.__main__ import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"resilient {resilient.__version__}\n"


def test_the_parser_prints_the_same_version(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert "--version" in parser.format_help()
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"resilient {resilient.__version__}\n"


def test_python_m_resilient_version_loads_neither_demo_nor_cli() -> None:
    code = textwrap.dedent(
        """
        import runpy, sys
        sys.argv = ["resilient", "--version"]
        try:
            runpy.run_module("resilient", run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code
        loaded = [m for m in ("resilient._demo", "resilient.cli", "argparse") if m in sys.modules]
        print(code, loaded)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"resilient {resilient.__version__}", "0 []"]


def test_python_m_resilient_version_exits_0() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "resilient", "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"resilient {resilient.__version__}\n"
