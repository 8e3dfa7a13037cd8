"""Cancelling a task's subtree, and finding tasks again after a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.scripted import FILES, edit, repo

from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply

pytestmark = pytest.mark.slow

PLAN = ScriptedReply(
    json.dumps(
        {"subtasks": [{"title": "slow", "goal": "Add sub(a, b) to calc.py", "files": ["calc.py"]}]}
    ),
    agent="council",
)


async def test_cancel_stops_the_whole_subtree(tmp_path: Path, built_agents: list[str]) -> None:
    project = repo(tmp_path / "proj", FILES)
    slow = ScriptedReply(edit("calc.py", "x", "y"), agent="coder", delay_ms=60_000)
    kernel = Kernel(project)
    try:
        task_id = await kernel.submit("Add sub", provider=ScriptedProvider([PLAN, slow]))
        for _ in range(500):  # wait until the coder is running (no fixed sleep)
            tasks = kernel.state.get(["tasks"])
            if any(t["agent"] == "coder" and t["status"] == "running" for t in tasks.values()):
                break
            await asyncio.sleep(0.02)
        assert kernel.cancel(task_id)
        result = await asyncio.wait_for(kernel.wait(task_id), 30)
        assert result.status in ("cancelled", "failed"), result
        statuses = {t["agent"]: t["status"] for t in kernel.state.get(["tasks"]).values()}
        assert statuses["coder"] == "cancelled"
        assert statuses["pipeline"] == "cancelled"
    finally:
        await kernel.close()


async def test_a_restart_shows_the_same_tasks_and_can_resume_or_discard(
    tmp_path: Path, built_agents: list[str]
) -> None:
    project = repo(tmp_path / "proj", FILES)
    replies = [
        PLAN,
        ScriptedReply(edit("calc.py", "    return a + b", "    return a + b  # ok"), agent="coder"),
        ScriptedReply(json.dumps({"verdict": "approve", "findings": []}), agent="reviewer"),
    ]
    first = Kernel(project)
    try:
        done = await first.wait(await first.submit("Add sub", provider=ScriptedProvider(replies)))
        # a task that was running when briotui went away
        first.recorder.task_started(
            "t-gone", agent="pipeline", goal="Half done", parent=None, session_id=done.session_id
        )
        before = {k: v["status"] for k, v in first.state.get(["tasks"]).items()}
    finally:
        await first.close()
    second = Kernel(project)
    try:
        interrupted = second.restore()
        after = {k: v["status"] for k, v in second.state.get(["tasks"]).items()}
        assert interrupted == ["t-gone"]
        assert after == {**before, "t-gone": "cancelled"}
        assert done.session_id in second.state.get(["sessions"])
        again = await second.resume(done.task_id, provider=ScriptedProvider(replies))
        assert (await second.wait(again)).status == "done"
        await second.discard_task(done.task_id)
        assert second.sessions().get(done.session_id).state != "open"
        assert done.session_id not in second.state.get(["sessions"])
    finally:
        await second.close()
