"""Build progress for the terminal: a live block of lines on a TTY, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from briotui.cli.output import redraw, say
from briotui.kernel.runtime.build import BuildEvent

_LABELS = {
    "cached": "up to date",
    "building": "building…",
    "compiling": "compiling…",
    "done": "done",
    "failed": "FAILED",
}
"""What each phase says when the event does not say what is being done."""


class BuildProgress:
    """Receives build events from worker threads and shows them."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lines: dict[str, str] = {}
        self._drawn = 0
        self._lock = threading.Lock()

    def __call__(self, event: BuildEvent) -> None:
        label = f"{event.step}…" if event.step else _LABELS[event.phase]
        timing = f" ({event.elapsed_ms / 1000:.1f} s)" if event.phase in ("done", "failed") else ""
        line = f"{event.agent:<16} {label}{timing}"
        if event.error is not None:
            line += f"\n    {event.error.title}: {(event.error.message.splitlines() or [''])[0]}"
        with self._lock:
            if not self.live:
                say(line, stream=self.stream, flush=True)
                return
            self._lines[event.agent] = line
            self._redraw()

    def _redraw(self) -> None:
        rows = "\n".join(self._lines.values()).split("\n")
        self._drawn = redraw(rows, self._drawn, self.stream)
