"""Measuring a served kernel on loopback, for ``briotui bench`` (never in tests).

The server (:class:`~briotui.kernel.serve.server.KernelServer`) and its clients
(:class:`~briotui.kernel.serve.client.RemoteClient`) run in this process on one event
loop over real loopback sockets, so the figures include both ends' JSON work:

- patch fan-out: patches per second each client receives and applies, with 1, 10 and
  100 clients connected;
- latency from a kernel state change to a client having applied it, p50 and p99 at 10
  clients, idle, with two threads computing in native code (as agents' wasm does, the
  interpreter lock released) and, as the worst case, in Python (holding it);
- late join with 1000 tasks in the tree: connect to a consistent mirror.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from briotui.devtools.bench.measure import Measure
from briotui.kernel.kernel import Kernel
from briotui.kernel.serve.client import RemoteClient
from briotui.kernel.serve.server import KernelServer
from briotui.kernel.state import StatePatch
from briotui.kernel.tasktree import TaskTree

FAN_OUT = ((1, 4000), (10, 2000), (100, 400))
"""``(clients, patches)`` for the fan-out figures."""

LATENCY_CLIENTS = 10
LATENCY_SAMPLES = 400
JOIN_TASKS = 1000


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _clients(server: KernelServer, n: int) -> list[RemoteClient]:
    clients = [RemoteClient(server.url, name=f"bench{i}") for i in range(n)]
    await asyncio.gather(*(c.connect() for c in clients))
    return clients


async def _close(clients: list[RemoteClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


async def _fan_out(kernel: Kernel, server: KernelServer) -> list[Measure]:
    measures: list[Measure] = []
    for count, patches in FAN_OUT:
        clients = await _clients(server, count)
        started = time.perf_counter()
        for i in range(patches):
            kernel.state.set(["usage", "cost_usd"], float(i))
            if i % 200 == 199:
                await asyncio.sleep(0)  # let the loop deliver, as a busy kernel does
        last = kernel.state.seq
        await asyncio.gather(*(c.wait_seq(last, within_s=300) for c in clients))
        elapsed = time.perf_counter() - started
        dropped = len(server.dropped)
        await _close(clients)
        measures.append(
            Measure(
                f"serve: patch fan-out to {count} client{'s' if count > 1 else ''}",
                patches / elapsed,
                "patch/s",
                None,
                better="higher",
                detail=(
                    f"{patches} patches, each received and applied by every client "
                    f"({patches * count / elapsed:.0f} messages/s in all; loopback, the clients "
                    "in the same process and loop as the server)"
                    + (f"; {dropped} clients dropped" if dropped else "")
                ),
            )
        )
    return measures


def _spin_native(stop: threading.Event) -> None:
    """CPU work outside the interpreter lock, as agents' wasm code is (ctypes calls)."""
    block = b"x" * (1 << 20)
    while not stop.is_set():
        hashlib.sha256(block).digest()


def _spin_python(stop: threading.Event) -> None:
    """CPU work holding the interpreter lock (pure Python): the worst case."""
    n = 0
    while not stop.is_set():
        n += sum(i * i for i in range(500))


LOADS: dict[str, tuple[str, Callable[[threading.Event], None] | None, float | None]] = {
    "idle": ("idle", None, 5.0),
    "native": ("two threads computing in native code", _spin_native, 5.0),
    "python": ("two threads computing in Python", _spin_python, None),
}
"""Each load: its description, the work of each of two threads, and the p99 target."""


async def _latency(kernel: Kernel, server: KernelServer, load: str) -> list[Measure]:
    clients = await _clients(server, LATENCY_CLIENTS)
    samples: list[float] = []
    sent: dict[int, float] = {}

    def listener(patch: StatePatch | None) -> None:
        if patch is not None and patch.seq in sent:
            samples.append(time.perf_counter() - sent[patch.seq])

    for client in clients:
        client.listeners.append(listener)
    described, work, target = LOADS[load]
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(stop,), daemon=True) for _ in range(2)]
    if work is not None:
        for thread in threads:
            thread.start()
    try:
        for i in range(LATENCY_SAMPLES):
            kernel.state.set(["usage", "cost_usd"], float(i))
            sent[kernel.state.seq] = time.perf_counter()
            await asyncio.sleep(0.002)
        await asyncio.gather(*(c.wait_seq(kernel.state.seq, within_s=60) for c in clients))
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
    await _close(clients)
    ms = [s * 1000 for s in samples]
    detail = f"{LATENCY_CLIENTS} clients, {LATENCY_SAMPLES} changes 2 ms apart, {described}"
    p50 = statistics.median(ms)
    p99 = _percentile(ms, 0.99)
    return [
        Measure(f"serve: change to client p50 ({described})", p50, "ms", None, detail=detail),
        Measure(f"serve: change to client p99 ({described})", p99, "ms", target, detail=detail),
    ]


async def _late_join(kernel: Kernel, server: KernelServer) -> Measure:
    tasks = TaskTree(kernel.state)
    for i in range(JOIN_TASKS):
        parent = None if i < 10 else f"j{i % 10}"
        tasks.add_task(f"j{i}", title=f"task {i}", agent="coder", parent=parent)
        tasks.add_milestone(f"j{i}", "planned")
    await asyncio.sleep(0)
    samples: list[float] = []
    for _ in range(10):
        started = time.perf_counter()
        client = RemoteClient(server.url, name="join")
        await client.connect()
        samples.append(time.perf_counter() - started)
        consistent = client.tree == kernel.state.get("")
        await client.close()
        if not consistent:
            return Measure(
                f"serve: late join with {JOIN_TASKS} tasks to a consistent mirror",
                float("nan"),
                "ms",
                None,
                detail="the mirror differed from the kernel's state",
            )
    return Measure(
        f"serve: late join with {JOIN_TASKS} tasks to a consistent mirror",
        statistics.median(samples) * 1000,
        "ms",
        None,
        detail="connect, token check, snapshot sent and parsed; median of 10",
    )


async def bench_serve() -> list[Measure]:
    """Measure patch fan-out, change-to-client latency and late join over loopback.

    Returns:
        One :class:`Measure` per figure.
    """
    with tempfile.TemporaryDirectory(prefix="briotui-bench-serve-") as tmp:
        kernel = Kernel(Path(tmp), loop=asyncio.get_running_loop())
        server = KernelServer(kernel, secrets.token_urlsafe(24), port=0, prompts=False)
        await server.start()
        try:
            measures = await _fan_out(kernel, server)
            for load in LOADS:
                measures += await _latency(kernel, server, load)
            measures.append(await _late_join(kernel, server))
        finally:
            await server.close()
            await kernel.close()
    return measures


__all__ = ["bench_serve"]
