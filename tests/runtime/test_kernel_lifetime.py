"""A closed kernel leaves nothing behind: no ticking, no engine, no kernel.

Full suite runs piled up epoch-ticker threads (a thread per engine, each taking the
GIL 500 times a second) and kept every kernel alive (about 50 MB each): the UI tests
late in the run slowed down many times over (30 leftover tickers: 20x), the stall
seen in full runs and CI.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import weakref
from pathlib import Path

import pytest

from briotui.kernel.errors import HostError
from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.engine import EpochTicker, make_engine
from briotui.kernel.runtime.instance import AgentInstance, AgentTask


def _tickers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "brio-epoch-ticker"}


def test_a_stopped_ticker_is_not_started_again() -> None:
    engine = make_engine()
    ticker = EpochTicker(engine)
    ticker.ensure_started()
    assert ticker.running
    ticker.stop()
    with pytest.raises(HostError) as caught:
        ticker.ensure_started()
    assert caught.value.title == "Kernel closed"
    assert not ticker.running


def test_every_engine_of_the_process_is_ticked_by_one_thread() -> None:
    engines = [make_engine() for _ in range(20)]
    tickers = [EpochTicker(engine) for engine in engines]
    try:
        for ticker in tickers:
            ticker.ensure_started()
        assert all(ticker.running for ticker in tickers)
        assert len(_tickers()) == 1
    finally:
        for ticker in tickers:
            ticker.stop()


def test_a_ticker_does_not_keep_its_engine() -> None:
    """A kernel dropped without ``close()`` does not leave its engine ticking forever."""
    engine = make_engine()
    ticker = EpochTicker(engine)
    ticker.ensure_started()
    gone = weakref.ref(engine)
    del engine, ticker
    gc.collect()
    assert gone() is None


def test_a_forked_child_ticks_its_engines() -> None:
    """The fork server of the kill tests runs the CLI in forked children: the parent's
    ticking thread is not there, the child's tickers start their own."""
    engine = make_engine()
    ticker = EpochTicker(engine)
    ticker.ensure_started()
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its ticker really ticks
        code = 1
        try:
            ticker.ensure_started()
            code = 0 if ticker.running and _tickers() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    ticker.stop()
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.slow
async def test_a_refill_under_way_when_the_kernel_closes_leaves_no_ticker(
    project: Path, built_agents: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real kernel: a run ends, its pool starts refilling, the kernel closes
    before the refill's instance reaches its store; the instance must not restart the
    ticker (before the fix it did, and the thread lived until the process ended)."""
    closed = threading.Event()
    instantiate = AgentInstance._instantiate

    def after_close(self: AgentInstance) -> None:
        closed.wait(10)  # the refill's instance starts only once the kernel is closed
        instantiate(self)

    agents_before = set(threading.enumerate())
    kernel = Kernel(project)
    pool = await kernel.pool("probe", size=1)
    instance = await pool.acquire()
    monkeypatch.setattr(AgentInstance, "_instantiate", after_close)
    await instance.run(AgentTask("t", "spin 1"))  # its end starts the refill
    for _ in range(5):  # until the refill's instance is starting on its thread
        await asyncio.sleep(0)
    await kernel.close()
    closed.set()
    for thread in set(threading.enumerate()) - agents_before:  # the refill's, ending
        if thread.name.startswith("agent-"):
            thread.join(timeout=10)
    assert not kernel.ticker.running


@pytest.mark.slow
async def test_a_closed_kernel_is_freed_with_its_engine(
    project: Path, built_agents: list[str]
) -> None:
    """A kernel that ran an agent on the shared Python runtime and was closed is freed.

    The runtime's ``agent-code`` host function sits in wasmtime's process-wide table
    until its linker is freed; it held the kernel's code check, and the kernel holds the
    linker: every kernel (engine, components, stores, about 50 MB) lived as long as the
    process, and full suite runs grew to gigabytes.
    """
    threads = set(threading.enumerate())
    kernel = Kernel(project)
    pool = await kernel.pool("probe", size=1)
    instance = await pool.acquire()
    await instance.run(AgentTask("t", "spin 1"))
    await kernel.close()
    for thread in set(threading.enumerate()) - threads:  # the instances' threads end
        if thread.name.startswith("agent-"):
            thread.join(timeout=10)
    for _ in range(5):  # the run's end scheduled a refill (of a closed pool: a no-op)
        await asyncio.sleep(0)
    gone = weakref.ref(kernel)
    engine = weakref.ref(kernel.engine)
    del kernel, pool, instance
    gc.collect()  # the kernel and its linkers; their host functions leave wasmtime's table
    gc.collect()  # and what those functions held (the builder and the engine)
    assert gone() is None
    assert engine() is None
