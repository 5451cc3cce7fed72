"""The fleet trial: 3 processes share 5 breakers and one rate limit on a
3-master Redis Cluster this test builds; mid-run one master is killed (and
started again) and another is stopped (``SIGSTOP``) for 5 s, while the
breakers' dependencies fail on a schedule.

Asserted: no caller ever gets an error caused by Redis; outside the faults
(from 1 s after each ends), every transition one process makes is seen by
every other within 1 s; the rate limit holds within ``burst`` fleet-wide
while Redis is reachable; the worst call latency stays bounded (and is
printed, for docs/fleet.md). Real time is the subject: the test follows a
timeline (about 30 s; bounded to 2 minutes).
"""

from __future__ import annotations

import bisect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_cluster import RedisCluster, cluster_of_three
from tests.redis_server import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
WORKER = str(ROOT / "tests" / "fleet_trial_worker.py")
BREAKERS = [f"svc{i}" for i in range(5)]
RATE, BURST = 50.0, 10
SEEN_WITHIN = 1.0  # seconds for every process to see a transition


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    # Without full coverage, the masters still up serve their slots while
    # one is down (the default refuses every slot then).
    gen = cluster_of_three(tmp_path, "--cluster-require-full-coverage", "no")
    yield next(gen)
    gen.close()


def _state_at(samples: list[list[Any]], times: list[float], t: float) -> list[str]:
    i = bisect.bisect_right(times, t) - 1
    return samples[max(i, 0)][1]  # type: ignore[no-any-return]


def _changed_within(samples: list[list[Any]], times: list[float], k: int, lo: float, hi: float):
    i = max(bisect.bisect_left(times, lo) - 1, 0)
    j = bisect.bisect_right(times, hi)
    states = {samples[n][1][k] for n in range(i, min(j, len(samples)))}
    return len(states) > 1


def test_the_fleet_rides_out_a_killed_and_a_stopped_master(
    cluster: RedisCluster, tmp_path: Path
) -> None:
    start = time.time() + 4.0  # every process started and synced by then
    at = {name: start + offset for name, offset in {
        "kill": 5.0, "restart": 8.0, "stop": 11.0, "resume": 16.0, "end": 24.0,
    }.items()}  # fmt: skip
    failing = {  # when each breaker's dependency fails
        "svc0": [[start + 1.0, start + 4.0]],
        "svc1": [[start + 12.0, start + 15.0]],  # while a master is stopped
        "svc2": [[start + 19.0, start + 21.0]],
        "svc4": [[start + 5.5, start + 7.0]],  # while a master is dead
    }
    config = {
        "url": cluster.url,
        "breakers": BREAKERS,
        "limit": {"rate": RATE, "burst": BURST},
        "failing": failing,
        "end": at["end"],
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outs = [tmp_path / f"worker{i}.json" for i in range(3)]
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, json.dumps(config), str(out)],
            stdout=subprocess.PIPE,
            stderr=(tmp_path / f"{out.stem}.log").open("w"),  # its warnings, if it fails
            text=True,
            env=env,
            cwd=ROOT,
        )
        for out in outs
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        killed, stopped = cluster.nodes[1], cluster.nodes[2]
        time.sleep(max(0.0, at["kill"] - time.time()))  # the timeline, in real time
        killed.kill()
        time.sleep(max(0.0, at["restart"] - time.time()))
        killed.start()
        wait_for(cluster.state_ok, timeout=30.0, what="the killed master to rejoin")
        back = time.time()
        time.sleep(max(0.0, at["stop"] - time.time()))
        assert stopped.process is not None
        stopped.process.send_signal(signal.SIGSTOP)
        stop_began = time.time()
        time.sleep(max(0.0, at["resume"] - time.time()))
        stopped.process.send_signal(signal.SIGCONT)
        resumed = time.time()
        for worker in workers:
            assert worker.wait(timeout=60) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    results = [json.loads(out.read_text()) for out in outs]
    faults = [(at["kill"], back + SEEN_WITHIN), (stop_began, resumed + SEEN_WITHIN)]

    def calm(t: float) -> bool:
        return t >= start and not any(lo <= t <= hi for lo, hi in faults)

    # 1. No caller saw an error caused by Redis.
    errors = [e for r in results for e in r["errors"]]
    assert errors == []

    # 2. Outside the faults, the processes disagree about a breaker only
    # within SEEN_WITHIN of a transition of it.
    samples = [r["samples"] for r in results]
    times = [[s[0] for s in ss] for ss in samples]
    late = []
    for t in times[0]:
        if not calm(t) or not calm(t - SEEN_WITHIN):
            continue
        states = [_state_at(samples[p], times[p], t) for p in range(3)]
        for k, name in enumerate(BREAKERS):
            seen = {states[p][k] for p in range(3)}
            if len(seen) > 1 and not any(
                _changed_within(samples[p], times[p], k, t - SEEN_WITHIN, t) for p in range(3)
            ):
                late.append((round(t - start, 2), name, [states[p][k] for p in range(3)]))
    assert late == []
    # Every breaker whose dependency failed opened, in every process.
    for k, name in enumerate(BREAKERS):
        opened = [any(s[1][k] == "open" for s in samples[p]) for p in range(3)]
        assert opened == [name in failing] * 3, name

    # 3. The rate limit holds fleet-wide while Redis is reachable: in any
    # window of 1 s, at most burst + rate calls (+1 for timestamps taken
    # after the admission, a few milliseconds late).
    admitted = sorted(t for r in results for t in r["admitted"] if calm(t) and calm(t - 1.0))
    most = 0
    for i, t in enumerate(admitted):
        j = bisect.bisect_left(admitted, t + 1.0)
        most = max(most, j - i)
    assert most <= BURST + RATE + 1, most
    assert len(admitted) > RATE  # it was used

    # 4. The worst call latency: a probe or a limit waits at most the socket
    # timeout (0.25 s); scheduling on a loaded machine adds to it.
    worst = max(r["worst"] for r in results)
    print(f"\nfleet trial: worst call latency {worst * 1000:.0f} ms; most calls "
          f"admitted in 1 s: {most} (limit {BURST + RATE:.0f})")  # fmt: skip
    assert worst < 2.0
