"""``--scenario quota``: a provider metering tokens and announcing its quota."""

from __future__ import annotations

import argparse
import io

import pytest

from resilient._demo import add_arguments, run
from resilient._demo.quota import simulate_quota


@pytest.mark.parametrize("seed", [1, 7, 11])
def test_the_protected_client_sends_nothing_the_provider_refuses(seed: int) -> None:
    bare = simulate_quota(180.0, seed, protected=False)
    guarded = simulate_quota(180.0, seed, protected=True)
    assert bare.refused > 0  # the load is about twice the quota
    assert guarded.refused == 0  # no 429, so no request sent that was refused
    assert guarded.refused_after_announcement == 0
    assert guarded.held_back == guarded.requests - guarded.sent > 0
    assert guarded.answered >= 0.95 * bare.answered  # the quota is used all the same


def test_the_scenario_prints_both_clients(tmp_path: object) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--scenario", "quota", "--duration", "4"])
    out = io.StringIO()
    assert run(args, out) == 0
    rows = {
        line.rsplit(None, 2)[0]: line.split()[-2:]
        for line in out.getvalue().splitlines()[2:]
        if line.strip() and "protected" not in line
    }
    assert rows["429s received"][1] == "0"
    assert int(rows["429s received"][0]) > 0
