"""``python -m resilient demo``: watch with_resilience protect callers from a
failing dependency; ``python -m resilient breakers``: the fleet's shared breakers;
``python -m resilient --version``: the installed version."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    import argparse

__all__ = ["main"]

VERSION = f"resilient {__version__}"


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    # The demo and the CLI load here, when a command is parsed: --version
    # alone needs neither.
    import argparse

    from ._demo import add_arguments as add_demo_arguments
    from ._demo import validate as validate_demo
    from .cli import breakers

    parser = argparse.ArgumentParser(prog="python -m resilient")
    parser.add_argument("--version", action="version", version=VERSION)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="watch with_resilience protect callers from a failing dependency"
    )
    add_demo_arguments(demo)
    demo.set_defaults(handler=_demo, validate=lambda a, _: validate_demo(a, demo))
    breakers.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        # What the parser would print, without building it.
        print(VERSION)
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "validate", None)
    if check is not None:
        check(args, parser)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
