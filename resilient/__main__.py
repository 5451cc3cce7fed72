"""``python -m resilient demo``: watch a breaker open and recover;
``python -m resilient breakers``: the fleet's shared breakers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import breakers

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resilient")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="simulate a flaky dependency behind a breaker")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--calls", type=int, default=60, help="calls to make (default 60)")
    demo.set_defaults(handler=_demo)
    breakers.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "calls", 1) < 1:
        parser.error(f"--calls must be >= 1, got {args.calls}")
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
