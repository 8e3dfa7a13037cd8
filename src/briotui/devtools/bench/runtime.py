"""Runtime figures for ``briotui bench``: load, instantiate, pool, host calls, loop lag.

Each figure is a :class:`~briotui.devtools.bench.measure.Measure` with its target.
Runtime figures use the built-in ``probe`` agent (built on demand).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from wasmtime import component as wc

from briotui.devtools.bench.measure import Measure, median_ms
from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.instance import AgentInstance, AgentTask, LoadedAgent, RunFailed

PROBE = "probe"


async def bench_runtime(kernel: Kernel, *, rounds: int = 20) -> list[Measure]:
    """Component load, instantiate, pool hand-out, host calls, loop lag, timeout release."""
    loaded = await kernel.load(PROBE, build=True)
    entry = kernel.builder.entry_for(loaded.spec)
    out: list[Measure] = []

    loads = []
    for _ in range(rounds):
        t = time.perf_counter()
        wc.Component.deserialize_file(kernel.engine, str(entry.compiled))
        loads.append(time.perf_counter() - t)
    out.append(
        Measure(
            "load a built agent (cached, compiled)",
            median_ms(loads),
            "ms",
            10.0,
            detail=f"Component.deserialize_file, median of {rounds}",
        )
    )

    # time the instantiation itself on the agent's thread (excludes thread start-up)
    inst_times = []
    for _ in range(rounds):
        instance = AgentInstance(loaded, loop=kernel.loop, events=kernel.events.publish)
        await instance.start()
        t = time.perf_counter()
        await instance._submit(instance._instantiate)
        inst_times.append(time.perf_counter() - t)
        instance.discard()
    out.append(
        Measure(
            "instantiate an agent",
            median_ms(inst_times),
            "ms",
            2.0,
            detail=f"new Store + instantiate on the agent's thread, median of {rounds}",
        )
    )

    pool = await kernel.pool(PROBE, size=rounds)
    await pool.fill()
    takes = []
    for _ in range(rounds):
        t = time.perf_counter()
        taken = pool.take()
        takes.append(time.perf_counter() - t)
        if taken is not None:
            taken.discard()
    out.append(
        Measure(
            "hand out an agent from the warm pool",
            statistics.median(takes) * 1e6,
            "us",
            50.0,
            detail=f"AgentPool.take, median of {rounds}",
        )
    )

    calls = 20_000
    result = await kernel.run_agent(PROBE, f"calls {calls}")
    ns = float(json.loads(result.data)["ns_per_call"])
    out.append(
        Measure(
            "guest -> host call, small arguments",
            ns / 1000,
            "us",
            15.0,
            detail=f"clock.monotonic-ns from a Python guest, {calls} calls, mean",
        )
    )

    lag = await _loop_lag(
        kernel,
        lambda: asyncio.gather(*(_unmetered(kernel, loaded, "spin 1500") for _ in range(2))),
    )
    out.append(
        Measure(
            "event-loop lag while 2 agents compute",
            lag,
            "ms",
            16.0,
            detail="max lateness of a 5 ms asyncio timer during two 1.5 s guest runs",
        )
    )

    spec = replace(loaded.spec, limits=replace(loaded.spec.limits, deadline_ms=300))
    stuck = replace(loaded, spec=spec)
    instance = AgentInstance(stuck, loop=kernel.loop, events=kernel.events.publish)
    await instance.start()
    t = time.perf_counter()
    with contextlib.suppress(RunFailed):
        await instance.run(AgentTask("bench-timeout", "loop"))
    late = (time.perf_counter() - t) * 1000 - 300
    out.append(
        Measure(
            "stopped agent (timeout) to free slot, past deadline",
            late,
            "ms",
            50.0,
            detail="probe `loop` with a 300 ms deadline",
        )
    )
    return out


async def _unmetered(kernel: Kernel, loaded: LoadedAgent, goal: str) -> None:
    """Run the probe with fuel that cannot run out within its deadline, whatever the
    speed of this machine's CPU against its clock (the figure is about the loop)."""
    limits = replace(loaded.spec.limits, fuel=10**15, deadline_ms=60_000)
    instance = AgentInstance(
        replace(loaded, spec=replace(loaded.spec, limits=limits)),
        loop=kernel.loop,
        events=kernel.events.publish,
    )
    await instance.start()
    await instance.run(AgentTask("bench-spin", goal))


async def _loop_lag(kernel: Kernel, work: Callable[[], Awaitable[Any]]) -> float:
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, (time.perf_counter() - t - 0.005) * 1000)

    task = asyncio.create_task(ticker())
    try:
        await work()
    finally:
        done.set()
        await task
    return worst


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def bench_live_agents(kernel: Kernel, count: int = 1000) -> list[Measure]:
    """Hold ``count`` live, used agent instances at once; the memory they take."""
    loaded = await kernel.load(PROBE, build=True)
    before = _rss_bytes()
    held: list[AgentInstance] = []
    try:
        for _ in range(count):
            instance = AgentInstance(loaded, loop=kernel.loop, events=lambda _e: None)
            await instance.start()
            held.append(instance)
        grown = _rss_bytes() - before
    finally:
        for instance in held:
            instance.discard()
    return [
        Measure(
            f"live agents held at once ({count})",
            grown / 2**30,
            "GiB",
            4.0 * count / 1000,
            detail="process RSS growth with that many ready (instantiated) probe instances",
        )
    ]
