"""The task tree keeps siblings in creation order, and a long history (every task a
project ever ran is shown at start) is laid out at once, not sibling by sibling."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from briotui.kernel.contract import TaskView
from briotui.kernel.tasktree import TaskNode
from briotui.ui.widgets.task_tree import TaskTreeView


class TreeApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TaskTreeView(id="tasks")


def task(n: int, created_at: float, parent: str | None = None) -> TaskView:
    return TaskNode(id=f"t{n}", title=f"task {n}", agent="coder", parent=parent,
                    created_at=created_at).to_dict()  # fmt: skip


def ids(nodes: Any) -> list[str]:
    return [str(node.data) for node in nodes]


async def test_siblings_stay_in_creation_order_however_they_arrive() -> None:
    app = TreeApp()
    async with app.run_test():
        tree = app.query_one(TaskTreeView)
        history = {t["id"]: t for t in (task(n, float(n)) for n in range(1, 501))}
        tree.show_tasks(history)  # the start: 500 tasks, oldest first
        assert ids(tree.root.children) == [f"t{n}" for n in range(1, 501)]
        late = {**history, "t0": task(0, 0.5), "t900": task(900, 900.0)}
        tree.show_tasks(late)  # one older than all (published late), one new
        assert ids(tree.root.children)[:2] == ["t0", "t1"]
        assert ids(tree.root.children)[-1] == "t900"
        second = {**late, "t1002": task(1002, 902.0, "t900")}
        tree.show_tasks(second)  # subtasks coded in parallel publish in any order
        tree.show_tasks({**second, "t1001": task(1001, 901.0, "t900")})
        [parent] = [n for n in tree.root.children if n.data == "t900"]
        assert ids(parent.children) == ["t1001", "t1002"]
