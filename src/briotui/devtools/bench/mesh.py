"""Measuring the mesh against its targets, for ``briotui bench`` (never in tests).

Targets: >= 300k messages/s one way between two host endpoints, and a request/reply
round trip <= 30 us. Each figure is measured the way the kernel uses the mesh: agent
worker threads, tasks on the event loop, and one of each. Each round trip is printed
beside its floor, measured in the same run: a bare Lock ping-pong between two threads
(the OS and the GIL, no mesh), a bare loop wake-up (``call_soon_threadsafe``), and under
both the operating system's own (two processes, a pipe ping-pong, no Python hand-off).
The mesh's own part of a round trip is what it costs over its floor.
"""

from __future__ import annotations

import asyncio
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

from briotui.devtools.bench.measure import Measure
from briotui.kernel.errors import MeshQueueFull
from briotui.kernel.mesh import Endpoint, Mesh, anyone

ONE_WAY_TARGET = 300_000.0
"""Messages per second, one way, between two host endpoints."""

ROUND_TRIP_TARGET = 30.0
"""Microseconds for one request and its reply between two host endpoints."""


def _pair(queue_size: int = 1 << 16) -> tuple[Mesh, Endpoint, Endpoint]:
    mesh = Mesh()
    a = mesh.register("a", peers=anyone, queue_size=queue_size)
    b = mesh.register("b", peers={"a"}, queue_size=queue_size)
    return mesh, a, b


def _best(runs: list[float]) -> float:
    return statistics.median(runs)


def _one_way_same_thread(n: int) -> float:
    _, a, b = _pair()
    batch = 1000
    t0 = time.perf_counter()
    for _ in range(n // batch):
        for _i in range(batch):
            a.send("b", "t", "x")
        for _i in range(batch):
            b.receive()
    return (n // batch * batch) / (time.perf_counter() - t0)


def _send_all(a: Endpoint, n: int) -> None:
    send = a.send
    i = 0
    while i < n:
        try:
            send("b", "t", "x")
            i += 1
        except MeshQueueFull:
            time.sleep(0)  # the consumer is behind: let it run


def _one_way_threads(n: int) -> float:
    _, a, b = _pair()
    done = threading.Event()

    def consume() -> None:
        receive = b.receive
        for _ in range(n):
            receive(5.0)
        done.set()

    consumer = threading.Thread(target=consume)
    t0 = time.perf_counter()
    consumer.start()
    _send_all(a, n)
    done.wait(60)
    elapsed = time.perf_counter() - t0
    consumer.join()
    return n / elapsed


async def _one_way_to_loop(n: int) -> float:
    _, a, b = _pair()
    t0 = time.perf_counter()
    producer = threading.Thread(target=_send_all, args=(a, n))
    producer.start()
    for _ in range(n):
        await b.areceive(5.0)
    elapsed = time.perf_counter() - t0
    producer.join()
    return n / elapsed


def _serve_thread(b: Endpoint, stop: threading.Event) -> None:
    while not stop.is_set():
        msg = b.receive(0.05)
        if msg is not None:
            b.reply(msg, msg.body)


def _thread_floor(n: int) -> float:
    """A bare Lock ping-pong between two threads: the wake-up cost any mesh pays."""
    ping, pong = threading.Lock(), threading.Lock()
    ping.acquire()
    pong.acquire()

    def serve() -> None:
        for _ in range(n):
            ping.acquire()
            pong.release()

    server = threading.Thread(target=serve)
    server.start()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        ping.release()
        pong.acquire()
        samples.append(time.perf_counter() - t0)
    server.join()
    return statistics.median(samples) * 1e6


_ECHO_CHILD = "import os\nwhile os.read(0, 1):\n    os.write(1, b'x')\n"
"""A process that answers each byte on its standard input with one on its output."""


def _process_floor(n: int) -> float:
    """A byte ping-pong over two pipes with another process: the operating system's
    wake-up of a waiting thread (scheduler, and a CPU core leaving its idle state), with
    no GIL and no Python hand-off on either side. Microseconds, median of ``n``."""
    child = subprocess.Popen(  # a child of its own, not a fork of this threaded process
        [sys.executable, "-c", _ECHO_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    out, back = child.stdin.fileno(), child.stdout.fileno()
    samples = []
    try:
        for i in range(n + 50):  # 50 to warm up
            t0 = time.perf_counter()
            os.write(out, b"x")
            os.read(back, 1)
            if i >= 50:
                samples.append(time.perf_counter() - t0)
    finally:
        child.stdin.close()
        child.wait(10)
        child.stdout.close()
    return statistics.median(samples) * 1e6


def _queue_floor(n: int) -> float:
    """The peer of the one-way figures: the standard library's bounded ``queue.Queue``
    between two threads (blocking get with a timeout, no grants, no size limit): what a
    plain Python hand-off of the same shape costs on this machine."""
    q: queue.Queue[str] = queue.Queue(maxsize=1 << 16)

    def consume() -> None:
        get = q.get
        for _ in range(n):
            get(timeout=5.0)

    consumer = threading.Thread(target=consume)
    t0 = time.perf_counter()
    consumer.start()
    put = q.put
    for _ in range(n):
        put("x")
    consumer.join()
    return n / (time.perf_counter() - t0)


async def _loop_floor(n: int) -> float:
    """The peer of the thread-to-task round trip: a thread wakes the loop with
    ``call_soon_threadsafe`` and the loop releases the thread's Lock, no mesh."""
    loop = asyncio.get_running_loop()

    def ping_pong() -> float:
        samples = []
        for _ in range(n):
            back = threading.Lock()
            back.acquire()
            t0 = time.perf_counter()
            loop.call_soon_threadsafe(back.release)
            back.acquire()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e6

    return await asyncio.to_thread(ping_pong)


def _requests(a: Endpoint, n: int, samples: list[float]) -> None:
    """From a worker thread: 50 warm-up requests, then ``n`` timed ones into ``samples``."""
    for _ in range(50):
        a.request("b", "ping", "x", 5.0)
    for _ in range(n):
        t0 = time.perf_counter()
        a.request("b", "ping", "x", 5.0)
        samples.append(time.perf_counter() - t0)


def _round_trip_threads(n: int) -> float:
    _, a, b = _pair()
    stop = threading.Event()
    server = threading.Thread(target=_serve_thread, args=(b, stop))
    server.start()
    samples: list[float] = []
    worker = threading.Thread(target=_requests, args=(a, n, samples))
    worker.start()
    worker.join()
    stop.set()
    server.join()
    return statistics.median(samples) * 1e6


async def _serve_task(b: Endpoint) -> None:
    """Answer every request to ``b`` with its own body, on the loop, until cancelled."""
    while True:
        msg = await b.areceive(5.0)
        if msg is not None:
            b.reply(msg, msg.body)


async def _round_trip_loop(n: int) -> float:
    _, a, b = _pair()

    server = asyncio.create_task(_serve_task(b))
    try:
        for _ in range(50):
            await a.arequest("b", "ping", "x", 5.0)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            await a.arequest("b", "ping", "x", 5.0)
            samples.append(time.perf_counter() - t0)
    finally:
        server.cancel()
    return statistics.median(samples) * 1e6


async def _round_trip_thread_to_loop(n: int) -> float:
    _, a, b = _pair()

    server = asyncio.create_task(_serve_task(b))
    samples: list[float] = []
    try:
        await asyncio.to_thread(_requests, a, n, samples)
    finally:
        server.cancel()
    return statistics.median(samples) * 1e6


def bench_mesh(*, messages: int = 200_000, round_trips: int = 5_000) -> list[Measure]:
    """Measure the mesh: one-way throughput and request/reply round trips.

    Runs its own event loop, so call it from synchronous code (or a worker thread).

    Args:
        messages: Messages per one-way run.
        round_trips: Requests per round-trip run.

    Returns:
        One :class:`Measure` per figure.
    """
    same = _best([_one_way_same_thread(messages) for _ in range(3)])
    threads = _best([_one_way_threads(messages) for _ in range(3)])
    to_loop = _best([asyncio.run(_one_way_to_loop(messages)) for _ in range(3)])
    rt_threads = _round_trip_threads(round_trips)
    rt_loop = asyncio.run(_round_trip_loop(round_trips))
    rt_mixed = asyncio.run(_round_trip_thread_to_loop(round_trips))
    floor = _thread_floor(round_trips)
    os_floor = _process_floor(round_trips)
    queue_floor = _best([_queue_floor(messages) for _ in range(3)])
    loop_floor = asyncio.run(_loop_floor(round_trips))
    return [
        Measure(
            "mesh one-way, thread to thread",
            threads,
            "msg/s",
            ONE_WAY_TARGET,
            "higher",
            f"median of 3 runs of {messages} sends in one thread, receive(timeout) in another",
            peer="queue.Queue",
            peer_value=queue_floor,
        ),
        Measure(
            "mesh one-way, thread to loop",
            to_loop,
            "msg/s",
            ONE_WAY_TARGET,
            "higher",
            f"median of 3 runs of {messages} sends in a thread, areceive() in a task",
            peer="queue.Queue",
            peer_value=queue_floor,
        ),
        Measure(
            "mesh one-way, same thread",
            same,
            "msg/s",
            ONE_WAY_TARGET,
            "higher",
            "send then receive(0) in batches of 1000: the cost of the mesh itself",
        ),
        Measure(
            "mesh round trip, thread to thread",
            rt_threads,
            "us",
            ROUND_TRIP_TARGET,
            "lower",
            f"median of {round_trips} request()/reply() between two worker threads; the "
            f"mesh's own part is the rest over the bare Lock ping-pong "
            f"({rt_threads - floor:+.1f} us)",
            peer="bare Lock ping-pong",
            peer_value=floor,
        ),
        Measure(
            "mesh round trip, task to task",
            rt_loop,
            "us",
            ROUND_TRIP_TARGET,
            "lower",
            f"median of {round_trips} arequest()/areceive()+reply() on one loop",
        ),
        Measure(
            "mesh round trip, thread to task",
            rt_mixed,
            "us",
            ROUND_TRIP_TARGET,
            "lower",
            f"median of {round_trips} request() from a thread answered by a task; the "
            f"mesh's own part is the rest over the bare loop wake-up "
            f"({rt_mixed - loop_floor:+.1f} us)",
            peer="bare loop wake-up",
            peer_value=loop_floor,
        ),
        Measure(
            "thread wake-up floor (bare Lock ping-pong)",
            floor,
            "us",
            None,
            "lower",
            "two threads handing two threading.Locks back and forth, no mesh: the OS and "
            "GIL cost under every cross-thread round trip on this machine",
            peer="OS wake-up floor",
            peer_value=os_floor,
        ),
        Measure(
            "OS wake-up floor (two processes, pipe ping-pong)",
            os_floor,
            "us",
            None,
            "lower",
            "one byte there and back over two pipes with a child process, no GIL and no "
            "Python hand-off: what waking a waiting thread costs the operating system (and "
            "the CPU) on this machine; every cross-thread round trip above pays at least "
            "this",
        ),
    ]


__all__ = ["ONE_WAY_TARGET", "ROUND_TRIP_TARGET", "bench_mesh"]
