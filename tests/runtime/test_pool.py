"""The warm pool refills after a run, never during it (the refill is off the critical path)."""

from __future__ import annotations

import asyncio

import pytest

from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.events import AgentState, Event, StateChanged
from briotui.kernel.runtime.instance import AgentTask

pytestmark = pytest.mark.slow


async def test_no_instance_is_made_while_the_taken_one_runs(kernel: Kernel) -> None:
    pool = await kernel.pool("probe", size=1)
    seen: list[StateChanged] = []

    def watch(event: Event) -> None:
        if isinstance(event, StateChanged):
            seen.append(event)

    kernel.events.subscribe(watch)
    taken = pool.take()
    assert taken is not None
    await asyncio.sleep(0.05)  # a refill started by the hand-out would be under way
    await taken.run(AgentTask("t", "spin 100"))
    await asyncio.sleep(0)  # the run's own events are delivered on the loop
    ended = next(
        i for i, e in enumerate(seen) if e.instance == taken.id and e.state is AgentState.STOPPED
    )
    made = [e.instance for e in seen[:ended] if e.state is AgentState.READY]
    assert made == [], f"instantiated during the run: {made}"
    for _ in range(200):  # and the pool is full again soon after
        if pool.ready == 1:
            break
        await asyncio.sleep(0.01)
    assert pool.ready == 1


async def test_a_run_waits_for_a_refill_under_way_rather_than_making_another(
    kernel: Kernel,
) -> None:
    pool = await kernel.pool("probe", size=1)
    first = await pool.acquire()
    first.discard()  # the pool starts refilling
    await asyncio.sleep(0)
    second = await pool.acquire()
    assert second.state is AgentState.READY
    assert pool.ready == 0
    await second.run(AgentTask("t", "spin 1"))


async def test_closing_the_pool_during_a_refill_leaves_no_agent_thread(kernel: Kernel) -> None:
    """An instance made (or being made) while its pool closes is stopped, not left idle
    with its thread and memory for the rest of the process."""
    import threading

    def probe_threads() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith("agent-probe")}

    pool = await kernel.pool("probe", size=1)
    before = probe_threads()
    first = await pool.acquire()
    first.discard()  # the pool starts refilling
    for _ in range(5):  # until the refill's instance is starting on its thread
        await asyncio.sleep(0)
    await pool.close()  # while the refill is under way
    for _ in range(300):
        if not probe_threads() - before:
            break
        await asyncio.sleep(0.01)
    assert not probe_threads() - before, probe_threads() - before
