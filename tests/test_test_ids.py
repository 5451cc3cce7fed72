"""Test ids are the same on every run: a failure can be named, rerun and
compared across runs (no object address, no hash order in an id)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")
PYTEST = [sys.executable, "-m", "pytest"]


def _collect(hash_seed: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # --assert=plain: ids do not depend on rewriting the asserts, which
        # is most of the time a collection takes.
        [*PYTEST, "--collect-only", "-q", "--assert=plain", "-p", "no:randomly", "tests"],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_every_test_id_is_the_same_on_every_run() -> None:
    # Two collections at once, with different hash seeds (set and dict
    # orders of strings differ between them), in fresh processes (so do
    # object addresses).
    runs = [_collect("1"), _collect("2")]
    collected = []
    for run in runs:
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0, out
        collected.append([line for line in out.splitlines() if "::" in line])
    first, second = collected
    assert len(first) > 2000
    assert first == second
    assert [test_id for test_id in first if ADDRESS.search(test_id)] == []


def test_the_address_pattern_finds_addresses() -> None:
    assert ADDRESS.search("test_x[<object object at 0x7f44a1b2c3d0>]")
    assert not ADDRESS.search("test_x[with_retry-object()]")
