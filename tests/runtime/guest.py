"""Calling host imports as a guest's worker thread calls them (bound to its call context)."""

from __future__ import annotations

import threading
from typing import Any

from briotui.kernel.runtime import context as ctxmod
from briotui.kernel.runtime.context import CallContext


def in_thread(ctx: CallContext, fn: Any, *args: Any, limit_s: float = 30.0) -> Any:
    """``fn(ctx, *args)`` on a new thread bound to ``ctx``; what it returned."""
    out: list[Any] = []

    def run() -> None:
        ctxmod.bind_thread(ctx)
        out.append(fn(ctx, *args))

    t = threading.Thread(target=run)
    t.start()
    t.join(limit_s)
    return out[0]
