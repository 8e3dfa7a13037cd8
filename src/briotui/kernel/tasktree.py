"""The typed task tree: :class:`TaskNode` records under ``/tasks`` of the state tree.

The :class:`~briotui.kernel.state.StateTree` is a generic JSON-patch engine; this module is
the one layer that knows what a task looks like there (status, progress, milestones,
usage, children) and how to cancel a subtree. Its JSON shape is the contract's ``TaskView``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import time
from typing import Final, Literal, get_args

from briotui.kernel.contract import MilestoneView, ProgressView, TaskUsageView, TaskView
from briotui.kernel.errors import StateError, StatePathError, TaskNotFound
from briotui.kernel.state import Json, StateTree

TaskStatus = Literal["pending", "running", "waiting", "done", "failed", "cancelled"]
"""Where a task is in its life."""

TASK_STATUSES: Final[frozenset[str]] = frozenset(get_args(TaskStatus))
FINISHED: Final[frozenset[str]] = frozenset({"done", "failed", "cancelled"})
"""Statuses a task does not leave by itself."""

USAGE_FIELDS: Final = ("input_tokens", "output_tokens", "cost_usd", "fuel", "wall_ms")


@dataclass(frozen=True)
class Usage:
    """What a task spent."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    fuel: int = 0
    wall_ms: float = 0.0

    def to_dict(self) -> dict[str, Json]:
        """As a JSON object."""
        return {name: getattr(self, name) for name in USAGE_FIELDS}


@dataclass(frozen=True)
class Milestone:
    """A milestone a task reached."""

    name: str
    at: float


@dataclass(frozen=True)
class TaskNode:
    """One task in the task tree, as stored under ``/tasks/<id>``."""

    id: str
    title: str
    agent: str
    parent: str | None = None
    status: TaskStatus = "pending"
    session: str | None = None
    """The session (or branch) the task works in."""
    percent: int = 0
    note: str = ""
    milestones: tuple[Milestone, ...] = ()
    usage: Usage = field(default_factory=Usage)
    children: tuple[str, ...] = ()
    created_at: float = 0.0

    def to_dict(self) -> TaskView:
        """As the JSON object stored in the tree (its shape is the contract's ``TaskView``)."""
        usage = self.usage
        return TaskView(
            id=self.id,
            title=self.title,
            agent=self.agent,
            parent=self.parent,
            status=self.status,
            session=self.session,
            progress=ProgressView(percent=self.percent, note=self.note),
            milestones=[MilestoneView(name=m.name, at=m.at) for m in self.milestones],
            usage=TaskUsageView(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=usage.cost_usd,
                fuel=usage.fuel,
                wall_ms=usage.wall_ms,
            ),
            children=list(self.children),
            created_at=self.created_at,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> TaskNode:
        """Read a task back from its JSON object."""
        progress = data.get("progress") or {}
        usage = data.get("usage") or {}
        return cls(
            id=data["id"],
            title=data.get("title", ""),
            agent=data.get("agent", ""),
            parent=data.get("parent"),
            status=data.get("status", "pending"),
            session=data.get("session"),
            percent=progress.get("percent", 0),
            note=progress.get("note", ""),
            milestones=tuple(Milestone(m["name"], m["at"]) for m in data.get("milestones", ())),
            usage=Usage(**{k: usage[k] for k in USAGE_FIELDS if k in usage}),
            children=tuple(data.get("children", ())),
            created_at=data.get("created_at", 0.0),
        )


class _Unset:
    pass


_UNSET: Final = _Unset()


class TaskTree:
    """The typed task tree over a :class:`StateTree`, under ``/tasks``.

    Args:
        state: The state tree.
        root: The key of the task map in the tree.
        clock: The time source for ``created_at`` and milestones.
    """

    def __init__(
        self, state: StateTree, *, root: str = "tasks", clock: Callable[[], float] = time
    ) -> None:
        self.state = state
        self.root = root
        self._clock = clock
        if not state.exists([root]):
            state.set([root], {})

    def _path(self, task_id: str, *rest: str) -> list[str | int]:
        return [self.root, task_id, *rest]

    def _require(self, task_id: str) -> None:
        if not self.state.exists(self._path(task_id)):
            raise TaskNotFound(f"No task {task_id!r} in the task tree.")

    def get(self, task_id: str) -> TaskNode:
        """The task ``task_id``.

        Raises:
            TaskNotFound: no such task.
        """
        data = self.state.get(self._path(task_id))
        if data is None:
            raise TaskNotFound(f"No task {task_id!r} in the task tree.")
        return TaskNode.from_dict(data)

    def ids(self) -> list[str]:
        """Every task id, in insertion order."""
        tasks = self.state.get([self.root], {})
        return list(tasks)

    def add_task(
        self,
        task_id: str,
        *,
        title: str,
        agent: str,
        parent: str | None = None,
        session: str | None = None,
        status: TaskStatus = "pending",
    ) -> TaskNode:
        """Add a task (and link it under ``parent``) in one patch.

        Raises:
            StateError: the id is taken or the status unknown.
            TaskNotFound: ``parent`` does not exist.
        """
        _check_status(status)
        node = TaskNode(
            id=task_id,
            title=title,
            agent=agent,
            parent=parent,
            status=status,
            session=session,
            created_at=self._clock(),
        )
        with self.state.batch():
            if self.state.exists(self._path(task_id)):
                raise StateError(f"Task {task_id!r} already exists; give the new task its own id.")
            if parent is not None:
                self._require(parent)
            self.state.set(self._path(task_id), node.to_dict())
            if parent is not None:
                self.state.add_to_list(self._path(parent, "children"), task_id)
        return node

    def update_task(
        self,
        task_id: str,
        *,
        title: str | _Unset = _UNSET,
        agent: str | _Unset = _UNSET,
        session: str | _Unset | None = _UNSET,
    ) -> None:
        """Change a task's title, agent or session, in one patch.

        Raises:
            TaskNotFound: no such task.
        """
        changes = {
            key: value
            for key, value in (("title", title), ("agent", agent), ("session", session))
            if not isinstance(value, _Unset)
        }
        with self.state.batch():
            self._require(task_id)
            if changes:
                self.state.merge(self._path(task_id), changes)

    def set_status(self, task_id: str, status: TaskStatus) -> None:
        """Move a task to ``status``.

        Raises:
            TaskNotFound: no such task.
            StateError: the status is unknown.
        """
        _check_status(status)
        with self.state.batch():
            self._require(task_id)
            self.state.set(self._path(task_id, "status"), status)

    def set_progress(
        self, task_id: str, percent: int, note: str = "", *, coalesce: bool = True
    ) -> None:
        """Report progress (0 to 100, clamped) with a note; coalesced by default.

        Raises:
            TaskNotFound: no such task.
        """
        percent = max(0, min(100, int(percent)))
        try:
            self.state.set(
                self._path(task_id, "progress"),
                ProgressView(percent=percent, note=note),
                coalesce=coalesce,
            )
        except StatePathError:
            raise TaskNotFound(f"No task {task_id!r} in the task tree.") from None

    def add_milestone(self, task_id: str, name: str) -> None:
        """Record that a task reached milestone ``name``.

        Raises:
            TaskNotFound: no such task.
        """
        with self.state.batch():
            self._require(task_id)
            self.state.add_to_list(
                self._path(task_id, "milestones"), MilestoneView(name=name, at=self._clock())
            )

    def add_usage(
        self,
        task_id: str,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        fuel: int = 0,
        wall_ms: float = 0.0,
        coalesce: bool = True,
    ) -> Usage:
        """Add to what a task spent; coalesced by default.

        Returns:
            The task's usage after the addition.

        Raises:
            TaskNotFound: no such task.
        """
        deltas = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
            "fuel": fuel,
            "wall_ms": wall_ms,
        }

        def add(current: Json) -> Json:
            if current is None:
                raise TaskNotFound(f"No task {task_id!r} in the task tree.")
            return {k: current.get(k, 0) + deltas[k] for k in USAGE_FIELDS}

        new = self.state.update(self._path(task_id, "usage"), add, coalesce=coalesce)
        return Usage(**new)

    def subtree(self, task_id: str) -> list[str]:
        """``task_id`` and its descendants, children before their parents.

        Raises:
            TaskNotFound: no such task.
        """
        tasks: dict[str, Json] = self.state.get([self.root], {})
        if task_id not in tasks:
            raise TaskNotFound(f"No task {task_id!r} in the task tree.")
        order: list[str] = []

        def walk(tid: str) -> None:
            for child in tasks.get(tid, {}).get("children", ()):
                if child in tasks:
                    walk(child)
            order.append(tid)

        walk(task_id)
        return order

    def cancel_subtree(self, task_id: str, *, mark: bool = False) -> list[str]:
        """The tasks to cancel for ``task_id``: it and its descendants not yet finished.

        The kernel stops their runs; with ``mark`` their status becomes "cancelled"
        here too, in one patch.

        Returns:
            Their ids, children before parents.

        Raises:
            TaskNotFound: no such task.
        """
        with self.state.batch():
            tasks: dict[str, Json] = self.state.get([self.root], {})
            ids = [t for t in self.subtree(task_id) if tasks[t].get("status") not in FINISHED]
            if mark:
                for tid in ids:
                    self.state.set(self._path(tid, "status"), "cancelled")
        return ids

    def remove_task(self, task_id: str) -> list[str]:
        """Remove a task and its descendants (and unlink it from its parent), in one patch.

        Returns:
            The removed ids.

        Raises:
            TaskNotFound: no such task.
        """
        with self.state.batch():
            ids = self.subtree(task_id)
            parent = self.state.get(self._path(task_id, "parent"))
            if parent is not None:
                children = self.state.get(self._path(parent, "children"), [])
                if task_id in children:
                    self.state.remove(self._path(parent, "children", str(children.index(task_id))))
            for tid in ids:
                self.state.remove(self._path(tid))
        return ids


def _check_status(status: str) -> None:
    if status not in TASK_STATUSES:
        raise StateError(
            f"Unknown task status {status!r}; use one of {', '.join(sorted(TASK_STATUSES))}."
        )


__all__ = [
    "FINISHED",
    "TASK_STATUSES",
    "Milestone",
    "TaskNode",
    "TaskStatus",
    "TaskTree",
    "Usage",
]
