"""Runtime figures for ``briotui bench``: load, instantiate, pool, host calls, loop lag,
and what the kernel adds to an agent run.

Each figure is a :class:`~briotui.devtools.bench.measure.Measure` with its target and,
where there is one, its peer measured in the same run: the same component instantiated
or called raw through wasmtime-py, a cold run against a warm one, and, when they are
installed (never a dependency), amla-sandbox and extism. Runtime figures use the
built-in ``probe`` and ``echo`` agents (built on demand); ``echo`` answers through a
scripted model, so a run measures the kernel and the guest, not a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import wasmtime
from wasmtime import component as wc

from briotui.devtools.bench.measure import Measure, median_ms
from briotui.kernel import telemetry
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.instance import AgentInstance, AgentTask, LoadedAgent, RunFailed

PROBE = "probe"
ECHO = "echo"

NOT_INSTALLED = "not installed"
"""What a figure says of an optional peer that is not installed here."""


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

    out += await _instantiate_figures(kernel, loaded, rounds, live=1)

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
    if not telemetry.enabled():  # the same calls with OpenTelemetry on (off is above)
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        telemetry.configure(
            {"telemetry": {"enabled": True}}, exporters=[InMemorySpanExporter()], environ={}
        )
        try:
            traced = await kernel.run_agent(PROBE, f"calls {calls}")
        finally:
            telemetry.shutdown()
        out.append(
            Measure(
                "guest -> host call, tracing on",
                float(json.loads(traced.data)["ns_per_call"]) / 1000,
                "us",
                15.0,
                detail=f"as above with OpenTelemetry on (host calls are counted on the "
                f"run's span, not traced one by one), {calls} calls, mean; off: {ns / 1000:.2f} us",
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


async def _instantiate_figures(
    kernel: Kernel, loaded: LoadedAgent, rounds: int, *, live: int
) -> list[Measure]:
    """Instantiate on the agent's thread vs the same component raw, at ``live`` instances."""
    ours, raw = [], []
    for _ in range(rounds):
        instance = AgentInstance(loaded, loop=kernel.loop, events=lambda _e: None)
        await instance.start()
        ours.append(instance.instantiate_s)
        instance.discard()
        raw.append(await asyncio.to_thread(_raw_instantiate, loaded))
    value, peer = median_ms(ours), median_ms(raw)
    out = [
        Measure(
            f"instantiate an agent ({live} live)",
            value,
            "ms",
            2.0,
            detail=f"Store + limits + instantiate + finding its memory, on the agent's thread, "
            f"median of {rounds}, with {live} instance(s) live",
            peer="raw wasmtime-py",
            peer_value=peer,
        )
    ]
    extism = await asyncio.to_thread(_extism_instantiate, rounds)
    out.append(
        Measure(
            f"instantiate an agent ({live} live) vs extism"
            + ("" if extism is not None else f" ({NOT_INSTALLED})"),
            value,
            "ms",
            2.0,
            detail="extism: a Plugin from a compiled one-function module (no WASI), median",
            peer="extism" if extism is not None else "",
            peer_value=extism,
        )
    )
    return out


def _raw_instantiate(loaded: LoadedAgent) -> float:
    """The same component instantiated through wasmtime-py alone (its own store)."""
    started = time.perf_counter()
    store = wasmtime.Store(loaded.engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_fuel(loaded.spec.limits.fuel)
    store.set_epoch_deadline(1 << 40)  # the engine interrupts on epochs: never here
    loaded.linker.instantiate(store, loaded.component)
    return time.perf_counter() - started


def _extism_instantiate(rounds: int) -> float | None:
    """Milliseconds to make an extism plugin, or None if extism is not installed."""
    if importlib.util.find_spec("extism") is None:
        return None
    extism: Any = importlib.import_module("extism")
    compiled_plugin: Any = importlib.import_module("extism.extism").CompiledPlugin
    wasm = bytes(wasmtime.wat2wasm('(module (func (export "run") (result i32) i32.const 0))'))
    compiled = compiled_plugin(wasm, wasi=False)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        plugin = extism.Plugin(compiled, wasi=False)
        samples.append(time.perf_counter() - started)
        del plugin
    return median_ms(samples)


async def bench_overhead(kernel: Kernel, *, rounds: int = 20) -> list[Measure]:
    """What the kernel adds to an agent run, warm against cold, and against amla-sandbox.

    ``echo`` with a scripted model: its run makes a few host calls (log, clock, one
    model call answered at once) and returns. A run's overhead is its wall time through
    :meth:`Kernel.run_agent` less the time inside the component's call (the guest's
    own work and its host calls, the model's reply included), which is the peer.
    """
    await kernel.load(ECHO, build=True)
    pool = await kernel.pool(ECHO, size=1)

    async def run() -> tuple[float, float]:
        provider = ScriptedProvider([ScriptedReply("hello")])
        started = time.perf_counter()
        outcome = await kernel.run_agent(ECHO, "hi", bindings=RunBindings(provider=provider))
        return time.perf_counter() - started, outcome.usage.call_ms / 1000

    for _ in range(3):  # warm up the code paths
        await run()
    warm, calls, cold = [], [], []
    for _ in range(rounds):
        for _ in range(200):  # idle until the pool has refilled (it does after a run)
            if pool.ready:
                break
            await asyncio.sleep(0.005)
        wall, call = await run()
        warm.append(wall)
        calls.append(call)
        await asyncio.sleep(0.02)
        size, pool.size = pool.size, 0  # an empty pool: the run makes its instance
        while (spare := pool.take()) is not None:
            spare.discard()
        wall, _ = await run()
        cold.append(wall)
        pool.size = size
        pool.refill_later()
    overhead = [w - c for w, c in zip(warm, calls, strict=True)]
    warm_ms = median_ms(warm)
    amla = await asyncio.to_thread(_amla_run, rounds)
    return [
        Measure(
            "kernel overhead per agent run",
            median_ms(overhead),
            "ms",
            2.0,
            detail=f"echo, scripted model, warm pool: run_agent wall time less the time in "
            f"the component call, median of {rounds}",
            peer="the component call",
            peer_value=median_ms(calls),
        ),
        Measure(
            "agent run, warm pool",
            warm_ms,
            "ms",
            None,
            detail=f"echo through Kernel.run_agent, median of {rounds}; a pooled instance "
            "has loaded the agent's code before the run; peer: the same run with the pool "
            "empty (the run instantiates and loads the code)",
            peer="cold run",
            peer_value=median_ms(cold),
        ),
        Measure(
            "agent run, warm pool, vs amla-sandbox"
            + ("" if amla is not None else f" ({NOT_INSTALLED})"),
            warm_ms,
            "ms",
            None,
            detail="amla-sandbox: a reused sandbox runs a JavaScript snippet with one tool "
            "call, median",
            peer="amla-sandbox" if amla is not None else "",
            peer_value=amla,
        ),
    ]


def _amla_run(rounds: int) -> float | None:
    """Milliseconds for a reused amla sandbox to run a snippet with one tool call."""
    if importlib.util.find_spec("amla_sandbox") is None:
        return None
    create_sandbox_tool = importlib.import_module("amla_sandbox").create_sandbox_tool

    def get_weather(city: str) -> str:
        return f"Sunny in {city}"

    sandbox = create_sandbox_tool(tools=[get_weather])
    snippet = "const r = await get_weather({city: 'SF'}); console.log(r)"
    for _ in range(3):
        sandbox.run(snippet, language="javascript")
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        sandbox.run(snippet, language="javascript")
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


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


async def bench_live_agents(
    kernel: Kernel, count: int = 1000, *, rounds: int = 20
) -> list[Measure]:
    """Hold ``count`` live agent instances at once: the memory they take, and what an
    instantiation costs with that many live (against the same component raw)."""
    loaded = await kernel.load(PROBE, build=True)
    before = _rss_bytes()
    held: list[AgentInstance] = []
    try:
        for _ in range(count):
            instance = AgentInstance(loaded, loop=kernel.loop, events=lambda _e: None)
            await instance.start()
            held.append(instance)
        grown = _rss_bytes() - before
        instantiate = await _instantiate_figures(kernel, loaded, rounds, live=count)
    finally:
        for instance in held:
            instance.discard()
    return [
        *instantiate,
        Measure(
            f"live agents held at once ({count})",
            grown / 2**30,
            "GiB",
            4.0 * count / 1000,
            detail="process RSS growth with that many ready (instantiated) probe instances",
        ),
    ]
