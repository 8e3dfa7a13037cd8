"""Helpers for the UI tests: replies, waiting on the kernel, reading the task tree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

EDIT_REPLY = (
    "app.py\n```\n<<<<<<< SEARCH\n    return a + b\n=======\n"
    "    return a + b  # the sum\n>>>>>>> REPLACE\n```\n"
)
README_REPLY = (
    "README.md\n```\n<<<<<<< SEARCH\n# demo\n=======\n# demo, edited\n>>>>>>> REPLACE\n```\n"
)


async def wait_until(pilot: Pilot[Any], check: Callable[[], bool], limit_s: float = 60.0) -> None:
    """Let the app run until ``check()`` holds (the kernel's work is not a Textual worker)."""
    steps = int(limit_s / 0.05)
    for _ in range(steps):
        if check():
            await pilot.pause()
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for the app")


def tasks_of(app: Any) -> dict[str, Any]:
    tasks: dict[str, Any] = app.mirror.get("tasks") or {}
    return tasks


def finished(app: Any) -> bool:
    roots = [t for t in tasks_of(app).values() if not t.get("parent")]
    return bool(roots) and all(t["status"] in ("done", "failed", "cancelled") for t in roots)
