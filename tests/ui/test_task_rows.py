"""An ``@agent`` request is one row of the task tree (the real kernel, the real app)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets.tree import TreeNode

from briotui.kernel.llm.scripted import ScriptedProvider
from briotui.ui.widgets.task_tree import TaskTreeView

from .helpers import EDIT_REPLY, app_for, run_request, tasks_of

pytestmark = pytest.mark.slow

Scripted = Callable[..., ScriptedProvider]


def _rows(node: TreeNode[Any]) -> list[str]:
    out: list[str] = []
    for child in node.children:
        out.append(str(child.data))
        out += _rows(child)
    return out


async def test_an_agent_request_is_one_task_row(
    project: Path, built_agents: list[str], scripted: Scripted, config_dir: Path
) -> None:
    # Observed: `@coder ...` showed two identical rows, the request and, under it, the
    # one agent run that is the request.
    app = app_for(project, scripted(EDIT_REPLY), config_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        task_id = await run_request(pilot, "@coder add a comment")
        tasks = tasks_of(app)
        assert list(tasks) == [task_id]
        task = tasks[task_id]
        assert (task["status"], task["agent"], task["children"]) == ("done", "coder", [])
        assert task["usage"]["fuel"] > 0  # the run's usage is the request's
        tree = app.screen.query_one("#tasks", TaskTreeView)
        assert _rows(tree.root) == [task_id]
        assert "the sum" in app.transcript(task_id)
