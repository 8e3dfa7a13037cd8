"""Per-instance memory is attributed to the right instance whatever its neighbours do.

The runtime finds each instance's linear memory among the process's mappings. Two
instances made one after the other get adjacent address ranges, and the kernel merges
adjacent inaccessible mappings; when a neighbour goes away, the merged mapping changes.
An instance's memory must still be measured (it read 0 for the rest of its life, so a
running agent showed no memory in the TUI while the pool refilled around it).
"""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.instance import AgentInstance, AgentTask

pytestmark = pytest.mark.slow


async def _gone(instance: AgentInstance) -> None:
    """Wait until a discarded instance's thread has released its store."""
    for _ in range(500):
        if not any(t.name == f"agent-{instance.id}" for t in threading.enumerate()):
            gc.collect()  # its wasmtime store may wait for the collector to be freed
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{instance.id} did not end")


async def test_memory_survives_a_neighbour_going_away(kernel: Kernel) -> None:
    loaded = await kernel.load("probe")
    made = []
    for _ in range(5):
        instance = AgentInstance(loaded, loop=kernel.loop, events=kernel.events.publish)
        await instance.start()
        made.append(instance)
    for gone in made[0::2]:  # the neighbours of the others go away before they run
        gone.discard()
        await _gone(gone)
    for kept in made[1::2]:
        outcome = await kept.run(AgentTask("t", "alloc 4"))
        assert outcome.usage.peak_memory_bytes > 1 << 20, kept.id


async def test_memory_of_an_instance_made_while_another_is_torn_down(kernel: Kernel) -> None:
    loaded = await kernel.load("probe")
    events = kernel.events.publish
    for _ in range(8):  # a pool refill instantiating while the last run's instance ends
        old = AgentInstance(loaded, loop=kernel.loop, events=events)
        await old.start()
        await old.run(AgentTask("t", "alloc 1"))
        new = AgentInstance(loaded, loop=kernel.loop, events=events)
        await new.start()
        outcome = await new.run(AgentTask("t", "alloc 1"))
        assert outcome.usage.peak_memory_bytes > 1 << 20
