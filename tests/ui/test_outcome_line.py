"""A request that changed nothing is not shown as done (the real kernel, the real app)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.scripted import plan
from tests.scripted import review as verdict
from textual.widgets.tree import TreeNode

from briotui.cli.main import main
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.ui.widgets.task_tree import TaskTreeView

from .helpers import app_for, run_request, tasks_of, wait_until

pytestmark = pytest.mark.slow

NO_MATCH = (
    "app.py\n```\n<<<<<<< SEARCH\nthis line is not in app.py\n=======\nx = 1\n"
    ">>>>>>> REPLACE\n```\n"
)


def _label(node: TreeNode[Any], task_id: str) -> str:
    for child in node.children:
        if str(child.data) == task_id:
            return str(child.label)
    raise AssertionError(f"no row for {task_id}")


async def test_a_pipeline_that_changed_nothing_is_not_shown_as_done(
    project: Path,
    built_agents: list[str],
    config_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Observed: "✔ Done. 0 of 2 subtask(s) coded; nothing was changed; failed: ..." closed
    # the conversation, and the request's row had the done tick.
    replies = [
        plan({"title": "comment add()", "goal": "Comment add() in app.py", "files": ["app.py"]}),
        *[ScriptedReply(NO_MATCH, agent="coder") for _ in range(12)],
        verdict(),
    ]
    app = app_for(project, ScriptedProvider(replies), config_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        task_id = await run_request(pilot, "comment add")
        task = tasks_of(app)[task_id]
        assert task["outcome"]["kind"] == "failed"
        text = app.transcript(task_id)
        assert "nothing was changed" in text
        assert "✔ Done." not in text
        assert "✘ Nothing was changed." in text
        tree = app.screen.query_one("#tasks", TaskTreeView)
        assert _label(tree.root, task_id).startswith("✘")
    # after a restart the restored row still says how the request ended, and so does the CLI
    again = app_for(project, ScriptedProvider([]), config_dir)
    async with again.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: task_id in tasks_of(again))
        assert tasks_of(again)[task_id]["outcome"]["kind"] == "failed"
        tree = again.screen.query_one("#tasks", TaskTreeView)
        await wait_until(pilot, lambda: _has_row(tree.root, task_id))
        assert _label(tree.root, task_id).startswith("✘")
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["-C", str(project), "tasks", "list"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if task_id in line]
    assert row.split()[1] == "failed"


def _has_row(node: TreeNode[Any], task_id: str) -> bool:
    return any(str(child.data) == task_id for child in node.children)
