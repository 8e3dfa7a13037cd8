"""Every byte the CLI shows on a terminal goes through here, sanitized.

Much of what the CLI prints was written by an agent or a model: file names and
contents, task titles, summaries, review findings, error messages that quote them.
Printed raw, such text could clear the screen, write to the clipboard (OSC 52), forge a
link (OSC 8) or reorder what the user reads (bidi overrides). So the command modules do
not call ``print`` or write to ``sys.stdout``/``sys.stderr`` themselves:

* :func:`say` prints text, passed through :func:`~briotui.kernel.text.sanitize`;
* :func:`paint` prints styled pieces (a coloured diff): each piece sanitized, the only
  escape sequences added being the SGR colours of :data:`STYLES`;
* :func:`print_json` prints exact data as JSON, which escapes every control and
  non-ASCII character, so ``--json`` output holds nothing raw either.

:func:`one_line` and :func:`reveal` (from the kernel) are for single-line fields such as
file names, where a newline or an invisible character would mislead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, TextIO

from briotui.kernel.errors import BrioError
from briotui.kernel.text import reveal, sanitize

__all__ = [
    "STYLES",
    "Style",
    "Writer",
    "is_tty",
    "one_line",
    "paint",
    "print_error",
    "print_json",
    "redraw",
    "reveal",
    "say",
    "table",
]


class Writer(Protocol):
    """Where text goes: a text stream, or anything with ``write(str)``."""

    def write(self, text: str, /) -> object:
        """Write ``text``."""


Style = Literal["bold", "dim", "add", "remove", "hunk", "mark"]

STYLES: dict[Style, str] = {
    "bold": "\x1b[1m",
    "dim": "\x1b[2m",
    "add": "\x1b[32m",
    "remove": "\x1b[31m",
    "hunk": "\x1b[36m",
    "mark": "\x1b[7;33m",
}
"""The SGR codes :func:`paint` may emit (and ``\\x1b[0m`` to reset), nothing else."""

_RESET = "\x1b[0m"
_ERASE_LINE = "\x1b[2K"


def _stream(err: bool, stream: Writer | None) -> Writer:
    if stream is not None:
        return stream
    return sys.stderr if err else sys.stdout


def _write(out: Writer, text: str, *, flush: bool = False) -> None:
    out.write(text)
    flusher = getattr(out, "flush", None) if flush else None
    if flusher is not None:
        flusher()


def say(
    *parts: object,
    err: bool = False,
    end: str = "\n",
    sep: str = " ",
    flush: bool = False,
    stream: Writer | None = None,
) -> None:
    """Print ``parts`` like ``print``, sanitized; on stderr with ``err=True``."""
    text = sep.join(str(p) for p in parts) + end
    _write(_stream(err, stream), sanitize(text), flush=flush)


def paint(
    pieces: Iterable[tuple[str, Style | None]],
    *,
    colour: bool,
    err: bool = False,
    stream: Writer | None = None,
) -> None:
    """Print styled pieces: each sanitized, coloured with :data:`STYLES` when ``colour``."""
    chunks = []
    for text, style in pieces:
        clean = sanitize(text)
        if colour and style is not None and clean.strip("\n"):
            body = clean.rstrip("\n")
            chunks.append(STYLES[style] + body + _RESET + clean[len(body) :])
        else:
            chunks.append(clean)
    _write(_stream(err, stream), "".join(chunks))


def redraw(rows: Sequence[str], drawn: int, stream: Writer) -> int:
    """Draw ``rows`` over the ``drawn`` lines last drawn on a terminal; returns the count.

    The cursor movement and line erasing are the only escapes; each row is one
    sanitized line.
    """
    text = "".join(_ERASE_LINE + one_line(row) + "\n" for row in rows)
    _write(stream, (f"\x1b[{drawn}F" if drawn else "") + text, flush=True)
    return len(rows)


def print_json(data: Any, stream: Writer | None = None) -> None:
    """Print ``data`` as one JSON document (ASCII only: every control is escaped)."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=True)
    _write(stream or sys.stdout, text + "\n", flush=True)


def print_error(error: BrioError, *, as_json: bool = False) -> None:
    """Print a kernel error: as JSON on stdout with ``--json``, else title and message."""
    if as_json:
        print_json({"status": "error", "error": error.to_dict()})
        return
    say(f"error: {error.title}\n  {error.message}", err=True)


def one_line(value: object) -> str:
    """``value`` as one sanitized line: newlines and tabs shown as spaces."""
    return sanitize(str(value)).replace("\n", " ").replace("\t", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table; every cell is one sanitized line."""
    cells = [[one_line(h) for h in headers], *[[one_line(c) for c in row] for row in rows]]
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
