"""The task tree over the state tree, and patch delivery and flushing on the kernel's loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import jsonpatch
import pytest

from briotui.kernel.errors import StateError, TaskNotFound
from briotui.kernel.state import StatePatch, StateTree
from briotui.kernel.tasktree import TaskTree, Usage


@pytest.fixture
def tasks() -> TaskTree:
    return TaskTree(StateTree(), clock=lambda: 42.0)


def test_add_tasks_links_children(tasks: TaskTree) -> None:
    tasks.add_task("root", title="Ship it", agent="foreman", session="s1")
    tasks.add_task("a", title="Code", agent="coder", parent="root")
    tasks.add_task("b", title="Review", agent="reviewer", parent="root")
    root = tasks.get("root")
    assert root.children == ("a", "b")
    assert root.session == "s1"
    assert root.status == "pending"
    assert tasks.get("a").parent == "root"
    assert tasks.get("a").created_at == 42.0
    assert tasks.ids() == ["root", "a", "b"]


def test_add_task_refuses_duplicates_unknown_parents_and_statuses(tasks: TaskTree) -> None:
    tasks.add_task("t", title="x", agent="coder")
    with pytest.raises(StateError, match="already exists"):
        tasks.add_task("t", title="x", agent="coder")
    with pytest.raises(TaskNotFound):
        tasks.add_task("u", title="x", agent="coder", parent="ghost")
    with pytest.raises(StateError, match="Unknown task status"):
        tasks.add_task("v", title="x", agent="coder", status="exploded")  # type: ignore[arg-type]
    assert tasks.ids() == ["t"]


def test_status_progress_milestones_usage(tasks: TaskTree) -> None:
    tasks.add_task("t", title="x", agent="coder")
    tasks.set_status("t", "running")
    tasks.set_progress("t", 140, "nearly", coalesce=False)
    tasks.add_milestone("t", "plan ready")
    tasks.add_usage("t", input_tokens=10, output_tokens=5, cost_usd=0.5)
    usage = tasks.add_usage("t", input_tokens=1, fuel=7, wall_ms=3.5)
    tasks.update_task("t", title="renamed", session="s2")
    node = tasks.get("t")
    assert node.status == "running"
    assert (node.percent, node.note) == (100, "nearly")
    assert [m.name for m in node.milestones] == ["plan ready"]
    assert usage == node.usage == Usage(11, 5, 0.5, 7, 3.5)
    assert (node.title, node.session) == ("renamed", "s2")


def test_unknown_task_is_task_not_found(tasks: TaskTree) -> None:
    for call in (
        lambda: tasks.get("nope"),
        lambda: tasks.set_status("nope", "done"),
        lambda: tasks.set_progress("nope", 1),
        lambda: tasks.add_milestone("nope", "m"),
        lambda: tasks.add_usage("nope", fuel=1),
        lambda: tasks.update_task("nope", title="x"),
        lambda: tasks.cancel_subtree("nope"),
    ):
        with pytest.raises(TaskNotFound) as caught:
            call()
        assert caught.value.wit_kind == "not-found"


def test_cancel_subtree_returns_unfinished_children_first(tasks: TaskTree) -> None:
    tasks.add_task("r", title="r", agent="foreman", status="running")
    tasks.add_task("a", title="a", agent="coder", parent="r", status="running")
    tasks.add_task("a1", title="a1", agent="coder", parent="a")
    tasks.add_task("b", title="b", agent="reviewer", parent="r", status="done")
    tasks.add_task("other", title="o", agent="coder")
    assert tasks.cancel_subtree("r") == ["a1", "a", "r"]
    assert tasks.get("a").status == "running"  # not marked unless asked
    state = tasks.state
    before = state.seq
    assert tasks.cancel_subtree("a", mark=True) == ["a1", "a"]
    assert state.seq == before + 1  # one patch
    assert tasks.get("a1").status == "cancelled"
    assert tasks.get("other").status == "pending"


def test_remove_task_unlinks_and_removes_descendants(tasks: TaskTree) -> None:
    tasks.add_task("r", title="r", agent="foreman")
    tasks.add_task("a", title="a", agent="coder", parent="r")
    tasks.add_task("a1", title="a1", agent="coder", parent="a")
    tasks.add_task("b", title="b", agent="coder", parent="r")
    assert sorted(tasks.remove_task("a")) == ["a", "a1"]
    assert tasks.ids() == ["r", "b"]
    assert tasks.get("r").children == ("b",)


def test_progress_storm_is_coalesced_into_one_patch(tasks: TaskTree) -> None:
    state = tasks.state
    tasks.add_task("t", title="x", agent="coder")
    patches: list[StatePatch] = []
    sub = state.subscribe(patches.append)
    for i in range(1000):
        tasks.set_progress("t", i % 100, f"token {i}")
        tasks.add_usage("t", output_tokens=1)
    assert patches == []  # nothing until the flush
    state.flush()
    assert len(patches) == 1
    assert len(patches[0].ops) == 2
    doc: Any = sub.snapshot.tree
    doc = jsonpatch.apply_patch(doc, patches[0].ops)
    assert doc == state.get("")
    assert tasks.get("t").usage.output_tokens == 1000


def test_a_plain_mutation_publishes_pending_coalesced_sets_first(tasks: TaskTree) -> None:
    state = tasks.state
    tasks.add_task("t", title="x", agent="coder")
    patches: list[StatePatch] = []
    sub = state.subscribe(patches.append)
    tasks.set_progress("t", 50, "half")
    tasks.remove_task("t")  # must not leave a dangling progress op behind
    state.flush()
    assert len(patches) == 1
    assert [op["op"] for op in patches[0].ops] == ["add", "remove"]
    assert jsonpatch.apply_patch(sub.snapshot.tree, patches[0].ops) == state.get("")


def test_sinks_may_not_mutate_while_delivering() -> None:
    state = StateTree()
    errors: list[Exception] = []

    def meddle(patch: StatePatch) -> None:
        try:
            state.set("/agents/x", 1)
        except StateError as exc:
            errors.append(exc)

    state.subscribe(meddle)
    state.set("/agents/a", 1)
    assert len(errors) == 1
    with pytest.raises(StateError, match="inside a batch"), state.batch():
        state.snapshot()


def test_broken_sink_does_not_break_the_tree() -> None:
    state = StateTree()

    def broken(patch: StatePatch) -> None:
        raise ValueError("boom")

    got: list[StatePatch] = []
    state.subscribe(broken)
    state.subscribe(got.append)
    state.set("/agents/a", 1)
    assert [p.seq for p in got] == [1]


async def test_loop_delivery_and_timed_flush() -> None:
    loop = asyncio.get_running_loop()
    state = StateTree(loop=loop, flush_interval_s=0.01)
    tasks = TaskTree(state)
    got: list[StatePatch] = []
    threads: list[int] = []
    arrived = asyncio.Event()

    def sink(patch: StatePatch) -> None:
        threads.append(threading.get_ident())
        got.append(patch)
        if tasks.get("t").percent == 99 and patch.ops[-1]["path"].endswith("progress"):
            arrived.set()

    sub = state.subscribe(sink, loop=loop)
    tasks.add_task("t", title="x", agent="coder")

    def report() -> None:  # an agent worker thread
        for i in range(100):
            tasks.set_progress("t", i, "")

    await asyncio.to_thread(report)
    await asyncio.wait_for(arrived.wait(), 10)
    assert set(threads) == {threading.get_ident()}
    assert [p.seq for p in got] == list(range(1, len(got) + 1))
    doc: Any = sub.snapshot.tree
    for patch in got:
        doc = jsonpatch.apply_patch(doc, patch.ops)
    assert doc == state.get("")
    assert len(got) < 100  # coalesced
    sub.close()
    state.set("/agents/a", 1)
    await asyncio.sleep(0.02)
    assert got[-1].seq == state.seq - 1
