"""Printing for the CLI: errors, JSON and plain-text tables, TTY-aware."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from briotui.kernel.errors import BrioError


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Print ``data`` as one JSON document."""
    out = stream or sys.stdout
    out.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    out.flush()


def print_error(error: BrioError, *, as_json: bool = False) -> None:
    """Print a kernel error: as JSON on stdout with ``--json``, else title and message."""
    if as_json:
        print_json({"status": "error", "error": error.to_dict()})
        return
    print(f"error: {error.title}\n  {error.message}", file=sys.stderr)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def is_tty(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stdout) is a terminal."""
    s = stream or sys.stdout
    return bool(getattr(s, "isatty", lambda: False)())
