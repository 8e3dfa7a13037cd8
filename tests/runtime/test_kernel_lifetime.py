"""The epoch ticker ends with its kernel: never restarted after close, never kept by a
dropped engine (full suite runs piled up ticker threads, each waking 500 times a second
and holding its engine, until later tests stalled)."""

from __future__ import annotations

import asyncio
import gc
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
    before = _tickers()
    ticker = EpochTicker(make_engine())
    ticker.ensure_started()
    assert _tickers() - before
    ticker.stop()
    with pytest.raises(HostError) as caught:
        ticker.ensure_started()
    assert caught.value.title == "Kernel closed"
    assert not _tickers() - before


def test_a_ticker_whose_engine_is_dropped_ends() -> None:
    """A kernel dropped without ``close()`` does not leave its ticker (and engine) behind."""
    before = _tickers()
    ticker = EpochTicker(make_engine())
    ticker.ensure_started()
    [thread] = _tickers() - before
    del ticker
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


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

    before = _tickers()
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
    assert not _tickers() - before


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
    await asyncio.sleep(0)  # the run's end scheduled a refill (of a closed pool: a no-op)
    for thread in set(threading.enumerate()) - threads:  # the instances' threads end
        if not thread.name.startswith("agent-"):
            continue
        thread.join(timeout=10)
    gone = weakref.ref(kernel)
    engine = weakref.ref(kernel.engine)
    del kernel, pool, instance
    gc.collect()  # the kernel and its linkers; their host functions leave wasmtime's table
    gc.collect()  # and what those functions held (the builder and the engine)
    assert gone() is None
    assert engine() is None
