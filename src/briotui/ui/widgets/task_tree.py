"""The live task tree: one node per task, with status, agent, progress and usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from briotui.kernel.contract import TaskView
from briotui.kernel.text import sanitize
from briotui.ui.format import STATUS_ICONS, usage_line

_STATUS_STYLE = {
    "pending": "dim",
    "running": "bold $accent",
    "waiting": "$warning",
    "done": "$success",
    "failed": "bold $error",
    "cancelled": "dim",
}


def themed(style: str, variables: dict[str, str]) -> str:
    """A Rich style with Textual theme variables (``$accent``) replaced by their colours."""
    return " ".join(
        variables.get(word[1:], "default") if word.startswith("$") else word
        for word in style.split()
    )


def task_label(node: TaskView, variables: dict[str, str], *, width: int = 60) -> Text:
    """The label of one task: icon, title, agent, progress, milestones and usage."""
    status = node["status"]
    kind = (node.get("outcome") or {}).get("kind", "")
    if status == "done" and kind in ("failed", "tests-failed"):
        status = "failed"  # a request that ran to its end but changed nothing, or failed its tests
    elif status == "done" and kind == "partial":
        status = "waiting"  # some subtasks failed, or conflicts wait for you
    title = sanitize(node["title"]).replace("\n", " ")
    if len(title) > width:
        title = title[: width - 1] + "…"
    label = Text()
    label.append(
        STATUS_ICONS.get(status, "?") + " ", style=themed(_STATUS_STYLE.get(status, ""), variables)
    )
    label.append(title, style="bold" if status == "running" else "")
    label.append(f"  {sanitize(node['agent'])}", style="italic dim")
    progress = node["progress"]
    percent = progress["percent"]
    if status == "running" and percent:
        label.append(f" {percent}%", style=themed("$accent", variables))
    note = sanitize(progress["note"]).replace("\n", " ")
    milestones = node["milestones"]
    if milestones:
        label.append(
            f" ◆ {sanitize(milestones[-1]['name'])}",
            style=themed("$secondary", variables),
        )
    elif note and status in ("running", "waiting", "failed"):
        label.append(f" {note[:40]}", style="dim")
    usage = usage_line(dict(node["usage"]))
    if usage:
        label.append(f"  {usage}", style="dim")
    return label


class TaskTreeView(Tree[str]):
    """The task tree, redrawn from ``/tasks`` without losing the cursor or expansion."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="tree-down", tooltip="Next task"),
        Binding("k", "cursor_up", "Up", show=False, id="tree-up", tooltip="Previous task"),
    ]

    class TaskSelected(Message):
        """The user moved to a task."""

        def __init__(self, task_id: str) -> None:
            self.task_id = task_id
            super().__init__()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("tasks", id=id)
        self.show_root = False
        self.guide_depth = 2
        self._task_nodes: dict[str, TreeNode[str]] = {}

    def show_tasks(self, tasks: Mapping[str, TaskView]) -> None:
        """Bring the tree in line with ``tasks`` (the ``/tasks`` map)."""
        for task_id in [t for t in self._task_nodes if t not in tasks]:
            node = self._task_nodes.pop(task_id)
            if node.tree is self and node.parent is not None:
                node.remove()
        variables = self.app.theme_variables

        def key(task: TaskView) -> tuple[float, str]:
            return (task["created_at"], task["id"])

        ordered = sorted(tasks.values(), key=key)
        for data in ordered:
            task_id = data["id"]
            label = task_label(data, variables)
            existing = self._task_nodes.get(task_id)
            if existing is not None:
                existing.set_label(label)
                continue
            parent_id = data["parent"]
            parent = self._task_nodes.get(parent_id) if parent_id else None
            under = parent if parent is not None else self.root
            # siblings stay in creation order however their updates arrived (subtasks
            # coded in parallel publish in any order); they are kept sorted, so a task
            # newer than the last sibling (all of them, at start) goes at the end at once
            children = under.children
            last = children[-1].data if children else None
            later = None
            if last is not None and (last not in tasks or key(tasks[last]) > key(data)):
                later = next(
                    (
                        child
                        for child in children
                        if child.data is not None
                        and child.data in tasks
                        and key(tasks[child.data]) > key(data)
                    ),
                    None,
                )
            node = under.add(label, data=task_id, expand=True, before=later)
            node.allow_expand = True
            self._task_nodes[task_id] = node
        for node in self._task_nodes.values():
            node.allow_expand = bool(node.children)

    def select_task(self, task_id: str) -> None:
        """Move the cursor to ``task_id``."""
        node = self._task_nodes.get(task_id)
        if node is not None:
            self.move_cursor(node)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(self.TaskSelected(event.node.data))
