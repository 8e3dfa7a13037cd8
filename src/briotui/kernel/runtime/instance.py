"""One agent instance: its own Store and worker thread, with an async face.

The pattern is aiosqlite's: the wasmtime Store lives on one thread, calls go in
through a queue, and results come back to the event loop as futures. Nothing here
blocks the loop. An instance runs one task and is then discarded (a fresh one from the
pool serves the next), so no state leaks between tasks; after a trap it is dead.

Lifecycle: Unloaded -> Loaded -> Ready -> Running -> Stopped, or -> Failed on a trap;
Draining while a cancel is in progress. Every change is published as an event.

The deadline and a cancel stop a guest running wasm code through epoch interruption
(:mod:`.deadline`). A guest blocked outside wasm code — in a WASI sleep or poll, which
wasmtime serves in Rust where epochs cannot reach, or in a host call that waits — is
stopped by a watchdog on the event loop instead: :data:`ABANDON_GRACE_S` after the
deadline (or the cancel) the run fails with the same typed error and the instance is
*abandoned*. Its thread is left to come back on its own; the context is marked so that
every host call it then makes traps at once and its output is dropped, so nothing it
does later reaches the kernel, and it releases what it holds when it ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime import component as wc

from briotui.kernel.agents import AgentSpec, user_config_file
from briotui.kernel.errors import (
    AgentBusy,
    AgentCancelled,
    AgentError,
    AgentTimeout,
    BrioError,
    FuelExhausted,
    GuestError,
    GuestPanic,
    HostError,
    MemoryLimit,
    MessageTooLarge,
)
from briotui.kernel.llm.types import Usage
from briotui.kernel.runtime import memory
from briotui.kernel.runtime.context import CallContext, RunBindings, bind_thread
from briotui.kernel.runtime.deadline import DeadlineGuard
from briotui.kernel.runtime.engine import EpochTicker
from briotui.kernel.runtime.events import AgentState, EventSink, StateChanged
from briotui.kernel.runtime.host import AGENT_EXPORT
from briotui.kernel.runtime.meter import Meter
from briotui.kernel.runtime.output import GuestOutput
from briotui.kernel.runtime.pyruntime import AGENT_LOADER_EXPORT
from briotui.kernel.runtime.values import Err, FuncShape, Ok

_ids = itertools.count(1)

ABANDON_GRACE_S = 0.025
"""How long past its deadline (or its cancel) a run gets to stop by itself before the
watchdog gives up on it. A guest running wasm code traps within a few epoch ticks."""

_abandoned_lock = threading.Lock()
_abandoned: set[str] = set()

_starter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="brio-instance-starter")
"""Starts the instances' threads, off the loop (and never queued behind the loop's
default executor, which long builds may fill)."""

_memory_counts: dict[tuple[str, int], int] = {}
"""How many linear memories an agent's component was found to have (1: predictable)."""


def abandoned_instances() -> list[str]:
    """Ids of abandoned instances whose threads have not come back yet (diagnostics)."""
    with _abandoned_lock:
        return sorted(_abandoned)


@dataclass(frozen=True)
class LoadedAgent:
    """A compiled component with its linker: everything needed to make instances."""

    spec: AgentSpec
    engine: wasmtime.Engine
    component: wc.Component
    linker: wc.Linker
    run_shape: FuncShape
    ticker: EpochTicker
    code_version: Callable[[], str] | None = None
    """The version of the agent's code on disk now, for an agent on its world's shared
    Python runtime (None for a component of its own): an instance that loaded its code
    before its run (:meth:`AgentInstance.prepare`) runs it only if it is still this."""


@dataclass(frozen=True)
class AgentTask:
    """What an agent is asked to do."""

    id: str
    goal: str
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RunUsage:
    """What one run used."""

    fuel: int = 0
    wall_ms: float = 0.0
    peak_memory_bytes: int = 0
    host_calls: int = 0
    host_ms: float = 0.0
    tokens: Usage = field(default_factory=Usage)
    call_ms: float = 0.0
    """Time inside the component's ``run`` call: the guest's work and its host calls
    (model replies included). What the kernel adds to a run is its wall time minus this."""

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data."""
        return {
            "fuel": self.fuel,
            "wall_ms": round(self.wall_ms, 3),
            "peak_memory_bytes": self.peak_memory_bytes,
            "host_calls": self.host_calls,
            "host_ms": round(self.host_ms, 3),
            "input_tokens": self.tokens.input_tokens,
            "output_tokens": self.tokens.output_tokens,
        }


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: the agent's outcome, what it used, and which models answered."""

    agent: str
    summary: str
    data: str
    usage: RunUsage
    models: tuple[tuple[str, str], ...] = ()
    log_tail: str = ""


class RunFailed(Exception):
    """An agent run failed; carries the typed error and what the run used."""

    def __init__(self, error: AgentError, usage: RunUsage) -> None:
        super().__init__(str(error))
        self.error = error
        self.usage = usage


class AgentInstance:
    """One live instance of an agent, on its own thread."""

    def __init__(
        self,
        loaded: LoadedAgent,
        *,
        loop: asyncio.AbstractEventLoop,
        events: EventSink,
    ) -> None:
        self.loaded = loaded
        self.id = f"{loaded.spec.name}#{next(_ids)}"
        self.state = AgentState.UNLOADED
        self._loop = loop
        self._events = events
        self.ctx = CallContext(
            agent=loaded.spec.name,
            instance_id=self.id,
            limits=loaded.spec.limits,
            loop=loop,
            events=events,
        )
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._store: wasmtime.Store | None = None
        self._run: wc.Func | None = None
        self._load: wc.Func | None = None
        """The shared runtime's ``agent-loader.load`` (None for other components)."""
        self._guard: DeadlineGuard | None = None
        self._memories: tuple[int, ...] = ()
        """Where this instance's linear memories start (see :mod:`.memory`)."""
        self._output: GuestOutput | None = None
        self._meter = Meter(
            agent=loaded.spec.name,
            instance=self.id,
            limits=loaded.spec.limits,
            events=events,
            memories=lambda: self._memories,
        )
        self.ctx.on_host_call = self._meter.sample
        self._stop_signal: asyncio.Future[None] = loop.create_future()
        self._when_done: list[Callable[[], None]] = []
        self.instantiate_s = 0.0
        """How long the last instantiation took on the instance's thread (for the bench)."""
        self._set_state(AgentState.LOADED)

    @property
    def agent(self) -> str:
        """The agent's name."""
        return self.loaded.spec.name

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop) once this instance has run or was discarded."""
        self._when_done.append(callback)

    def _done(self) -> None:
        callbacks, self._when_done = self._when_done, []
        for callback in callbacks:
            callback()

    def _set_state(self, state: AgentState, detail: str = "") -> None:
        self.state = state
        self._events(StateChanged(agent=self.agent, instance=self.id, state=state, detail=detail))

    # -- the worker thread ---------------------------------------------------------

    def _worker(self) -> None:
        bind_thread(self.ctx)
        while True:
            job = self._jobs.get()
            if job is None:
                break
            job()
        self.ctx.release()
        memory.drop(self._free_store, self._memories)
        if self._output is not None:
            self._output.close()
        with _abandoned_lock:
            _abandoned.discard(self.id)

    def _free_store(self) -> None:
        """Drop every reference to the store, so its memories are unmapped now."""
        self._store = None
        self._run = None
        self._load = None
        self._guard = None
        self._meter.forget()

    def _submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if future.done():
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def deliver(ok: bool, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone (a late thread)
                self._loop.call_soon_threadsafe(settle, ok, value)

        def job() -> None:
            try:
                result = fn()
            except BaseException as exc:  # delivered to the awaiting coroutine
                # The traceback's frames hold the store: clear them so a trapped
                # store (and the pipes of its output) is freed now, not at a later GC.
                _clear_frames(exc)
                deliver(False, exc)
            else:
                deliver(True, result)

        self._jobs.put(job)
        return future

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Create the store and instantiate the component on the instance's thread."""
        if self._thread is not None:
            return
        self._output = GuestOutput(self._loop, self.ctx.output("stdout"), self.ctx.output("stderr"))
        self._thread = threading.Thread(target=self._worker, name=f"agent-{self.id}", daemon=True)
        # Thread.start waits until the new thread runs: on a busy machine that is most of
        # a millisecond, which the loop (a run finishing, say) must not wait for.
        await self._loop.run_in_executor(_starter, self._thread.start)
        try:
            await self._submit(self._instantiate)
        except AgentError as error:
            self._set_state(AgentState.FAILED, error.message)
            self._jobs.put(None)
            raise
        self._set_state(AgentState.READY)

    def _instantiate(self) -> None:
        if self._store is not None:  # instantiated again: the old store goes first
            memory.drop(self._free_store, self._memories)
            self._memories = ()
        started = time.perf_counter()
        loaded = self.loaded
        limits = loaded.spec.limits
        store = wasmtime.Store(loaded.engine)
        wasi = wasmtime.WasiConfig()  # always: a store without WASI aborts the process
        assert self._output is not None
        self._output.attach(wasi)  # pipes, never Python callbacks on wasmtime's threads
        store.set_wasi(wasi)
        store.set_limits(memory_size=limits.memory_bytes)
        store.set_fuel(limits.fuel)
        self._guard = DeadlineGuard(store, self.ctx.cancelled)
        self._guard.on_check = self._meter.sample
        self._guard.arm(store, time.monotonic() + limits.deadline_ms / 1000)
        loaded.ticker.ensure_started()
        key = (loaded.spec.name, id(loaded.component))
        try:
            instance, self._memories = memory.instantiate(
                lambda: loaded.linker.instantiate(store, loaded.component),
                single=_memory_counts.get(key) == 1,
            )
        except wasmtime.WasmtimeError as exc:
            raise HostError(
                f"Could not instantiate agent {self.agent!r}: {_cause(exc)}",
                agent=self.agent,
                title="Agent failed to start",
            ) from None
        _memory_counts[key] = len(self._memories)
        index = instance.get_export_index(store, AGENT_EXPORT)
        run_index = instance.get_export_index(store, "run", index) if index else None
        func = instance.get_func(store, run_index) if run_index else None
        if func is None:
            raise HostError(f"Agent {self.agent!r} lost its run export.", agent=self.agent)
        self._load = None
        if loaded.code_version is not None:
            index = instance.get_export_index(store, AGENT_LOADER_EXPORT)
            load_index = instance.get_export_index(store, "load", index) if index else None
            self._load = instance.get_func(store, load_index) if load_index else None
        self.ctx.code_digest = ""  # a new store: no code loaded yet
        self._store = store
        self._run = func
        self.instantiate_s = time.perf_counter() - started

    async def prepare(self) -> bool:
        """Load the agent's code now, before a run is handed to this instance (a warm
        pool's instance), so that its run only calls ``run``.

        Only for an agent on its world's shared runtime; for others this does nothing.
        While the code loads no host call but ``agent-code`` is allowed: an agent whose
        code calls the kernel (or fails, or traps) as it loads gets a fresh instance
        instead, which loads the code in its run as a cold one does. The run checks that
        the code did not change since it was loaded (see :meth:`_execute`).

        Returns:
            False if loading blocked past the agent's deadline outside wasm code (in a
            WASI sleep, say): the instance was abandoned and must be discarded.
        """
        if self._load is None or self.state is not AgentState.READY:
            return True
        future = self._submit(self._prepare)
        limit = self.loaded.spec.limits.deadline_ms / 1000 + ABANDON_GRACE_S
        done, _ = await asyncio.wait({future}, timeout=limit)
        if done:
            future.result()
            return True
        self.ctx.abandoned = True  # its thread comes back on its own; nothing reaches us
        self.ctx.cancelled.set()
        future.cancel()
        with _abandoned_lock:
            _abandoned.add(self.id)
        self._set_state(AgentState.FAILED, "blocked while loading its code")
        return False

    def _prepare(self) -> None:
        """On the instance's thread: call ``agent-loader.load`` (see :meth:`prepare`)."""
        load, store = self._load, self._store
        if load is None or store is None:
            return
        ctx = self.ctx
        ctx.loading = True
        try:
            load(store)
            load.post_return(store)
        except wasmtime.WasmtimeError:
            ctx.loading = False
            self._instantiate()  # the run loads the code itself (and reports what failed)
        finally:
            ctx.loading = False
            ctx.fatal = None
            ctx.host_calls = 0
            ctx.host_seconds = 0.0

    async def run(self, task: AgentTask, bindings: RunBindings | None = None) -> RunOutcome:
        """Run ``task`` to its end. The instance is finished afterwards.

        Raises:
            RunFailed: the run failed; ``.error`` is the typed AgentError.
        """
        if self.state is AgentState.RUNNING:
            raise RunFailed(
                AgentBusy(
                    f"Instance {self.id} is already running a task; re-entry is refused.",
                    agent=self.agent,
                ),
                RunUsage(),
            )
        if self.state is not AgentState.READY:
            await self.start()
        self._set_state(AgentState.RUNNING, task.goal[:80])
        deadline_at = time.monotonic() + self.loaded.spec.limits.deadline_ms / 1000
        started = time.perf_counter()
        future: asyncio.Future[RunOutcome] = self._submit(
            lambda: self._execute(task, bindings or RunBindings(task_id=task.id), deadline_at)
        )
        try:
            outcome = await self._watch(future, deadline_at, started)
        except RunFailed as failure:
            self._set_state(AgentState.FAILED, failure.error.title)
            raise
        finally:
            self._jobs.put(None)
            self._done()
        self._set_state(AgentState.STOPPED, "done")
        return outcome

    async def _watch(
        self, future: asyncio.Future[RunOutcome], deadline_at: float, started: float
    ) -> RunOutcome:
        """Wait for the run; give up on it shortly after its deadline or a cancel."""
        stop_at: float | None = None
        while not future.done():
            now = time.monotonic()
            if stop_at is None and (self.ctx.cancelled.is_set() or now >= deadline_at):
                stop_at = now + ABANDON_GRACE_S
                self._unblock()
            limit = stop_at if stop_at is not None else deadline_at
            if now >= limit:
                raise self._abandon(future, started)
            waits: set[asyncio.Future[Any]] = {future}
            if stop_at is None:
                waits.add(self._stop_signal)
            await asyncio.wait(waits, timeout=limit - now, return_when=asyncio.FIRST_COMPLETED)
        return future.result()

    def _unblock(self) -> None:
        """Wake what the instance's thread may be waiting on in the kernel."""
        mesh, endpoint = self.ctx.bindings.mesh, self.ctx.endpoint
        if mesh is not None and endpoint is not None:
            mesh.unregister(self.id)  # a parked receive wakes with "closed"

    def _abandon(self, future: asyncio.Future[RunOutcome], started: float) -> RunFailed:
        """Give up on a run whose thread is blocked outside wasm code."""
        ctx = self.ctx
        cancelled = ctx.cancelled.is_set()
        ctx.abandoned = True
        ctx.cancelled.set()
        future.cancel()  # whatever the thread delivers later is dropped
        with _abandoned_lock:
            _abandoned.add(self.id)
        limits = self.loaded.spec.limits
        usage = RunUsage(
            wall_ms=(time.perf_counter() - started) * 1000,
            host_calls=ctx.host_calls,
            host_ms=ctx.host_seconds * 1000,
            tokens=ctx.usage,
        )
        error: AgentError
        if ctx.fatal is not None and not isinstance(ctx.fatal, AgentCancelled):
            error = ctx.fatal
        elif cancelled:
            error = AgentCancelled(
                f"{self.agent!r} was stopped: its task was cancelled (it was blocked in a "
                "system call and was abandoned).",
                agent=self.agent,
            )
        else:
            error = AgentTimeout(
                f"{self.agent!r} ran past its {limits.deadline_ms} ms deadline and was "
                "stopped (it was blocked in a system call, e.g. a sleep, and was abandoned). "
                f"{self._raise_hint('deadline_ms')}",
                agent=self.agent,
                stderr_tail=ctx.log.tail(),
            )
        return RunFailed(error, usage)

    def cancel(self) -> None:
        """Stop the run in progress (within a few epoch ticks); safe from any thread."""
        if self.state is AgentState.RUNNING:
            self._set_state(AgentState.DRAINING, "cancel requested")
        self.ctx.cancelled.set()
        signal = self._stop_signal

        def wake() -> None:
            if not signal.done():
                signal.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody watches
            self._loop.call_soon_threadsafe(wake)

    def discard(self) -> None:
        """Release an instance that will not run (e.g. when a pool shuts down)."""
        if self._thread is not None and self.state is not AgentState.RUNNING:
            self._jobs.put(None)
            self._set_state(AgentState.STOPPED, "discarded")
            self._done()

    # -- one run, on the worker thread -----------------------------------------------

    def _usage(self, started: float, call_s: float = 0.0) -> RunUsage:
        meter = self._meter
        if self._output is not None:
            self._output.drain()  # everything the guest wrote is in the log before its tail
        meter.finish()  # the final meters: fuel used and the memories' high-water mark
        return RunUsage(
            fuel=meter.fuel_used,
            wall_ms=(time.perf_counter() - started) * 1000,
            peak_memory_bytes=meter.peak_memory_bytes,
            host_calls=self.ctx.host_calls,
            host_ms=self.ctx.host_seconds * 1000,
            tokens=self.ctx.usage,
            call_ms=call_s * 1000,
        )

    def _stale(self) -> bool:
        """Whether the code this instance loaded before its run changed since."""
        digest, version = self.ctx.code_digest, self.loaded.code_version
        if not digest or version is None:
            return False
        try:
            return version() != digest
        except BrioError:  # unreadable now: the run's own read reports it
            return True

    def _execute(self, task: AgentTask, bindings: RunBindings, deadline_at: float) -> RunOutcome:
        if self._stale():  # edited since this (warm) instance loaded it: hot reload
            try:
                self._instantiate()
            except AgentError as error:
                raise RunFailed(error, RunUsage()) from None
        store, func, guard = self._store, self._run, self._guard
        assert store is not None
        assert func is not None
        assert guard is not None
        limits = self.loaded.spec.limits
        ctx = self.ctx
        ctx.begin(bindings, deadline_at)
        started = time.perf_counter()
        store.set_fuel(limits.fuel)  # instantiation used some; the run starts full
        self._meter.begin(store, task.id)
        size = len(task.goal) + sum(len(k) + len(v) for k, v in task.context)
        if size > limits.max_message_bytes:
            raise RunFailed(
                MessageTooLarge(
                    f"The task for {self.agent!r} is {size} bytes; the limit is "
                    f"{limits.max_message_bytes}. {self._raise_hint('max_message_bytes')}",
                    agent=self.agent,
                ),
                self._usage(started),
            )
        guard.arm(store, ctx.deadline_at)
        arg = self.loaded.run_shape.params[0](
            {"id": task.id, "goal": task.goal, "context": list(task.context)}
        )
        called = time.perf_counter()
        try:
            raw = func(store, arg)
            func.post_return(store)
        except wasmtime.WasmtimeError as exc:
            usage = self._usage(started)  # first: it drains the guest's last output
            raise RunFailed(self._classify(exc, guard.reason), usage) from None
        call_s = time.perf_counter() - called
        lift = self.loaded.run_shape.result
        result = lift(raw) if lift is not None else Ok({"summary": "", "data": ""})
        usage = self._usage(started, call_s)
        if isinstance(result, Err):
            payload = result.value if isinstance(result.value, dict) else {}
            raise RunFailed(
                GuestError(
                    str(payload.get("message", result.value)),
                    agent=self.agent,
                    title=f"Agent {self.agent} reported: {payload.get('kind', 'failed')}",
                ),
                usage,
            )
        value = result.value
        summary, data = str(value["summary"]), str(value["data"])
        if len(summary) + len(data) > limits.max_message_bytes:
            raise RunFailed(
                MessageTooLarge(
                    f"{self.agent!r} returned {len(summary) + len(data)} bytes; the limit is "
                    f"{limits.max_message_bytes}. {self._raise_hint('max_message_bytes')}",
                    agent=self.agent,
                ),
                usage,
            )
        return RunOutcome(
            agent=self.agent,
            summary=summary,
            data=data,
            usage=usage,
            models=tuple(ctx.models),
            log_tail=ctx.log.tail(),
        )

    def _raise_hint(self, limit: str) -> str:
        """Where the user raises ``limit`` for this agent (never its own manifest)."""
        return (
            f"If the work needs more, raise {limit} under [agents.{self.agent}] in "
            f"{user_config_file()}."
        )

    def _classify(self, exc: wasmtime.WasmtimeError, reason: str | None) -> AgentError:
        """Turn a trap into a typed error with a title the user understands."""
        ctx = self.ctx
        limits = self.loaded.spec.limits
        text = str(exc)
        tail = ctx.log.tail()
        if ctx.fatal is not None:
            return ctx.fatal
        if reason == "cancelled":
            return AgentCancelled(
                f"{self.agent!r} was stopped: its task was cancelled.", agent=self.agent
            )
        if reason == "deadline":
            return AgentTimeout(
                f"{self.agent!r} ran past its {limits.deadline_ms} ms deadline and was "
                f"stopped. {self._raise_hint('deadline_ms')}",
                agent=self.agent,
                stderr_tail=tail,
            )
        if "all fuel consumed" in text:
            return FuelExhausted(
                f"{self.agent!r} used all of its {limits.fuel:,} fuel and was stopped. "
                f"{self._raise_hint('fuel')}",
                agent=self.agent,
                stderr_tail=tail,
            )
        size = memory.linear_bytes(self._memories)
        if "MemoryError" in tail or size >= 0.8 * limits.memory_bytes:
            return MemoryLimit(
                f"{self.agent!r} tried to use more than its {limits.memory_bytes // (1 << 20)} MiB "
                f"of memory and was stopped. {self._raise_hint('memory_bytes')}",
                agent=self.agent,
                stderr_tail=tail,
            )
        return GuestPanic(
            f"{self.agent!r} crashed: {_cause(exc)}"
            + (f"\nIts last output:\n{tail}" if tail else ""),
            agent=self.agent,
            stderr_tail=tail,
        )


def _clear_frames(exc: BaseException) -> None:
    """Drop the locals of the frames ``exc`` and the exceptions it chains to hold."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _cause(exc: wasmtime.WasmtimeError) -> str:
    """The useful part of a wasmtime error: the text after "Caused by:", else line one."""
    text = str(exc)
    if "Caused by:" in text:
        cause = text.split("Caused by:", 1)[1].strip().splitlines()
        lines = [line.strip() for line in cause if line.strip()]
        return lines[0] if lines else text.splitlines()[0]
    for line in text.splitlines():
        if "wasm trap" in line or "trap" in line.lower():
            return line.strip()
    return text.splitlines()[0] if text else "unknown trap"


def outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    """A successful run as the ``--json`` object of ``briotui run``."""
    data: Any = outcome.data
    if data:
        try:
            data = json.loads(outcome.data)
        except ValueError:
            data = outcome.data
    return {
        "status": "ok",
        "agent": outcome.agent,
        "result": {"summary": outcome.summary, "data": data},
        "usage": outcome.usage.to_dict(),
        "models": [{"provider": p, "model": m} for p, m in outcome.models],
    }
