"""``python -m resilient breakers --redis URL list | show | force-open | force-closed |
release | reset``: the fleet's shared breakers, seen and steered from a shell."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..redis import RedisStorage, SharedBreakerInfo

__all__ = ["add_parser", "run"]

_ENV_URL = "RESILIENT_REDIS_URL"
# action: (RedisStorage method, past tense, help)
_ACTIONS = {
    "force-open": ("force_open", "forced open", "reject every call fleet-wide until released"),
    "force-closed": ("force_closed", "forced closed", "admit every call fleet-wide, never trip"),
    "release": ("release", "released", "undo a force: closed, counts cleared"),
    "reset": ("reset", "reset", "close and clear the shared counts"),
}


class Commands(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as a command
    uses it (argparse gives that type no public name)."""

    def add_parser(
        self, name: str, *, help: str | None = ..., description: str | None = ...
    ) -> argparse.ArgumentParser: ...


class _Failure(Exception):
    """Reported on stderr; the command exits with 1."""


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "breakers",
        help="list, inspect, force and reset circuit breakers shared through Redis",
        description="See and steer the circuit breakers a fleet shares through Redis.",
    )
    _common(parser, None)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every shared breaker")
    _common(listing, argparse.SUPPRESS)
    show = actions.add_parser("show", help="one breaker in detail (exit 1 if unknown)")
    _common(show, argparse.SUPPRESS)
    show.add_argument("name")
    for action, (_, _, text) in _ACTIONS.items():
        sub = actions.add_parser(action, help=text)
        _common(sub, argparse.SUPPRESS)
        sub.add_argument("name")
    parser.set_defaults(handler=run)


def _common(parser: argparse.ArgumentParser, default: Any) -> None:
    # Accepted before and after the action; the action's copy only overrides
    # when given (SUPPRESS).
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=default,
        help=f"redis://host:port/db (default: ${_ENV_URL})",
    )
    parser.add_argument(
        "--namespace", default=default, help="key prefix the fleet uses (default: resilient)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default if default is not None else False,
        help="print JSON instead of a table",
    )


def run(args: argparse.Namespace) -> int:
    try:
        storage = _connect(args.redis or os.environ.get(_ENV_URL), args.namespace)
        try:
            return _dispatch(storage, args)
        finally:
            storage.close()
    except _Failure as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _connect(url: str | None, namespace: str | None) -> RedisStorage:
    if not url:
        raise _Failure(f"no Redis URL: pass --redis redis://host:port/db or set ${_ENV_URL}")
    try:
        from ..redis import RedisStorage
    except ImportError as exc:
        raise _Failure(str(exc)) from exc
    try:
        storage = RedisStorage.from_url(url, namespace=namespace or "resilient")
    except ValueError as exc:
        raise _Failure(str(exc)) from exc
    try:
        storage.ping()
    except storage.unavailable as exc:
        storage.close()
        raise _Failure(f"cannot reach Redis at {url}: {exc}") from exc
    return storage


def _dispatch(storage: RedisStorage, args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            _list(storage.breakers(), as_json=args.json)
        elif args.action == "show":
            _show(_require(storage, args.name), as_json=args.json)
        else:
            _act(storage, args.action, args.name, as_json=args.json)
    except storage.unavailable as exc:
        raise _Failure(f"Redis failed: {exc}") from exc
    return 0


def _require(storage: RedisStorage, name: str) -> SharedBreakerInfo:
    info = storage.describe(name)
    if info is None:
        raise _Failure(
            f"no circuit breaker named {name!r} in namespace {storage.namespace!r} "
            f"(known: {', '.join(storage.names()) or 'none'})"
        )
    return info


def _act(storage: RedisStorage, action: str, name: str, *, as_json: bool) -> None:
    method, done, _ = _ACTIONS[action]
    if method in ("release", "reset"):
        _require(storage, name)  # only a force may name a breaker nobody has made
    created = getattr(storage, method)(name)
    info = _require(storage, name)
    if as_json:
        _print_json({"name": name, "action": method, "state": info.state, "created": created})
        return
    print(f"circuit breaker {name!r} {done} fleet-wide; it is now {info.state}")
    if not created and method.startswith("force"):
        print(f"no instance has created {name!r} yet: the force applies when one does")


def _list(infos: list[SharedBreakerInfo], *, as_json: bool) -> None:
    if as_json:
        _print_json([info.to_dict() for info in infos])
        return
    if not infos:
        print("no shared circuit breakers")
        return
    rows = [
        [
            info.name,
            info.state,
            _remaining(info.remaining),
            _run(info),
            str(info.instances),
            str(info.probes_in_flight),
        ]
        for info in infos
    ]
    headers = ["NAME", "STATE", "REMAINING", "FAILURES", "INSTANCES", "PROBES"]
    from ._table import print_table

    print_table(headers, rows, title="shared circuit breakers")


def _show(info: SharedBreakerInfo, *, as_json: bool) -> None:
    if as_json:
        _print_json(info.to_dict())
        return
    rows = [
        ["state", info.state],
        ["remaining", _remaining(info.remaining)],
        ["consecutive failures", _run(info)],
        ["instances in that run", str(info.failing_instances)],
        [
            "window: calls/fails/slow",
            f"{info.window_calls}, {info.window_failures}, {info.window_slow}",
        ],
        ["failing instances (window)", str(info.rate_votes)],
        ["probes in flight", str(info.probes_in_flight)],
        ["instances (last minute)", str(info.instances)],
        ["created by an instance", "yes" if info.created else "no (forced before creation)"],
        ["calls since closed", str(info.calls)],
        ["failures since closed", str(info.failures)],
        ["last transition", _when(info.changed_at)],
    ]
    from ._table import print_table

    print_table(["FIELD", "VALUE"], rows, title=f"circuit breaker {info.name!r}")


def _remaining(seconds: float) -> str:
    if math.isinf(seconds):
        return "until released"
    return f"{seconds:.1f}s" if seconds else "-"


def _run(info: SharedBreakerInfo) -> str:
    if info.failure_threshold is None:
        return str(info.consecutive_failures)
    return f"{info.consecutive_failures}/{info.failure_threshold}"


def _when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds")


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    print()
