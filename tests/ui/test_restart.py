"""Work interrupted by a quit is shown on the next start and can be resumed or discarded:
a real first Kernel leaves a task running, the real app over the same project (its own,
second Kernel) shows it, and resumes or discards it through the kernel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.ui.screens.sessions import SessionsScreen

from .helpers import EDIT_REPLY, app_for, tasks_of, wait_until

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]


async def interrupted_task(project: Path) -> tuple[str, str]:
    """A first kernel: one coder task done, then one still running when it goes away."""
    first = Kernel(project)
    try:
        provider = ScriptedProvider([ScriptedReply(EDIT_REPLY, agent="coder")])
        done = await first.wait(
            await first.submit("comment the sum", agent="coder", provider=provider)
        )
        assert done.status == "done"
        first.recorder.task_started(
            "t-gone", agent="coder", goal="comment the sum", parent=None, session_id=done.session_id
        )
    finally:
        await first.close()
    return "t-gone", done.session_id


async def test_an_interrupted_task_is_shown_on_the_next_start_and_resumes(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    gone, session_id = await interrupted_task(project)
    app = app_for(project, scripted({"text": EDIT_REPLY, "agent": "coder"}), config_dir)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause()
        tasks = tasks_of(app)
        assert tasks[gone]["status"] == "cancelled"
        assert "Interrupted" in tasks[gone]["outcome"]["summary"]
        assert session_id in app.mirror["sessions"]
        assert any("interrupted" in n.message for n in app._notifications)
        tree = app.screen.query_one("#tasks")
        tree.focus()
        tree.select_task(gone)  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("f5")
        await app.workers.wait_for_complete()
        await wait_until(
            pilot,
            lambda: any(
                t["status"] == "done" and t["id"] not in (gone,) and not t.get("parent")
                for t in tasks_of(app).values()
                if t.get("created_at", 0) > tasks[gone].get("created_at", 0)
            ),
        )
        assert app.workbench.kernel.interrupted == []


async def test_the_sessions_screen_resumes_and_f8_discards(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    gone, session_id = await interrupted_task(project)
    app = app_for(project, scripted({"text": EDIT_REPLY, "agent": "coder"}), config_dir)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause()
        before = set(tasks_of(app))
        await pilot.press("ctrl+o")
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, SessionsScreen)
        await pilot.click("#sessions-resume")
        await app.workers.wait_for_complete()
        await wait_until(
            pilot,
            lambda: any(
                tasks_of(app)[t]["status"] == "done"
                for t in set(tasks_of(app)) - before
                if not tasks_of(app)[t].get("parent")
            ),
        )
        tree = app.screen.query_one("#tasks")
        tree.focus()
        tree.select_task(gone)  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("f8")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.workbench.kernel.sessions().get(session_id).state != "open"
        assert session_id not in app.mirror["sessions"]
