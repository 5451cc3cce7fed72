"""``python -m benchmarks service``: what a service feels.

Three processes per variant, all on loopback:

- an **upstream** that follows a phase script: healthy (answers at once),
  failing (500s), down (every connection reset), hung (reads the request,
  never answers), rate-limited (429, ``Retry-After: 1``), healthy again;
- the **service**: FastAPI under uvicorn (uvloop when installed), whose one
  endpoint calls the upstream through the variant's client;
- a **load** process: closed-loop clients calling the service.

Variants: ``with_resilience`` with a scaled ``api()`` preset and metrics on;
``resilient.http.async_client`` with the same policy; tenacity around
pybreaker with prometheus_client (the glue users write today); stamina with
a pybreaker breaker; plain httpx. Every breaker has the same base: 5
failures in a row, 2 s open (``api()``'s 60 s scaled by 1/30, as is its
30 s per-attempt timeout: 1 s).

Per phase: goodput (answers from the upstream), shed answers (the service
refused without calling: 503/429), fallbacks, errors, p50/p99 latency,
event-loop lag of the service (p99 of a 10 ms ticker's lateness), the
service's CPU per request, calls that reached the upstream; per variant:
the time from "failing" to the first shed answer (time to open), from
"healthy again" to the first good answer and to the first second with
95 % good answers, and the answers refused in "healthy again".

About five minutes; ``--fast`` runs every variant through every phase in
about a minute (a smoke test: the numbers mean little). ``--hot`` runs the
healthy phase alone with a lighter load (what each variant adds to a
request's CPU time when nothing fails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PHASES = ("healthy", "failing", "down", "hung", "rate-limited", "healthy again")
DURATIONS = (8.0, 6.0, 8.0, 8.0, 6.0, 12.0)
FAST = (0.6, 0.8, 0.6, 1.2, 0.6, 2.5)
WARMUP, STOP = -1, -2
HEALTHY, FAILING, DOWN, HUNG, LIMITED, AGAIN = range(6)

VARIANTS = ("resilient", "resilient.http", "tenacity+pybreaker", "stamina+pybreaker", "httpx")
CLIENTS = 24  # closed-loop clients of the service
HOT_CLIENTS = 8  # --hot: a load the machine keeps up with

# The scaled api() preset: 1/30 of its times.
SCALE = 1 / 30
BASE_OPEN = 60.0 * SCALE  # 2 s
ATTEMPT_TIMEOUT = 30.0 * SCALE  # 1 s
FAILURES = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the upstream ------------------------------------------------------------------


_OK = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"price":1}\n'
)
_FAIL = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
_LIMITED = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n"


def _upstream(port: int, phase: Any, counts: Any, ready: Any) -> None:
    class Upstream(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            if phase.value == DOWN:
                self._reset()

        def _reset(self) -> None:
            counts[DOWN] += 1
            sock = self.transport.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                now = phase.value
                if now == DOWN:
                    self._reset()
                    return
                if now >= 0:
                    counts[now] += 1
                if now == FAILING:
                    self.transport.write(_FAIL)
                elif now == HUNG:
                    return  # never answers; the client gives up
                elif now == LIMITED:
                    self.transport.write(_LIMITED)
                else:
                    self.transport.write(_OK)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            while phase.value != STOP:
                await asyncio.sleep(0.05)

    asyncio.run(serve())


# -- the service ----------------------------------------------------------------------


def _policy() -> Any:
    """``ResiliencePolicies.api()`` with its times scaled by 1/30."""
    import dataclasses

    from resilient import ResiliencePolicies

    api = ResiliencePolicies.api()
    cb = api.circuit_breaker
    retry = api.retry
    assert cb is not None
    assert retry is not None
    return api.replace(
        circuit_breaker=dataclasses.replace(
            cb,
            recovery_timeout=cb.recovery_timeout * SCALE,
            max_recovery_timeout=(cb.max_recovery_timeout or 0.0) * SCALE,
            max_half_open_duration=(cb.max_half_open_duration or 0.0) * SCALE,
        ),
        retry=dataclasses.replace(
            retry,
            initial_delay=retry.initial_delay * SCALE,
            max_delay=retry.max_delay * SCALE,
            deadline=(retry.deadline or 0.0) * SCALE,
        ),
        timeout=ATTEMPT_TIMEOUT,
    )


class Shed(Exception):
    """The variant refused without calling the upstream."""


def _variant_call(variant: str, url: str) -> Callable[[], Any]:
    """An ``async () -> None`` calling the upstream once through ``variant``;
    raises ``Shed`` when the variant refused, anything else on failure."""
    import httpx

    import resilient

    if variant == "resilient":
        from resilient.metrics import MetricsCollector

        collector = MetricsCollector()
        resilient.subscribe(collector)
        client = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=200))

        @resilient.with_resilience("upstream", _policy())
        async def fetch() -> None:
            response = await client.get(url)
            response.raise_for_status()

        async def call() -> None:
            try:
                await fetch()
            except (resilient.CircuitOpenError, resilient.BulkheadFullError) as error:
                raise Shed from error

        call.keep = collector  # type: ignore[attr-defined]
        return call
    if variant == "resilient.http":
        from resilient.http import async_client
        from resilient.metrics import MetricsCollector

        collector = MetricsCollector()
        resilient.subscribe(collector)
        http = async_client(_policy(), limits=httpx.Limits(max_connections=200))

        async def call_http() -> None:
            try:
                await http.get(url)
            except (resilient.CircuitOpenError, resilient.BulkheadFullError) as error:
                raise Shed from error

        call_http.keep = collector  # type: ignore[attr-defined]
        return call_http

    untimed = variant == UNTIMED
    client = httpx.AsyncClient(
        timeout=None if untimed else ATTEMPT_TIMEOUT, limits=httpx.Limits(max_connections=200)
    )
    if variant == "httpx" or untimed:

        async def plain() -> None:
            response = await client.get(url)
            response.raise_for_status()

        return plain

    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=FAILURES, reset_timeout=BASE_OPEN)

    async def attempt() -> None:
        with breaker.calling():
            response = await client.get(url)
            response.raise_for_status()

    if variant == "tenacity+pybreaker":
        import prometheus_client
        import tenacity

        registry = prometheus_client.CollectorRegistry()
        calls = prometheus_client.Counter("calls", "calls", ["outcome"], registry=registry)
        seconds = prometheus_client.Histogram("call_seconds", "duration", registry=registry)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_exponential(multiplier=SCALE, max=30 * SCALE),
            retry=tenacity.retry_if_exception_type(httpx.HTTPError),
            reraise=True,
        )

        async def tenacious() -> None:
            start = time.perf_counter()
            try:
                await retrying(attempt)
            except pybreaker.CircuitBreakerError as error:
                calls.labels("shed").inc()
                raise Shed from error
            except Exception:
                calls.labels("error").inc()
                raise
            finally:
                seconds.observe(time.perf_counter() - start)
            calls.labels("ok").inc()

        return tenacious

    import stamina

    @stamina.retry(
        on=httpx.HTTPError,
        attempts=3,
        timeout=60 * SCALE,
        wait_initial=SCALE,
        wait_max=30 * SCALE,
    )
    async def stamina_attempt() -> None:
        await attempt()

    async def with_stamina() -> None:
        try:
            await stamina_attempt()
        except pybreaker.CircuitBreakerError as error:
            raise Shed from error

    return with_stamina


def _service(variant: str, port: int, upstream: str, phase: Any, out: Any, ready: Any) -> None:
    import logging

    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    # The breakers' transitions are logged as warnings: not what is measured.
    logging.getLogger("resilient").setLevel(logging.ERROR)
    call = _variant_call(variant, upstream)
    app = FastAPI()
    answered = [0] * len(PHASES)
    cpu = [0.0] * len(PHASES)
    lags: list[list[float]] = [[] for _ in PHASES]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/quote")
    async def quote() -> JSONResponse:
        now = phase.value
        if now >= 0:
            answered[now] += 1
        try:
            await call()
        except Shed:
            return JSONResponse(
                {"error": "unavailable"}, status_code=503, headers={"x-outcome": "shed"}
            )
        except Exception:
            return JSONResponse(
                {"error": "upstream"}, status_code=502, headers={"x-outcome": "error"}
            )
        return JSONResponse({"price": 1}, headers={"x-outcome": "ok"})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        lifespan="off",
        loop="uvloop" if _has_uvloop() else "asyncio",
        backlog=2048,
    )
    server = uvicorn.Server(config)

    async def watch() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        ready.set()
        seen = phase.value
        started = os.times()
        tick = 0.01
        while True:
            before = time.perf_counter()
            await asyncio.sleep(tick)
            late = time.perf_counter() - before - tick
            now = phase.value
            if now != seen:
                times = os.times()
                if seen >= 0:
                    cpu[seen] = (times.user + times.system) - (started.user + started.system)
                started, seen = times, now
            if now == STOP:
                break
            if now >= 0:
                lags[now].append(late)
        out.put({"answered": answered, "cpu": cpu, "lag": [_quantile(x, 0.99) for x in lags]})
        server.should_exit = True

    async def main() -> None:
        watcher = asyncio.ensure_future(watch())
        await server.serve()
        await watcher

    _run_loop(main())


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# -- the load -------------------------------------------------------------------------


def _load(port: int, phase: Any, out: Any, clients: int) -> None:
    import httpx

    records: list[tuple[int, float, float, str]] = []  # phase, start, latency, outcome

    async def client(http: httpx.AsyncClient) -> None:
        while (now := phase.value) != STOP:
            start = time.monotonic()
            try:
                response = await http.get("/quote")
                outcome = response.headers.get("x-outcome", "error")
            except httpx.HTTPError:
                outcome = "error"
            if now >= 0:
                records.append((now, start, time.monotonic() - start, outcome))

    async def main() -> None:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30.0
        ) as http:
            await asyncio.gather(*(client(http) for _ in range(clients)))

    asyncio.run(main())
    out.put(records)


# -- one variant ------------------------------------------------------------------------


def run_variant(variant: str, durations: Sequence[float], clients: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    phase = ctx.Value("i", WARMUP, lock=False)
    counts = ctx.Array("i", len(PHASES), lock=False)
    up_ready, svc_ready = ctx.Event(), ctx.Event()
    svc_out: Any = ctx.Queue()
    load_out: Any = ctx.Queue()
    up_port, svc_port = _free_port(), _free_port()
    upstream = ctx.Process(target=_upstream, args=(up_port, phase, counts, up_ready), daemon=True)
    upstream.start()
    up_ready.wait(30)
    service = ctx.Process(
        target=_service,
        args=(variant, svc_port, f"http://127.0.0.1:{up_port}/v1/quote", phase, svc_out, svc_ready),
        daemon=True,
    )
    service.start()
    if not svc_ready.wait(60):
        raise RuntimeError(f"the {variant} service did not start")
    load = ctx.Process(target=_load, args=(svc_port, phase, load_out, clients), daemon=True)
    load.start()
    time.sleep(2.0)  # warm-up: connections made, nothing counted
    starts = []
    for index, seconds in enumerate(durations):
        starts.append(time.monotonic())
        phase.value = index
        time.sleep(seconds)
    ended = time.monotonic()
    phase.value = STOP
    service_stats = svc_out.get(timeout=60)
    records = load_out.get(timeout=60)
    for process in (load, service, upstream):
        process.join(10)
        if process.is_alive():
            process.terminate()
    return _summary(variant, records, service_stats, list(counts), starts, ended)


# -- the CPU a variant adds to one call -------------------------------------------------

#: --added also times plain httpx without its own timeout: the resilient
#: variant's client has none either (its policy's timeout replaces it), so
#: the difference to this one is the layers alone.
UNTIMED = "httpx, no timeout"
ADDED_ROUNDS = 4000  # --added: calls per variant, interleaved
ADDED_FAST = 200


def added_cpu(variants: Sequence[str], rounds: int) -> dict[str, dict[str, float]]:
    """The CPU time of one call to a healthy upstream through each variant,
    measured in one thread of one process: the calls take turns (every
    round calls each variant once, in a rotating order) and each is timed
    with ``time.thread_time()``, which counts this thread's CPU only, not the
    upstream's, not the other processes' and not the wait for the answer.
    On a shared machine that is what still resolves microseconds: the
    service runs above count every process on its cores.

    Returns, per variant, the median and the 25th/75th percentiles in µs,
    and (``added_us``) the median over rounds of its call's CPU less plain
    httpx's call in the same round: neighbours in time share the machine's
    state, so the pairs cancel most of what other processes do to both."""
    ctx = mp.get_context("spawn")
    phase = ctx.Value("i", HEALTHY, lock=False)
    counts = ctx.Array("i", len(PHASES), lock=False)
    ready = ctx.Event()
    port = _free_port()
    upstream = ctx.Process(target=_upstream, args=(port, phase, counts, ready), daemon=True)
    upstream.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the upstream did not start")
        url = f"http://127.0.0.1:{port}/v1/quote"
        samples = _run_loop(_interleaved(variants, url, rounds))
    finally:
        phase.value = STOP
        upstream.join(10)
        if upstream.is_alive():
            upstream.terminate()
    plain = samples.get("httpx")
    return {
        variant: {
            "p25_us": 1e6 * _quantile(times, 0.25),
            "median_us": 1e6 * _quantile(times, 0.50),
            "p75_us": 1e6 * _quantile(times, 0.75),
            "added_us": (
                1e6 * _quantile([a - b for a, b in zip(times, plain, strict=True)], 0.50)
                if plain is not None
                else float("nan")
            ),
        }
        for variant, times in samples.items()
    }


async def _interleaved(variants: Sequence[str], url: str, rounds: int) -> dict[str, list[float]]:
    import logging

    logging.getLogger("resilient").setLevel(logging.ERROR)
    calls = {variant: _variant_call(variant, url) for variant in variants}
    for call in calls.values():  # connections made, caches warm: not measured
        for _ in range(50):
            await call()
    samples: dict[str, list[float]] = {variant: [] for variant in variants}
    order = list(variants)
    clock = time.thread_time
    for index in range(rounds):
        shift = index % len(order)
        for variant in order[shift:] + order[:shift]:
            call = calls[variant]
            began = clock()
            await call()
            samples[variant].append(clock() - began)
    return samples


def _run_loop(main: Any) -> Any:
    if _has_uvloop():
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def added_table(added: dict[str, dict[str, float]]) -> str:
    lines = [
        "| variant | CPU per call, median µs | p25 to p75 µs | added over plain httpx µs |",
        "|---|--:|--:|--:|",
    ]
    for variant, row in added.items():
        over = "" if "httpx" not in added else f"{row['added_us']:.1f}"
        lines.append(
            f"| {variant} | {row['median_us']:.1f} | {row['p25_us']:.1f} to {row['p75_us']:.1f} "
            f"| {over} |"
        )
    return "\n".join(lines)


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(
    variant: str,
    records: list[tuple[int, float, float, str]],
    service: dict[str, Any],
    upstream_calls: list[int],
    starts: list[float],
    ended: float,
) -> dict[str, Any]:
    phases = []
    bounds = [*starts, ended]
    for index, name in enumerate(PHASES[: len(starts)]):
        mine = [r for r in records if r[0] == index]
        seconds = bounds[index + 1] - bounds[index]
        latencies = [r[2] for r in mine]
        ok = sum(1 for r in mine if r[3] == "ok")
        answered = service["answered"][index]
        phases.append(
            {
                "phase": name,
                "requests": len(mine),
                "goodput": ok / seconds,
                "ok": ok,
                "shed": sum(1 for r in mine if r[3] == "shed"),
                "fallbacks": sum(1 for r in mine if r[3] == "fallback"),
                "errors": sum(1 for r in mine if r[3] == "error"),
                "p50_ms": 1000 * _quantile(latencies, 0.50),
                "p99_ms": 1000 * _quantile(latencies, 0.99),
                "lag_p99_ms": 1000 * service["lag"][index],
                "cpu_us": 1e6 * service["cpu"][index] / answered if answered else 0.0,
                "upstream": upstream_calls[index],
            }
        )
    summary: dict[str, Any] = {"variant": variant, "phases": phases}
    if len(starts) < len(PHASES):  # --hot: the healthy phase alone
        return summary
    failing = starts[FAILING]
    shed_after = [r[1] for r in records if r[3] == "shed" and r[1] >= failing]
    again = starts[AGAIN]
    after = sorted((r[1], r[3]) for r in records if r[0] == AGAIN)
    first_ok = next((t for t, outcome in after if outcome == "ok"), None)
    refused = sum(1 for _, outcome in after if outcome == "shed")
    summary.update(
        time_to_open=(min(shed_after) - failing) if shed_after else None,
        first_ok_after=(first_ok - again) if first_ok is not None else None,
        recovered_after=_recovered(after, again),
        refused_after=refused,
        # Closed-loop clients send more requests to a service that answers
        # sooner: the share refused compares variants of different speeds.
        refused_share=refused / len(after) if after else 0.0,
    )
    return summary


def _recovered(after: list[tuple[float, str]], again: float) -> float | None:
    """Seconds from ``again`` to the start of the first 1 s (in 0.1 s steps)
    whose answers are at least 95 % good."""
    if not after:
        return None
    step = 0.0
    end = after[-1][0]
    while again + step + 1.0 <= end + 1e-9:
        window = [o for t, o in after if again + step <= t < again + step + 1.0]
        if window and sum(o == "ok" for o in window) >= 0.95 * len(window):
            return step
        step += 0.1
    return None


# -- the table ----------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | phase | goodput /s | shed | fallbacks | errors | p50 ms | p99 ms "
        "| loop lag p99 ms | CPU µs/request | upstream calls |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for result in results:
        for p in result["phases"]:
            lines.append(
                f"| {result['variant']} | {p['phase']} | {p['goodput']:.0f} | {p['shed']} "
                f"| {p['fallbacks']} | {p['errors']} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} "
                f"| {p['lag_p99_ms']:.1f} | {p['cpu_us']:.0f} | {p['upstream']} |"
            )
    recovering = [r for r in results if "refused_after" in r]
    if not recovering:
        return "\n".join(lines)
    lines += [
        "",
        "| variant | time to open | healthy again → first good answer "
        '| → 95 % good | refused in "healthy again" | share refused |',
        "|---|--:|--:|--:|--:|--:|",
    ]
    for result in recovering:
        lines.append(
            f"| {result['variant']} | {_seconds(result['time_to_open'])} "
            f"| {_seconds(result['first_ok_after'])} | {_seconds(result['recovered_after'])} "
            f"| {result['refused_after']} | {100 * result['refused_share']:.1f} % |"
        )
    return "\n".join(lines)


def targets(results: list[dict[str, Any]], added: dict[str, dict[str, float]] | None = None) -> str:
    """The service targets, where the variants they compare ran. The CPU a
    variant adds is read from ``added`` (``--added``) when given, else from
    the service's CPU per request in the healthy phase."""
    by = {r["variant"]: r for r in results}
    ours, peer, plain = by.get("resilient"), by.get("tenacity+pybreaker"), by.get("httpx")
    lines = ["| target | measured | goal | |", "|---|--:|--:|---|"]

    def row(name: str, value: float | None, goal: float, below: bool = True) -> None:
        if value is None:
            lines.append(f"| {name} | n/a | ≤ {goal:g}x | |")
            return
        met = value <= goal if below else value >= goal
        lines.append(f"| {name} | {value:.2f}x | ≤ {goal:g}x | {'met' if met else '**missed**'} |")

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else (None if a else 0.0)

    if ours is not None and peer is not None and "refused_after" in ours.keys() & peer.keys():
        row(
            'refused in "healthy again": resilient / pybreaker',
            ratio(ours["refused_after"], max(peer["refused_after"], 1)),
            1.5,
        )
        row(
            'share refused in "healthy again": resilient / pybreaker',
            ratio(ours["refused_share"], peer["refused_share"]),
            1.5,
        )
        hung_down = [DOWN, HUNG]
        row(
            'upstream calls in "down" + "hung": resilient / pybreaker',
            ratio(
                sum(ours["phases"][i]["upstream"] for i in hung_down),
                sum(peer["phases"][i]["upstream"] for i in hung_down),
            ),
            0.25,
        )
    cpu: dict[str, float] = {}
    if added:
        cpu = {variant: row["added_us"] for variant, row in added.items()}
        where = "one call, median of paired differences"
    elif ours is not None and peer is not None and plain is not None:
        cpu = {r["variant"]: r["phases"][HEALTHY]["cpu_us"] for r in results}
        where = "healthy phase, per request"
    if added and {"resilient", UNTIMED} <= added.keys():
        layers = added["resilient"]["added_us"] - added[UNTIMED]["added_us"]
        lines.append(
            f"| CPU added over plain httpx without its timeout: resilient | {layers:.1f} µs "
            f"| ≤ 15 µs | {'met' if layers <= 15 else '**missed**'} |"
        )
    if {"resilient", "httpx"} <= cpu.keys():
        over = cpu["resilient"] - cpu["httpx"]
        lines.append(
            f"| CPU added over plain httpx ({where}): resilient | {over:.1f} µs "
            f"| ≤ 15 µs | {'met' if over <= 15 else '**missed**'} |"
        )
        peer_over = cpu.get("tenacity+pybreaker", 0.0) - cpu["httpx"]
        if peer_over > 0:
            row("CPU added: resilient / tenacity+pybreaker", over / peer_over, 0.25)
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks service", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="short phases: a smoke test")
    parser.add_argument(
        "--hot",
        action="store_true",
        help="the healthy phase alone, 12 s, 8 clients: the CPU each variant adds per request",
    )
    parser.add_argument(
        "--added",
        action="store_true",
        help="the CPU one call through each variant adds, interleaved in one thread "
        "(resolves microseconds on a busy machine)",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    options = parser.parse_args(argv)
    chosen = [v.strip() for v in options.variants.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose among {list(VARIANTS)}")
    durations: tuple[float, ...] = FAST if options.fast else DURATIONS
    if options.hot:
        durations = durations[:1] if options.fast else (12.0,)
        if options.clients == CLIENTS:
            options.clients = HOT_CLIENTS
    if options.added:
        rounds = ADDED_FAST if options.fast else ADDED_ROUNDS
        print(f"service benchmark: CPU added, {rounds} rounds ...", file=sys.stderr, flush=True)
        added = added_cpu([*chosen, UNTIMED] if "httpx" in chosen else chosen, rounds)
        print(
            f"CPU of one call, {rounds} rounds of interleaved calls; uvloop: {_has_uvloop()}; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print()
        print(added_table(added))
        print()
        print(targets([], added))
        if options.json is not None:
            options.json.write_text(json.dumps(added, indent=2))
        return 0
    results = []
    for variant in chosen:
        print(f"service benchmark: {variant} ...", file=sys.stderr, flush=True)
        results.append(run_variant(variant, durations, options.clients))
    phases = ", ".join(
        f"{name} {seconds:g} s" for name, seconds in zip(PHASES, durations, strict=False)
    )
    print(
        f"phases: {phases}; {options.clients} clients; uvloop: {_has_uvloop()}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print()
    print(table(results))
    print()
    print(targets(results))
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2))
    return 0
