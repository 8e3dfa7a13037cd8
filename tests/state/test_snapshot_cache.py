"""Late joiners share one serialized snapshot per sequence number, never one tree."""

from __future__ import annotations

from briotui.kernel.state import StateTree


def test_each_late_joiner_gets_its_own_copy_of_a_shared_snapshot() -> None:
    state = StateTree()
    state.set("/tasks/t1", {"status": "running", "milestones": []})
    first = state.subscribe(lambda patch: None).snapshot
    second = state.subscribe(lambda patch: None).snapshot
    assert first.seq == second.seq == state.seq
    first.tree["tasks"]["t1"]["status"] = "scribbled"  # a front end applying patches
    first.tree["tasks"]["t1"]["milestones"].append("x")
    assert second.tree["tasks"]["t1"] == {"status": "running", "milestones": []}
    assert state.snapshot().tree["tasks"]["t1"] == {"status": "running", "milestones": []}


def test_a_snapshot_after_a_change_is_not_the_cached_one() -> None:
    state = StateTree()
    state.set("/tasks/t1", {"status": "running"})
    before = state.snapshot()
    state.set("/tasks/t1/status", "done")
    state.set("/usage/cost", 1.5, coalesce=True)  # pending until flushed: snapshot flushes
    after = state.snapshot()
    assert after.seq > before.seq
    assert after.tree["tasks"]["t1"]["status"] == "done"
    assert after.tree["usage"]["cost"] == 1.5
    assert before.tree["tasks"]["t1"]["status"] == "running"
