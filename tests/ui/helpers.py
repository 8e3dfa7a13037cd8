"""Helpers for the UI tests: replies, waiting on the kernel, reading the task tree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.scripted import edit, plan
from tests.scripted import review as verdict
from textual.pilot import Pilot

from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.llm.types import Completion, CompletionRequest, DeltaCallback
from briotui.kernel.vfs.diff import file_change
from briotui.ui.app import BrioApp, make_app

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


# -- driving the real kernel into the states the snapshots show -----------------------------

ADD = "def add(a, b):\n    return a + b\n"
ADD_TYPED = "def add(a: int, b: int) -> int:\n    return a + b\n"
README = "# demo\n"
README_DOCUMENTED = "# demo\n\n`add(a, b)` adds two numbers.\n"


def hunk_id(path: str, old: str, new: str) -> str:
    """The id the kernel gives the one hunk of changing ``path`` from ``old`` to ``new``."""
    change = file_change(
        path=path,
        old_path=path,
        old=old.encode(),
        new=new.encode(),
        old_exec=False,
        new_exec=False,
    )
    assert change is not None
    [hunk] = change.hunks
    return str(hunk.id)


TYPE_HINTS = {"title": "type hints in app.py", "goal": "Add type hints to add() in app.py"}
DOCUMENT = {"title": "document add()", "goal": "Document add() in README.md"}


def two_coders(review: dict[str, Any] | None = None) -> list[ScriptedReply]:
    """A pipeline's replies: a plan of two subtasks, a Coder for each, the Reviewer."""
    return [
        plan({**TYPE_HINTS, "files": ["app.py"]}, {**DOCUMENT, "files": ["README.md"]}),
        ScriptedReply(
            edit("app.py", "def add(a, b):", "def add(a: int, b: int) -> int:"),
            agent="coder",
            match="Add type hints",
        ),
        ScriptedReply(
            edit("README.md", "# demo", "# demo\n\n`add(a, b)` adds two numbers."),
            agent="coder",
            match="Document add",
        ),
        verdict(**(review or {})),
    ]


def findings_review() -> dict[str, Any]:
    """The Reviewer's verdict with a finding on each of the two Coders' hunks."""
    return {
        "verdict": "approve",
        "findings": [
            {
                "hunk": "h-" + hunk_id("app.py", ADD, ADD_TYPED),  # as the diff tags it
                "severity": "warning",
                "message": "bool and float arguments still pass the int hint at runtime.",
                "suggestion": "Fine for now; add a test if it matters.",
            },
            {
                "hunk": "h-" + hunk_id("README.md", README, README_DOCUMENTED),
                "severity": "info",
                "message": "Says what add does.",
            },
        ],
    }


class HeldProvider:
    """A scripted provider that holds back the replies to requests containing ``hold``.

    The run stays where it is (the held agent waiting on its model) until the app
    closes, so a snapshot shows a run in progress, the same on every run.
    """

    name = "scripted"

    def __init__(self, replies: list[ScriptedReply], *, hold: str) -> None:
        self.inner = ScriptedProvider(replies)
        self.hold = hold
        self.held: list[CompletionRequest] = []

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """Answer, or wait forever (until cancelled) for a held request."""
        if any(self.hold in m.content for m in request.messages):
            self.held.append(request)
            await asyncio.Event().wait()
        return await self.inner.complete(request, on_delta)


async def request(pilot: Pilot[Any], text: str) -> None:
    """Type a request into the main screen and press Enter (the real submit path)."""
    await pilot.click("#request")
    await pilot.press(*text, "enter")
    await pilot.pause()


def subtask(app: Any, title: str) -> dict[str, Any]:
    """The task titled ``title`` ({} until it exists)."""
    return next((t for t in tasks_of(app).values() if t.get("title") == title), {})


def app_for(project: Path, provider: ScriptedProvider, config_dir: Path) -> BrioApp:
    """The app on ``project`` with ``provider``, its agents already built."""
    return make_app(project, provider=provider, config_dir=config_dir, build=False)


async def run_request(pilot: Any, text: str) -> str:
    """Submit ``text`` and wait until every task is finished; the id of its root task."""
    app: BrioApp = pilot.app
    await pilot.click("#request")
    await pilot.press(*text, "enter")
    await app.workers.wait_for_complete()
    await wait_until(pilot, lambda: finished(app))
    roots = [t for t in tasks_of(app).values() if not t.get("parent")]
    return str(sorted(roots, key=lambda t: t["created_at"])[-1]["id"])
