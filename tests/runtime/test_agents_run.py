"""Running real componentize-py agents in real wasmtime: results, usage, events, limits."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from briotui.kernel.errors import (
    AgentBusy,
    AgentCancelled,
    AgentTimeout,
    FuelExhausted,
    GuestError,
    GuestPanic,
    MemoryLimit,
    MessageTooLarge,
)
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import AgentState, Event, LogLine, ModelDelta, StateChanged
from briotui.kernel.runtime.instance import AgentInstance, AgentTask, LoadedAgent, RunFailed

pytestmark = pytest.mark.slow


async def probe_with(kernel: Kernel, **limits: Any) -> AgentInstance:
    """A started probe instance whose limits are overridden."""
    loaded: LoadedAgent = await kernel.load("probe")
    spec = replace(loaded.spec, limits=replace(loaded.spec.limits, **limits))
    instance = AgentInstance(
        replace(loaded, spec=spec), loop=kernel.loop, events=kernel.events.publish
    )
    await instance.start()
    return instance


async def fail(
    instance: AgentInstance, goal: str, bindings: RunBindings | None = None
) -> RunFailed:
    with pytest.raises(RunFailed) as caught:
        await instance.run(AgentTask("t", goal), bindings)
    return caught.value


async def test_echo_answers_through_the_scripted_provider(kernel: Kernel) -> None:
    seen: list[Event] = []
    kernel.events.subscribe(seen.append)
    provider = ScriptedProvider([ScriptedReply("Hello, world. Second sentence.")])
    outcome = await kernel.run_agent("echo", "greet me", bindings=RunBindings(provider=provider))
    assert outcome.summary == "Hello, world. Second sentence."
    assert outcome.models == (("scripted", "scripted"),)
    assert outcome.usage.tokens.output_tokens > 0
    assert outcome.usage.fuel > 0
    assert outcome.usage.host_calls >= 3
    [ran] = {
        e.instance for e in seen if isinstance(e, StateChanged) and e.state is AgentState.RUNNING
    }

    def states() -> list[AgentState]:  # of the instance that ran (the pool refills others)
        return [e.state for e in seen if isinstance(e, StateChanged) and e.instance == ran]

    for _ in range(200):  # events are delivered on the loop
        if states()[-1] is AgentState.STOPPED:
            break
        await asyncio.sleep(0.01)
    deltas = "".join(e.text for e in seen if isinstance(e, ModelDelta))
    assert deltas == outcome.summary
    assert states()[-1] is AgentState.STOPPED
    assert any(isinstance(e, LogLine) and "asking the model" in e.message for e in seen)


async def test_no_provider_is_a_clear_guest_error(kernel: Kernel) -> None:
    with pytest.raises(RunFailed) as caught:
        await kernel.run_agent("echo", "hi")
    assert isinstance(caught.value.error, GuestError)
    assert "No model provider is configured" in caught.value.error.message


async def test_stuck_agent_stops_at_its_deadline_while_another_keeps_working(
    kernel: Kernel,
) -> None:
    stuck = await probe_with(kernel, deadline_ms=400)
    worker = await probe_with(kernel, deadline_ms=20_000, fuel=10**15)
    started = time.perf_counter()
    results = await asyncio.gather(
        fail(stuck, "loop"), worker.run(AgentTask("w", "spin 800")), return_exceptions=False
    )
    failure, outcome = results
    elapsed = time.perf_counter() - started
    assert isinstance(failure.error, AgentTimeout)
    assert "400 ms deadline" in failure.error.message
    assert failure.error.title == "Agent ran out of time"
    assert outcome.summary == "spun 800 ms"
    assert elapsed < 5  # stopped, not hung (the precise figure is in `briotui bench`)
    assert failure.usage.wall_ms >= 400


async def test_fuel_exhaustion_is_typed(kernel: Kernel) -> None:
    instance = await probe_with(kernel, fuel=50_000_000)
    failure = await fail(instance, "loop")
    assert isinstance(failure.error, FuelExhausted)
    assert failure.usage.fuel >= 49_000_000


async def test_memory_limit_is_typed(kernel: Kernel) -> None:
    instance = await probe_with(kernel, memory_bytes=48 * 1024 * 1024)
    failure = await fail(instance, "alloc 200")
    assert isinstance(failure.error, MemoryLimit), failure.error
    assert "48 MiB" in failure.error.message


async def test_huge_output_is_refused(kernel: Kernel) -> None:
    instance = await probe_with(kernel, max_message_bytes=100_000)
    failure = await fail(instance, "bigout 200000")
    assert isinstance(failure.error, MessageTooLarge)


async def test_huge_input_is_refused_before_the_guest_runs(kernel: Kernel) -> None:
    instance = await probe_with(kernel, max_message_bytes=1000)
    failure = await fail(instance, "spin 1 " + "x" * 5000)
    assert isinstance(failure.error, MessageTooLarge)
    assert failure.usage.fuel == 0


async def test_hanging_host_call_is_cut_off_by_its_watchdog(kernel: Kernel) -> None:
    instance = await probe_with(kernel, host_call_timeout_ms=300)
    slow = ScriptedProvider([ScriptedReply("late", delay_ms=30_000)])
    started = time.perf_counter()
    failure = await fail(instance, "ask", RunBindings(provider=slow))
    assert time.perf_counter() - started < 10
    assert isinstance(failure.error, GuestError)
    assert "timeout" in failure.error.title
    assert "cut off" in failure.error.message


async def test_guest_panic_carries_its_stderr_tail(kernel: Kernel) -> None:
    instance = await probe_with(kernel)
    failure = await fail(instance, "panic")
    assert isinstance(failure.error, GuestPanic)
    assert "probe was asked to panic" in failure.error.stderr_tail
    assert failure.error.title == "Agent crashed"


async def test_guest_error_value_is_reported(kernel: Kernel) -> None:
    instance = await probe_with(kernel)
    failure = await fail(instance, "fail")
    assert isinstance(failure.error, GuestError)
    assert failure.error.message == "probe was asked to fail"


async def test_a_trap_does_not_break_the_next_run(kernel: Kernel) -> None:
    with pytest.raises(RunFailed):
        await kernel.run_agent("probe", "panic")
    outcome = await kernel.run_agent("probe", "spin 1")
    assert outcome.summary == "spun 1 ms"


async def test_cancel_stops_a_running_agent(kernel: Kernel) -> None:
    task = asyncio.create_task(kernel.run_agent("probe", "loop", task_id="c1"))
    await asyncio.sleep(0.3)
    assert kernel.cancel("c1")
    with pytest.raises(RunFailed) as caught:
        await asyncio.wait_for(task, 10)
    assert isinstance(caught.value.error, AgentCancelled)


async def test_reentry_into_a_running_instance_is_refused(kernel: Kernel) -> None:
    instance = await probe_with(kernel, deadline_ms=1500)
    first = asyncio.create_task(instance.run(AgentTask("a", "loop")))
    await asyncio.sleep(0.2)
    failure = await fail(instance, "spin 1")
    assert isinstance(failure.error, AgentBusy)
    with pytest.raises(RunFailed):
        await first


async def test_agent_output_is_captured_and_bounded(kernel: Kernel) -> None:
    instance = await probe_with(kernel, log_bytes=2048)
    outcome = await instance.run(AgentTask("p", "print 5000"))
    assert "line 4999" in outcome.log_tail
    assert "line 0\n" not in outcome.log_tail
    assert instance.ctx.log.dropped > 0


async def test_warm_pool_hands_out_ready_instances_and_refills(kernel: Kernel) -> None:
    pool = await kernel.pool("probe", size=2)
    assert pool.ready == 2
    first = pool.take()
    assert first is not None
    assert first.state is AgentState.READY
    outcome = await first.run(AgentTask("x", "spin 1"))
    assert outcome.summary == "spun 1 ms"
    for _ in range(100):
        if pool.ready == 2:
            break
        await asyncio.sleep(0.02)
    assert pool.ready == 2


async def test_many_host_calls_cross_correctly(kernel: Kernel) -> None:
    outcome = await kernel.run_agent("probe", "calls 5000")
    assert '"calls": 5000' in outcome.data
    assert outcome.usage.host_calls == 5002


async def test_an_agent_sleeping_in_wasi_stops_at_its_deadline(kernel: Kernel) -> None:
    # time.sleep in the guest is a WASI poll, served in Rust where epochs cannot reach.
    instance = await probe_with(kernel, deadline_ms=2000)
    started = time.perf_counter()
    failure = await fail(instance, "sleep 30")
    elapsed = time.perf_counter() - started
    assert isinstance(failure.error, AgentTimeout), failure.error
    assert "2000 ms deadline" in failure.error.message
    assert elapsed < 10  # it stopped at its deadline, not when the sleep ended
    print(f"\nsleeping agent: deadline 2.000 s, failed after {elapsed:.3f} s")
    assert instance.state is AgentState.FAILED


async def test_cancel_stops_an_agent_sleeping_in_wasi(kernel: Kernel) -> None:
    running = asyncio.Event()
    kernel.events.subscribe(
        lambda e: (
            running.set() if isinstance(e, StateChanged) and e.state is AgentState.RUNNING else None
        )
    )
    task = asyncio.create_task(kernel.run_agent("probe", "sleep 30", task_id="s1"))
    await asyncio.wait_for(running.wait(), 20)
    await asyncio.sleep(0.3)  # into its sleep
    started = time.perf_counter()
    assert kernel.cancel("s1")
    with pytest.raises(RunFailed) as caught:
        await asyncio.wait_for(task, 20)
    elapsed = time.perf_counter() - started
    assert isinstance(caught.value.error, AgentCancelled), caught.value.error
    assert elapsed < 10
    print(f"\nsleeping agent: cancel to failure {elapsed:.3f} s")
    # the next run of the same agent is not held up by the abandoned one
    outcome = await kernel.run_agent("probe", "spin 1")
    assert outcome.summary == "spun 1 ms"
