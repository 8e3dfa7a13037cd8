"""Measuring the state tree's patch stream, for ``briotui bench`` (never in tests).

No target is set for most of it; the figures say how fast mutations become patches, how
much coalescing saves, and what a late subscriber pays for its snapshot.
"""

from __future__ import annotations

import json
import statistics
import time

from briotui.devtools.bench.measure import Measure
from briotui.kernel.state import StatePatch, StateTree
from briotui.kernel.tasktree import TaskTree

SNAPSHOT_TASKS = 1000
"""Tasks in the tree a late subscriber snapshots."""


def _big_tree(n: int) -> TaskTree:
    tasks = TaskTree(StateTree())
    for i in range(n):
        parent = None if i < 10 else f"t{i % 10}"
        tasks.add_task(f"t{i}", title=f"task {i}", agent="coder", parent=parent)
        tasks.add_milestone(f"t{i}", "planned")
        tasks.add_usage(f"t{i}", input_tokens=100, output_tokens=50, cost_usd=0.01, coalesce=False)
    return tasks


def bench_state(*, mutations: int = 50_000) -> list[Measure]:
    """Measure patch publication, coalesced updates and late-join snapshots.

    Args:
        mutations: Mutations per rate measurement.

    Returns:
        One :class:`Measure` per figure.
    """
    tasks = _big_tree(SNAPSHOT_TASKS)
    state = tasks.state
    samples: list[float] = []
    for _ in range(20):
        t0 = time.perf_counter()
        sub = state.subscribe(lambda patch: None)
        samples.append(time.perf_counter() - t0)
        sub.close()
    snapshot_ms = statistics.median(samples) * 1000

    misses: list[float] = []  # a patch in between: the snapshot is serialized anew
    copies: list[float] = []  # the peer: a JSON deep copy of the same tree
    for i in range(20):
        state.set("/tasks/t1/progress/percent", i)
        t0 = time.perf_counter()
        sub = state.subscribe(lambda patch: None)
        misses.append(time.perf_counter() - t0)
        sub.close()
        t0 = time.perf_counter()
        json.loads(json.dumps(state._tree))
        copies.append(time.perf_counter() - t0)
    miss_ms = statistics.median(misses) * 1000
    copy_ms = statistics.median(copies) * 1000

    received: list[StatePatch] = []
    state.subscribe(received.append)

    t0 = time.perf_counter()
    for i in range(mutations):
        state.set("/tasks/t5/progress/percent", i % 100)
    published = mutations / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for i in range(mutations // 10):
        with state.batch():
            state.set("/tasks/t5/status", "running")
            state.set("/tasks/t5/progress/note", f"step {i}")
            state.add_to_list("/tasks/t5/milestones", {"name": f"m{i}", "at": 0.0})
    batched = (mutations // 10) / (time.perf_counter() - t0)

    before = len(received)
    t0 = time.perf_counter()
    for i in range(mutations):
        tasks.set_progress("t6", i % 100, "working")
    state.flush()
    coalesced = mutations / (time.perf_counter() - t0)
    storm_patches = len(received) - before

    return [
        Measure(
            "state patch publication",
            published,
            "patch/s",
            None,
            "higher",
            "state.set of one value, one patch each, one subscriber, "
            f"in a tree of {SNAPSHOT_TASKS} tasks",
        ),
        Measure(
            "state batched patch publication",
            batched,
            "patch/s",
            None,
            "higher",
            "with state.batch(): three operations in one patch",
        ),
        Measure(
            "state coalesced progress updates",
            coalesced,
            "update/s",
            None,
            "higher",
            f"{mutations} TaskTree.set_progress calls became {storm_patches} patch(es)",
        ),
        Measure(
            "state late-join snapshot",
            snapshot_ms,
            "ms",
            16.0,
            "lower",
            f"median of 20 subscribe() snapshots of {SNAPSHOT_TASKS} tasks at one seq "
            "(target: one frame at 60 fps)",
            peer="JSON deep copy",
            peer_value=copy_ms,
        ),
        Measure(
            "state late-join snapshot after a patch",
            miss_ms,
            "ms",
            16.0,
            "lower",
            f"subscribe() right after a change (serialized anew), {SNAPSHOT_TASKS} tasks",
            peer="JSON deep copy",
            peer_value=copy_ms,
        ),
    ]


__all__ = ["SNAPSHOT_TASKS", "bench_state"]
