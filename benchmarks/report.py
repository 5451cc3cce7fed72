"""Turn the timings into ``results.md`` (tables, targets) and two SVG charts."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .cases import EVENTS_PER_CALL, Case
from .imports import BASELINE, ImportTime
from .memory import DAY_TRAFFIC, DAY_TRAFFIC_OBSERVED, DAY_WINDOW
from .svg import Bar, bar_chart

__all__ = [
    "IMPORT_TIME",
    "TARGETS",
    "Target",
    "drop_section",
    "import_section",
    "machine",
    "splice_section",
    "write",
]

WRAPS = "floor: functools.wraps"
BARE = "floor: bare call"
RAISE = "floor: raise+catch"
METRICS = "observed by metrics"
ELSEWHERE = "observed elsewhere"
PER_CALL = "observed per call"
PER_EVENT = EVENTS_PER_CALL  # the per-call case's extra: events one call delivers
QUEUES = "floor: two SimpleQueues"
DAY_MEMORY = "memory, one-day window"
DAY_TRAFFIC_MEMORY = "memory, one-day window after a day of traffic"
# Each breaker option's limit, as a multiple of the plain closed breaker.
OPTION_LIMITS = {
    "failure rate, count window": 1.1,
    "time window (60 s)": 2.0,
    "slow calls": 2.0,
    "result predicate": 1.5,
    "shadow=True": 1.1,
}

Times = dict[str, float]  # case name -> seconds per call


@dataclass(frozen=True)
class Target:
    """``what`` holds when ``measure(times)`` is at most (or at least) ``limit``."""

    what: str
    limit: float
    at_most: bool
    measure: Callable[[Times, dict[str, float]], float | None]
    unit: str = "x"

    def check(self, times: Times, extra: dict[str, float]) -> tuple[float | None, bool | None]:
        value = self.measure(times, extra)
        if value is None:
            return None, None
        return value, (value <= self.limit if self.at_most else value >= self.limit)


def _ratio(top: str, bottom: str) -> Callable[[Times, dict[str, float]], float | None]:
    def measure(times: Times, extra: dict[str, float]) -> float | None:
        a, b = times.get(top), times.get(bottom)
        return a / b if a is not None and b else None

    return measure


def _spread(mode: str, job: str, cases: Sequence[Case]) -> Callable[..., float | None]:
    names = [c.name for c in cases if c.mode == mode and c.job == job]

    def measure(times: Times, extra: dict[str, float]) -> float | None:
        found = [times[n] for n in names if n in times]
        return max(found) / min(found) if len(found) > 1 else None

    return measure


def _extra(key: str) -> Callable[[Times, dict[str, float]], float | None]:
    return lambda times, extra: extra.get(key)


def _per_event(listened: str, bare: str, key: str) -> Callable[..., float | None]:
    """Microseconds a listener adds per event it receives: ``listened`` minus
    ``bare``, divided by the events one call delivers (``extra[key]``)."""

    def measure(times: Times, extra: dict[str, float]) -> float | None:
        a, b, n = times.get(listened), times.get(bare), extra.get(key)
        return (a - b) / n * 1e6 if a is not None and b is not None and n else None

    return measure


def targets(cases: Sequence[Case]) -> list[Target]:
    cb = "circuit breaker"
    return [
        Target(
            "closed breaker (sync) / functools.wraps pass-through",
            2.6,
            True,
            _ratio(f"sync {cb}: resilient", f"sync pass-through: {WRAPS}"),
        ),
        Target(
            "circuitbreaker / resilient, closed breaker (sync)",
            2.0,
            False,
            _ratio(f"sync {cb}: circuitbreaker", f"sync {cb}: resilient"),
        ),
        Target(
            "pybreaker / resilient, closed breaker (sync)",
            5.0,
            False,
            _ratio(f"sync {cb}: pybreaker", f"sync {cb}: resilient"),
        ),
        Target(
            "tenacity / resilient, retry, first attempt succeeds",
            40.0,
            False,
            _ratio("sync retry: tenacity", "sync retry: resilient"),
        ),
        Target(
            "backoff / resilient, retry, first attempt succeeds",
            7.0,
            False,
            _ratio("sync retry: backoff", "sync retry: resilient"),
        ),
        Target(
            "full stack (sync) / functools.wraps pass-through",
            6.0,
            True,
            _ratio("sync stack: resilient", f"sync pass-through: {WRAPS}"),
        ),
        Target(
            "hedged full stack, first attempt in time / the same stack (async)",
            1.5,
            True,
            _ratio("async hedged stack: resilient", "async stack: resilient"),
        ),
        Target(
            "hedged full stack, first attempt in time / the same stack, a call that awaits once",
            1.5,
            True,
            _ratio(
                "async hedged stack, call awaits: resilient", "async stack, call awaits: resilient"
            ),
        ),
        Target(
            "async stream, full stack / a bare relay, per item (100 items)",
            1.5,
            True,
            _ratio("async stream of 100: resilient", "async stream of 100: floor: bare relay"),
        ),
        Target(
            "sync stream, full stack / a bare relay, per item (100 items)",
            1.5,
            True,
            _ratio("sync stream of 100: resilient", "sync stream of 100: floor: bare relay"),
        ),
        Target(
            "async stream of one item / the same stack around a call (setup and teardown)",
            2.0,
            True,
            _ratio("async stream of 1: resilient", "async stack around a call: resilient"),
        ),
        Target(
            "hedged stream, first item in time / the same stream unhedged",
            1.3,
            True,
            _ratio("async hedged stream of 1: resilient", "async stream of 1: resilient"),
        ),
        Target(
            "adaptive bulkhead / fixed bulkhead (sync)",
            2.0,
            True,
            _ratio("sync adaptive bulkhead: resilient", "sync bulkhead: resilient"),
        ),
        Target(
            "adaptive bulkhead / fixed bulkhead (async)",
            2.0,
            True,
            _ratio("async adaptive bulkhead: resilient", "async bulkhead: resilient"),
        ),
        Target(
            "full stack: async / sync",
            1.5,
            True,
            _ratio("async stack: resilient", "sync stack: resilient"),
        ),
        Target(
            "hyx / resilient, closed breaker (async)",
            2.0,
            False,
            _ratio(f"async {cb}: hyx", f"async {cb}: resilient"),
        ),
        Target(
            "purgatory / resilient, closed breaker (async)",
            2.0,
            False,
            _ratio(f"async {cb}: purgatory", f"async {cb}: resilient"),
        ),
        Target(
            "timeout (async) / stdlib asyncio.timeout",
            0.5,
            True,
            _ratio("async timeout: resilient", "async timeout: floor: asyncio.timeout"),
        ),
        Target(
            "open-circuit rejection / raise+catch (sync)",
            2.0,
            True,
            _ratio("sync rejection: resilient", f"sync rejection: {RAISE}"),
        ),
        Target(
            "count windows 1e2..1e6 calls: slowest / fastest",
            1.25,
            True,
            _spread("window", "count window", cases),
        ),
        Target(
            "time windows 1 s..1 day: slowest / fastest",
            1.25,
            True,
            _spread("window", "time window", cases),
        ),
        *(
            Target(
                f"traced full stack ({mode}) / the stack in one bare SDK span",
                1.5,
                True,
                _ratio(
                    f"{mode} stack, observed by tracing: resilient",
                    f"{mode} stack in one SDK span: floor: not traced",
                ),
            )
            for mode in ("sync", "async")
        ),
        Target(
            "full stack (sync) after tracing was stopped / never traced",
            1.02,
            True,
            _ratio(
                "sync stack, observed after tracing stopped: resilient", "sync stack: resilient"
            ),
        ),
        Target("memory per breaker (10,000 breakers)", 2048.0, True, _extra("memory"), " B"),
        Target(
            "memory of a breaker with a one-day time window",
            8192.0,
            True,
            _extra(DAY_MEMORY),
            " B",
        ),
        Target(
            "memory of a breaker with a one-day time window, after a day of traffic",
            8192.0,
            True,
            _extra(DAY_TRAFFIC_MEMORY),
            " B",
        ),
        # A closed breaker configured with each option, against the plain one.
        *(
            Target(
                f"closed breaker (sync) with {label} / plain",
                limit,
                True,
                _ratio(f"option {cb}: {label}", f"sync {cb}: resilient"),
            )
            for label, limit in OPTION_LIMITS.items()
        ),
        Target(
            "closed breaker (sync) with timeout= / with_timeout alone",
            1.2,
            True,
            _ratio(f"option {cb}: timeout=", "sync timeout: resilient"),
        ),
        Target(
            "timeout (sync, thread) / a raw two-SimpleQueue hand-off",
            1.2,
            True,
            _ratio("sync timeout: resilient", f"sync timeout: {QUEUES}"),
        ),
        Target(
            "timeout (sync, signal) / two setitimer calls",
            1.3,
            True,
            _ratio("sync timeout: resilient (signal)", "sync timeout: floor: two setitimer calls"),
        ),
        Target(
            "2 threads / 1 thread throughput, one breaker",
            0.8,
            False,
            _ratio(f"threads {cb}: resilient, 1 thread", f"threads {cb}: resilient, 2 threads"),
        ),
        # Watching costs nothing: the same calls observed, in the same run.
        Target(
            "closed breaker (sync): observed by metrics / unobserved",
            2.0,
            True,
            _ratio(f"sync {cb}, {METRICS}: resilient", f"sync {cb}: resilient"),
        ),
        Target(
            "full stack (sync): observed by metrics / unobserved",
            1.5,
            True,
            _ratio(f"sync stack, {METRICS}: resilient", "sync stack: resilient"),
        ),
        Target(
            "full stack (async): observed by metrics / unobserved",
            1.5,
            True,
            _ratio(f"async stack, {METRICS}: resilient", "async stack: resilient"),
        ),
        Target(
            "tenacity retry / resilient full stack (sync) observed by metrics",
            10.0,
            False,
            _ratio("sync retry: tenacity", f"sync stack, {METRICS}: resilient"),
        ),
        Target(
            "closed breaker (sync): a listener on another policy / none",
            1.1,
            True,
            _ratio(f"sync {cb}, {ELSEWHERE}: resilient", f"sync {cb}: resilient"),
        ),
        Target(
            "full stack (sync): a listener on another policy / none",
            1.1,
            True,
            _ratio(f"sync stack, {ELSEWHERE}: resilient", "sync stack: resilient"),
        ),
        Target(
            "a listener on the breaker (sync): cost per event delivered",
            1.5,
            True,
            _per_event(f"sync {cb}, {PER_CALL}: resilient", f"sync {cb}: resilient", PER_EVENT),
            " µs",
        ),
    ]


def _less_key(mode: str) -> Callable[[Times, dict[str, float]], float | None]:
    """The per-key breaker less its key function's own cost, over a plain
    breaker."""

    def measure(times: Times, extra: dict[str, float]) -> float | None:
        keyed = times.get(f"{mode} per-key breaker: resilient")
        floor = times.get(f"{mode} per-key breaker: floor: key function")
        wraps = times.get(f"{mode} pass-through: {WRAPS}")
        plain = times.get(f"{mode} circuit breaker: resilient")
        if keyed is None or floor is None or wraps is None or not plain:
            return None
        return (keyed - (floor - wraps)) / plain

    return measure


def _limit_targets() -> list[Target]:
    """The rate limiter's and the per-key breaker's targets."""
    cb, rl, keyed = "circuit breaker", "rate limiter", "per-key breaker"
    peers = [
        Target(
            f"{lib} / resilient, {rl} admitting ({mode})",
            1.0,
            False,
            _ratio(f"{mode} {rl}: {lib}", f"{mode} {rl}: resilient"),
        )
        for mode, lib in (
            ("sync", "pyrate-limiter"),
            ("sync", "limits"),
            ("async", "aiolimiter"),
            ("async", "hyx"),
        )
    ]
    return [
        *(
            Target(
                f"{rl} admitting ({mode}) / closed breaker ({mode})",
                2.0,
                True,
                _ratio(f"{mode} {rl}: resilient", f"{mode} {cb}: resilient"),
            )
            for mode in ("sync", "async")
        ),
        *peers,
        *(
            Target(
                f"{keyed} ({mode}) / plain breaker ({mode}), key function excluded",
                1.5,
                True,
                _less_key(mode),
            )
            for mode in ("sync", "async")
        ),
        Target("memory per key of a per-key breaker", 1536.0, True, _extra("memory per key"), " B"),
    ]


def _quota_targets() -> list[Target]:
    """Provider quotas and failover."""
    rl = "sync rate limiter: resilient"
    return [
        Target(
            "weighed rate limit (cost=) / count rate limit (sync)",
            1.1,
            True,
            _ratio("sync weighed rate limiter: resilient", rl),
        ),
        Target(
            "three stacked rate limits / one (sync)",
            2.5,
            True,
            _ratio("sync three stacked rate limits: resilient", rl),
        ),
        Target(
            "failover, healthy primary / the primary's own stack (sync)",
            1.2,
            True,
            _ratio(
                "sync failover, healthy primary: resilient",
                "sync failover's primary stack: resilient",
            ),
        ),
        Target(
            "failover skipping an open breaker / a bare open rejection (sync)",
            2.0,
            True,
            _ratio("sync failover skips an open breaker: resilient", "sync rejection: resilient"),
        ),
        Target(
            "quota header parsing, per response", 5.0, True, _extra("quota header parsing"), " µs"
        ),
    ]


def _all_targets(cases: Sequence[Case]) -> list[Target]:
    return [*targets(cases), *_limit_targets(), *_quota_targets()]


TARGETS = _all_targets  # built from the case list, which the spreads need


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
    }


def _ns(seconds: float) -> str:
    ns = seconds * 1e9
    return f"{ns:,.0f}" if ns >= 10 else f"{ns:.1f}"


def _times_x(x: float) -> str:
    return f"{x:.2f}x" if x < 10 else f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x"


_JOB_ORDER = [
    "pass-through",
    "circuit breaker",
    "retry",
    "timeout",
    "bulkhead",
    "fallback",
    "stack",
    "hedged stack",
    "rejection",
    "rate limiter",
    "per-key breaker",
]
_JOB_TITLE = {
    "pass-through": "pass-through (the floors)",
    "circuit breaker": "circuit breaker, closed, call succeeds",
    "retry": "retry, first attempt succeeds",
    "timeout": "timeout, call returns in time",
    "bulkhead": "bulkhead, free slot",
    "fallback": "fallback, call succeeds",
    "stack": "full stack: fallback, retry, breaker, bulkhead",
    "hedged stack": "full stack, hedged, first attempt in time",
    "rejection": "open circuit rejects the call",
    "rate limiter": "rate limiter, admitting (a turn free)",
    "per-key breaker": "per-key breaker, closed (key function excluded)",
}


def _rows(cases: Sequence[Case], times: Times, mode: str, job: str) -> list[Case]:
    found = [
        c
        for c in cases
        if c.mode == mode and c.job == job and c.observer is None and c.name in times
    ]

    def order(c: Case) -> tuple[int, float]:
        rank = 0 if c.lib.startswith("floor") else 1 if c.lib.startswith("resilient") else 2
        return rank, times[c.name]

    return sorted(found, key=order)


def overhead_table(cases: Sequence[Case], times: Times) -> list[str]:
    lines = [
        "| job | library | ns per call | overhead, ns | x floor | x resilient |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for mode in ("sync", "async"):
        bare = times.get(f"{mode} pass-through: {BARE}")
        for job in _JOB_ORDER:
            floor_name = (
                f"{mode} {job}: {RAISE}"
                if job == "rejection"
                else (f"{mode} pass-through: {WRAPS}")
            )
            floor = times.get(floor_name)
            ours = times.get(f"{mode} {job}: resilient")
            for c in _rows(cases, times, mode, job):
                t = times[c.name]
                lib = f"**{c.lib}**" if c.lib.startswith("resilient") else c.lib
                over = _ns(t - bare) if bare is not None and job != "rejection" else ""
                xf = _times_x(t / floor) if floor else ""
                xr = _times_x(t / ours) if ours and not c.lib.startswith("floor") else ""
                lines.append(
                    f"| {mode} {_JOB_TITLE[job]} | {lib} | {_ns(t)} | {over} | {xf} | {xr} |"
                )
    return lines


OBSERVERS = {
    "by metrics": "a `MetricsCollector`, the Prometheus exporter and the OpenTelemetry"
    " exporter, subscribed process-wide",
    "elsewhere": "a no-op listener on another breaker",
    "per call": "a listener of its own, appending each event to a bounded deque",
    "by Prometheus": "its `PrometheusOnRetryHook` active (it runs when a retry is scheduled)",
    "by a listener": "a `CircuitBreakerListener` recording each call and success",
}


def observed_table(cases: Sequence[Case], times: Times) -> list[str]:
    """Each observed case next to the same call unobserved, measured in the same run."""
    observed = [c for c in cases if c.observer and c.name in times]
    if not observed:
        return []
    lines = [
        "| job | library | watched by | ns per call | unobserved, ns | x unobserved |",
        "|---|---|---|--:|--:|--:|",
    ]
    for c in sorted(observed, key=lambda c: (c.mode, _JOB_ORDER.index(c.job), c.lib)):
        t = times[c.name]
        base = times.get(c.baseline or "")
        lib = f"**{c.lib}**" if c.lib.startswith("resilient") else c.lib
        watcher = OBSERVERS.get(c.observer or "", c.observer)
        lines.append(
            f"| {c.mode} {_JOB_TITLE[c.job]} | {lib} | {watcher} | {_ns(t)} "
            f"| {_ns(base) if base else ''} | {_times_x(t / base) if base else ''} |"
        )
    return lines


def options_table(cases: Sequence[Case], times: Times) -> list[str]:
    """A closed breaker configured with each option, next to the plain one."""
    found = [c for c in cases if c.mode == "option" and c.name in times]
    if not found:
        return []
    plain = times.get("sync circuit breaker: resilient")
    lines = ["| closed breaker (sync) with | ns per call | x plain breaker |", "|---|--:|--:|"]
    for c in found:
        t = times[c.name]
        lines.append(f"| {c.lib} | {_ns(t)} | {_times_x(t / plain) if plain else ''} |")
    return [*lines, ""]


def scaling_tables(cases: Sequence[Case], times: Times) -> list[str]:
    lines: list[str] = []
    windowed = [c for c in cases if c.mode == "window" and c.name in times]
    if windowed:
        lines += [
            "| window | size | ns per call |",
            "|---|--:|--:|",
        ]
        lines += [f"| {c.job} | {c.lib} | {_ns(times[c.name])} |" for c in windowed]
        lines.append("")
    threaded = [c for c in cases if c.mode == "threads" and c.name in times]
    if threaded:
        lines += [
            "| one breaker, called from | ns per call | throughput vs 1 thread |",
            "|---|--:|--:|",
        ]
        for c in threaded:
            single = times.get(c.name.replace("2 threads", "1 thread"))
            rel = f"{single / times[c.name]:.2f}x" if single else ""
            lines.append(f"| {c.lib} | {_ns(times[c.name])} | {rel} |")
        lines.append("")
    return lines


def memory_table(memory: Sequence[tuple[str, float | None]]) -> list[str]:
    lines = ["| breaker | bytes per breaker |", "|---|--:|"]
    lines += [f"| {label} | {b:,.0f} |" for label, b in memory if b is not None]
    return lines


def target_table(cases: Sequence[Case], times: Times, extra: dict[str, float]) -> list[str]:
    return _target_rows(_all_targets(cases), times, extra)


def _target_rows(found: Sequence[Target], times: Times, extra: dict[str, float]) -> list[str]:
    lines = ["| target | measured | goal | |", "|---|--:|--:|---|"]
    for target in found:
        value, ok = target.check(times, extra)
        goal = ("≤ " if target.at_most else "≥ ") + (
            f"{target.limit:g}{target.unit}" if target.unit != " B" else f"{target.limit:,.0f} B"
        )
        if value is None:
            shown, verdict = "not measured", ""
        else:
            shown = f"{value:,.0f} B" if target.unit == " B" else f"{value:.2f}{target.unit}"
            if ok:
                verdict = "met"
            else:
                miss = value / target.limit if target.at_most else target.limit / value
                verdict = f"**missed** by {(miss - 1) * 100:.0f} %"
        lines.append(f"| {target.what} | {shown} | {goal} | {verdict} |")
    return lines


IMPORT_TIME = "## Import time"
IMPORT_LIMIT_MS = 60.0
IMPORT_LIMIT_RATIO = 1.3


def _import_ms(code: str) -> str:
    return f"import: {code}"


def import_targets() -> list[Target]:
    """What ``import resilient`` may cost: read from ``extra`` (milliseconds)."""

    def ratio(times: Times, extra: dict[str, float]) -> float | None:
        ours, theirs = extra.get(_import_ms("import resilient")), extra.get(_import_ms(BASELINE))
        return ours / theirs if ours is not None and theirs else None

    return [
        Target(
            "`import resilient`",
            IMPORT_LIMIT_MS,
            True,
            _extra(_import_ms("import resilient")),
            " ms",
        ),
        Target(f"`import resilient` / `{BASELINE}`", IMPORT_LIMIT_RATIO, True, ratio),
    ]


def import_section(
    found: Sequence[ImportTime],
    meta: dict[str, str] | None = None,
    skipped: dict[str, str] | None = None,
) -> list[str]:
    """The import times as a section of results.md (empty when none were
    measured); ``skipped``: the statements not measured, and why."""
    if not found:
        return []
    runs, warmups = found[0].runs, found[0].warmups
    base = next((t.best for t in found if t.statement.key == BASELINE), None)
    extra = {_import_ms(t.statement.key): t.best * 1e3 for t in found}
    warmed = (
        f"after {warmups} warm-up run{'s' if warmups > 1 else ''} writing the `.pyc` files"
        if warmups
        else "without a warm-up"
    )
    lines = [
        IMPORT_TIME,
        "",
        *[f"- {key}: {value}" for key, value in (meta or {}).items()],
        *([""] if meta else []),
        "Each statement in a fresh process (`python -S -c`, the checkout and",
        "site-packages put on `sys.path` by hand), timed with `perf_counter` around",
        "the statement alone: interpreter start-up is left out. The statements take",
        f"turns: {runs} timed run{'s' if runs > 1 else ''} each, {warmed}.",
        "ms is the fastest run, median ms the median; x stamina divides ms by",
        f"`{BASELINE}`'s.",
        "",
        *_target_rows(import_targets(), {}, extra),
        "",
        "| import | ms | median ms | modules loaded | x stamina |",
        "|---|--:|--:|--:|--:|",
    ]
    for t in found:
        code = f"`{t.statement.code}`"
        if any(word.split(".")[0] == "resilient" for word in t.statement.code.split()):
            code = f"**{code}**"
        if t.statement.setup:
            code += f" after `{t.statement.setup}`"
        if t.statement.note:
            code += f" ({t.statement.note})"
        ratio = _times_x(t.best / base) if base else ""
        lines.append(
            f"| {code} | {t.best * 1e3:.1f} | {t.median * 1e3:.1f} | {t.modules} | {ratio} |"
        )
    if skipped:
        lines += ["", *[f"- not measured: `{name}`: {why}" for name, why in skipped.items()]]
    return [*lines, ""]


def splice_section(text: str, title: str, section: str) -> str:
    """``text`` with its section ``title`` (a ``## `` heading, up to the next
    one) replaced by ``section``; appended when ``text`` has none."""
    lines = text.split("\n")
    if title not in lines:
        return text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    replaced = section.strip("\n").split("\n") if section.strip() else []
    after = lines[end:]
    return "\n".join([*lines[:start], *replaced, *([""] if replaced and after else []), *after])


def drop_section(text: str, title: str) -> str:
    """``text`` without its section ``title``."""
    return splice_section(text, title, "") if title in text.split("\n") else text


def overhead_chart(cases: Sequence[Case], times: Times) -> str:
    groups: list[tuple[str, list[Bar]]] = []
    for mode in ("sync", "async"):
        for job in _JOB_ORDER:
            rows = _rows(cases, times, mode, job)
            if job == "pass-through" or not rows:
                continue
            floor = (
                f"{mode} {job}: {RAISE}" if job == "rejection" else f"{mode} pass-through: {WRAPS}"
            )
            bars: list[Bar] = []
            if floor in times and job != "rejection":
                bars.append(("floor: functools.wraps", times[floor] * 1e9, False))
            bars += [(c.lib, times[c.name] * 1e9, c.lib.startswith("resilient")) for c in rows]
            groups.append((f"{mode}: {_JOB_TITLE[job]}", bars))
    return bar_chart("Time per call (lower is better)", groups, log=True)


def scaling_chart(cases: Sequence[Case], times: Times) -> str:
    groups: list[tuple[str, list[Bar]]] = []
    for job in ("count window", "time window"):
        bars = [
            (c.lib, times[c.name] * 1e9, True)
            for c in cases
            if c.mode == "window" and c.job == job and c.name in times
        ]
        if bars:
            groups.append((f"{job}: one call in 16 fails", bars))
    return bar_chart("Cost per call against window size (flat is good)", groups)


def write(
    out: Path,
    cases: Sequence[Case],
    times: Times,
    *,
    skipped: dict[str, str],
    memory: Sequence[tuple[str, float | None]],
    meta: dict[str, str],
    extra: dict[str, float] | None = None,
    imports: Sequence[ImportTime] = (),
    import_meta: dict[str, str] | None = None,
    import_skipped: dict[str, str] | None = None,
) -> str:
    """Write results.md and the charts into ``out``; return the markdown.
    ``extra``: what targets read besides the timings (``Case.extra``);
    ``imports``: the import times, a section of their own (with its
    ``import_meta`` and the statements ``import_skipped``)."""
    out.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    ours = [
        b
        for label, b in memory
        if label.startswith("resilient")
        and label not in (DAY_WINDOW, DAY_TRAFFIC, DAY_TRAFFIC_OBSERVED)
        and b is not None
    ]
    if ours:
        extra["memory"] = max(ours)
    day = dict(memory).get(DAY_WINDOW)
    if day is not None:
        extra[DAY_MEMORY] = day
    day_of_traffic = dict(memory).get(DAY_TRAFFIC)
    if day_of_traffic is not None:
        extra[DAY_TRAFFIC_MEMORY] = day_of_traffic
    (out / "overhead.svg").write_text(overhead_chart(cases, times))
    (out / "windows.svg").write_text(scaling_chart(cases, times))
    observed = observed_table(cases, times)
    if observed:
        observed = [
            "## Observed",
            "",
            "The same calls while something watches them, measured in the same run;",
            "x unobserved divides by the call with nobody watching.",
            "",
            *observed,
            "",
        ]
    lines = [
        "# Benchmark results",
        "",
        *[f"- {key}: {value}" for key, value in meta.items()],
        "",
        "## Targets",
        "",
        *target_table(cases, times, extra),
        "",
        "## Time per call",
        "",
        "Overhead is the time per call minus a bare call's; x floor divides by the",
        "functools.wraps pass-through (for rejections: a function that raises, caught",
        "by its caller); x resilient divides by resilient doing the same job.",
        "",
        "![time per call](overhead.svg)",
        "",
        *overhead_table(cases, times),
        "",
        *observed,
        *(
            ["## Breaker options", "", *options_table(cases, times)]
            if options_table(cases, times)
            else []
        ),
        "## Scaling",
        "",
        "![cost per call against window size](windows.svg)",
        "",
        *scaling_tables(cases, times),
        "## Memory",
        "",
        *memory_table(memory),
        "",
        *import_section(imports, import_meta, import_skipped),
    ]
    if skipped:
        lines += ["## Not measured", ""]
        lines += [f"- {name}: {why}" for name, why in sorted(skipped.items())]
        lines.append("")
    text = "\n".join(lines)
    (out / "results.md").write_text(text)
    return text


def command_line() -> str:
    return " ".join(["python", "-m", "benchmarks", *sys.argv[1:]])
