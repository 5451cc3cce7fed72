"""Tables for the terminal: rich when the ``cli`` extra is installed, plain text otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["print_table"]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str = "") -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _plain(headers, rows)
        return
    table = Table(*headers, title=title or None)
    for row in rows:
        table.add_row(*row)
    Console(file=sys.stdout).print(table)


def _plain(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for line in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
