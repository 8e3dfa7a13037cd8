"""Work interrupted by a quit is shown on the next start and can be resumed or discarded:
a real first Kernel leaves a task running, the real app over the same project (its own,
second Kernel) offers it, and resumes or discards it through the kernel; a task with run
journals resumes from them (no model request again for the steps it had done)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.scripted import FILES, Recording, repo, sub_and_whisper

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.ui.screens.dialogs import InterruptedOffer
from briotui.ui.screens.sessions import SessionsScreen

from .helpers import EDIT_REPLY, app_for, tasks_of, wait_until

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]

GOAL = "Add sub to calc.py and whisper to text.py"


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
        assert isinstance(app.screen, InterruptedOffer)  # offered on start
        # Observed: keys typed for a request as the dialog opened chose for it ("d"
        # discarded the interrupted session, "r" resumed it). Early keys are ignored.
        await pilot.press(*"add docs", "r")
        await pilot.pause()
        assert isinstance(app.screen, InterruptedOffer)
        assert session_id in app.mirror["sessions"]
        assert all(t["status"] != "running" for t in tasks_of(app).values())
        await pilot.pause(InterruptedOffer.GUARD_S)
        await pilot.press("l")  # later: it stays offered (f5/f8)
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
        await pilot.press("escape")  # the offer on start: later
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


async def test_quit_with_a_task_running_start_again_and_resume_it_from_its_journal(
    tmp_path: Path, built_agents: list[str], config_dir: Path
) -> None:
    project = repo(tmp_path / "proj", FILES, config=None)
    first = Recording(sub_and_whisper(delay_ms=60_000))
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit(GOAL, provider=first)
        for _ in range(4800):  # the plan is in, both Coders wait for the model
            if len(first.asked_by("coder")) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(first.asked_by("coder")) == 2
    finally:
        await kernel.close()  # the quit, with the task running
    again = Recording(sub_and_whisper()[1:])
    app = app_for(project, again, config_dir)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, InterruptedOffer)
        assert task_id in str(app.screen.query_one("#interrupted-text").render())
        await pilot.pause(InterruptedOffer.GUARD_S)  # a choice made as it opens is ignored
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await wait_until(
            pilot,
            lambda: any(
                t["status"] == "done" and not t.get("parent") and t["id"] != task_id
                for t in tasks_of(app).values()
            ),
        )
        assert again.asked_by("council") == []  # its plan was replayed from the journal
        assert len(again.asked_by("coder")) == 2
        assert any("journal" in n.message for n in app._notifications)
