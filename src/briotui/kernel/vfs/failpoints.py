"""Named crash points for the commit path, so tests can SIGKILL it at exact moments.

``BRIOTUI_FAILPOINT=name:count`` makes the ``count``-th call of ``failpoint("name")``
kill the process with SIGKILL (no cleanup, no flush: the same as a power cut for
everything but the page cache). Unset, a failpoint costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "BRIOTUI_FAILPOINT"

_counts: dict[str, int] = {}
_lock = threading.Lock()


def failpoint(name: str) -> None:
    """Kill the process here if ``$BRIOTUI_FAILPOINT`` names this point and count."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        hit = _counts[name]
    if hit == int(count or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
