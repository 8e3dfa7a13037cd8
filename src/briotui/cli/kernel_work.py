"""One command's work against the project's kernel, for the CLI commands that change state.

``sessions``, ``resolve``, ``tasks`` and ``grants`` each open the project's kernel, run one
piece of async work on it and close it again, whatever happens; this module is that loop
(and the way those listings print a time), so every command does it the same way.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from briotui.cli.output import say
from briotui.kernel.kernel import Kernel
from briotui.kernel.settings import Settings
from briotui.kernel.vfs import SessionManager

T = TypeVar("T")


def say_notices(manager: SessionManager) -> None:
    """Print on stderr what opening the sessions store noticed (and what it recovered)."""
    for notice in manager.store.notices + manager.recovery_notices:
        say(f"note: {notice}", err=True)


def with_kernel(
    args: argparse.Namespace,
    work: Callable[[Kernel], Awaitable[T]],
    settings: Settings | None = None,
    *,
    notices: bool = True,
) -> T:
    """Run ``work`` against the kernel of ``args.project`` (default: the current
    folder), closing the kernel afterwards.

    Args:
        args: The command's arguments.
        work: What to do with the kernel.
        settings: The project's settings, when the command loaded them already.
        notices: Open the sessions first and print what their store noticed.

    Returns:
        What ``work`` returned.
    """

    async def main() -> T:
        kernel = Kernel(getattr(args, "project", "."), config=settings)
        try:
            if notices:
                say_notices(kernel.sessions())
            return await work(kernel)
        finally:
            await kernel.close()

    return asyncio.run(main())


def when(ts: float) -> str:
    """A timestamp as the listings show it (local time, to the minute)."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")
