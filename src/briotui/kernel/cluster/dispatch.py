"""The kernel's side of the cluster: offering runs to workers and serving their host calls.

:class:`Dispatcher` connects once per kernel. :meth:`Dispatcher.offer` asks the
world's queue group for a worker; the one that takes the run answers within
``offer_ms``, else the caller runs the agent locally. The run is then a
:class:`RemoteInstance`: the same ``run``/``cancel``/``discard`` face as a local
:class:`~briotui.kernel.runtime.instance.AgentInstance`, so the kernel's run path does
not care where it runs.

Each relayed host call is served on a thread of the run's own (bound to a kernel-side
:class:`~briotui.kernel.runtime.context.CallContext` holding the run's bindings: its
session, grants, shell, SQL, mesh endpoint) by the very host function a local run
calls, so the capability check, its prompt, the audit row and the size limits are the
kernel's. Calls are numbered by the worker; the kernel serves each (run, seq) once and
answers a retried request with the stored reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from briotui.kernel.agents import AgentSpec
from briotui.kernel.cluster import protocol
from briotui.kernel.cluster.config import ClusterConfig
from briotui.kernel.cluster.link import Link
from briotui.kernel.errors import AgentCancelled, AgentError, AgentTimeout, HostError, WorkerLost
from briotui.kernel.llm.types import Usage
from briotui.kernel.runtime import hostcodec
from briotui.kernel.runtime.build import Builder
from briotui.kernel.runtime.context import CallContext, RunBindings, bind_thread
from briotui.kernel.runtime.events import AgentState, EventSink, StateChanged
from briotui.kernel.runtime.host import HOST_FUNCTIONS, HostImpl
from briotui.kernel.runtime.instance import AgentTask, LoadedAgent, RunFailed, RunOutcome, RunUsage

log = logging.getLogger(__name__)

_ids = itertools.count(1)

FINISH_GRACE_S = 10.0
"""How long past its deadline a remote run may take to report before it is given up."""


@dataclass
class WorkerInfo:
    """A worker as its heartbeats describe it."""

    id: str
    last_seen: float
    slots: int = 0
    free: int = 0
    runs: list[str] = field(default_factory=list)


class RemoteInstance:
    """An agent run on a worker, with the face of a local instance.

    Attributes:
        id: Its instance id (``agent@worker#n``).
        worker: The worker running it.
        ctx: The kernel-side context relayed host calls are served with.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        loaded: LoadedAgent,
        impls: Mapping[str, Mapping[str, HostImpl]],
        run_id: str,
        worker: str = "",
    ) -> None:
        self.dispatcher = dispatcher
        self.loaded = loaded
        self.impls = impls
        self.run_id = run_id
        self.worker = worker
        self.id = f"{loaded.spec.name}@{worker or '?'}#{next(_ids)}"
        self.state = AgentState.READY
        loop = dispatcher.loop
        self._loop = loop
        self._events = dispatcher.events
        self.ctx = CallContext(
            agent=loaded.spec.name,
            instance_id=self.id,
            limits=loaded.spec.limits,
            loop=loop,
            events=dispatcher.events,
        )
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix=f"relay-{self.id}", initializer=bind_thread, initargs=(self.ctx,)
        )
        self._bound = asyncio.Event()
        self._result: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._last_seq = 0
        self._replies: dict[int, asyncio.Future[bytes]] = {}
        self.lost = False
        self._ended = False

    @property
    def agent(self) -> str:
        """The agent's name."""
        return self.loaded.spec.name

    def accepted(self, worker: str) -> None:
        """``worker`` took the run (before :meth:`run` binds it)."""
        self.worker = worker
        self.id = f"{self.agent}@{worker}#{self.id.rsplit('#', 1)[-1]}"
        self.ctx.instance_id = self.id

    def _set_state(self, state: AgentState, detail: str = "") -> None:
        self.state = state
        self._events(StateChanged(agent=self.agent, instance=self.id, state=state, detail=detail))

    # -- the instance face ------------------------------------------------------------

    async def run(self, task: AgentTask, bindings: RunBindings | None = None) -> RunOutcome:
        """Bind the run and wait for the worker to end it.

        Raises:
            RunFailed: the run failed there, or the worker was lost (``WorkerLost``).
        """
        limits = self.loaded.spec.limits
        deadline_at = time.monotonic() + limits.deadline_ms / 1000
        self.ctx.begin(bindings or RunBindings(task_id=task.id), deadline_at)
        self._bound.set()
        self._set_state(AgentState.RUNNING, f"on worker {self.worker}: {task.goal[:60]}")
        started = time.perf_counter()
        try:
            data = await asyncio.wait_for(
                asyncio.shield(self._result), timeout=limits.deadline_ms / 1000 + FINISH_GRACE_S
            )
        except TimeoutError:
            self.cancel()
            data = {
                "error": AgentTimeout(
                    f"{self.agent!r} on worker {self.worker} did not end within its "
                    f"{limits.deadline_ms} ms deadline.",
                    agent=self.agent,
                ).to_dict()
            }
        except asyncio.CancelledError:
            self.cancel()
            raise
        finally:
            await self._wind_down()
        wall_ms = (time.perf_counter() - started) * 1000
        if "outcome" in data:
            out = data["outcome"]
            self._set_state(AgentState.STOPPED, "done")
            return RunOutcome(
                agent=self.agent,
                summary=str(out.get("summary", "")),
                data=str(out.get("data", "")),
                usage=self._usage(out.get("usage", {}), wall_ms),
                models=tuple(self.ctx.models),
                log_tail=str(out.get("log_tail", "")),
            )
        error = protocol.error_of(data.get("error", {}), self.agent)
        if isinstance(error, AgentCancelled) and self.lost:
            error = self._lost_error()
        self._set_state(AgentState.FAILED, error.title)
        raise RunFailed(error, self._usage(data.get("usage", {}), wall_ms))

    def cancel(self) -> None:
        """Stop the run: the worker's instance and any call the kernel is serving."""
        if self.state is AgentState.RUNNING:
            self._set_state(AgentState.DRAINING, "cancel requested")
        self.ctx.cancelled.set()
        self.dispatcher.send_cancel(self.run_id)

    def discard(self) -> None:
        """Release a run that will not be started (the worker frees its slot)."""
        self.cancel()
        if not self._result.done():
            self._result.set_result(
                {"error": AgentCancelled("discarded", agent=self.agent).to_dict()}
            )
        self._bound.set()  # a call already waiting for the run is refused now
        self._end()

    def lose(self) -> None:
        """The worker stopped heartbeating: fail the run now."""
        if self._result.done():
            return
        self.lost = True
        self.ctx.cancelled.set()  # calls being served stop waiting; later ones are refused
        self._result.set_result({"error": self._lost_error().to_dict()})

    def _lost_error(self) -> WorkerLost:
        return WorkerLost(
            f"The worker {self.worker} running {self.agent!r} stopped answering (it was "
            "killed, crashed or lost its network); the run was stopped.",
            agent=self.agent,
        )

    def finish(self, data: dict[str, Any]) -> None:
        """The worker reported the run's end."""
        if not self._result.done():
            self._result.set_result(data)

    async def _wind_down(self) -> None:
        """Wait for the call being served (so nothing of the run lands later), then
        release what the kernel-side context holds, on its own thread."""
        self.ctx.abandoned = True
        self.ctx.cancelled.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._loop.run_in_executor(self._executor, self.ctx.release),
                timeout=self.ctx.limits.host_call_timeout_ms / 1000,
            )
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._executor.shutdown(wait=False)
            self.dispatcher.forget(self.run_id)

    def _usage(self, data: Mapping[str, Any], wall_ms: float) -> RunUsage:
        def num(key: str) -> float:
            value = data.get(key, 0)
            return float(value) if isinstance(value, int | float) else 0.0

        return RunUsage(
            fuel=int(num("fuel")),
            wall_ms=wall_ms,
            peak_memory_bytes=int(num("peak_memory_bytes")),
            host_calls=int(num("host_calls")),
            host_ms=num("host_ms"),
            tokens=self.ctx.usage if isinstance(self.ctx.usage, Usage) else Usage(),
            call_ms=num("call_ms"),
        )

    # -- relayed host calls -------------------------------------------------------------

    async def serve(self, msg: Msg) -> None:
        """Answer one relayed host call (each seq is served once)."""
        link = self.dispatcher.link
        request = await link.unpack(msg.data)
        seq = int(request["seq"])
        known = self._replies.get(seq)
        if known is not None:  # a retry: the same answer, never a second application
            await msg.respond(await asyncio.shield(known))
            return
        if seq <= self._last_seq:  # older than what was already answered: dropped
            return
        self._last_seq = seq
        reply: asyncio.Future[bytes] = self._loop.create_future()
        self._replies = {s: f for s, f in self._replies.items() if s >= seq - 1}
        self._replies[seq] = reply
        try:
            await self._bound.wait()
            answer = await self._loop.run_in_executor(
                self._executor, self._serve, str(request["iface"]), str(request["name"]),
                request.get("args", {"$t": []}),
            )  # fmt: skip
            raw = await link.pack(answer)
        except Exception as exc:  # the executor is shut down: the run has ended
            raw = protocol.dumps({"fatal": self._stopped(str(exc)).to_dict()})
        reply.set_result(raw)
        with contextlib.suppress(Exception):
            await msg.respond(raw)

    def _stopped(self, why: str = "") -> AgentError:
        if self.lost:
            return self._lost_error()
        return AgentCancelled(
            f"{self.agent!r} was stopped: its run has ended{f' ({why})' if why else ''}.",
            agent=self.agent,
        )

    def _serve(self, iface: str, name: str, args: Any) -> dict[str, Any]:
        """One host call on the run's thread, as ``_wrap`` serves a local one."""
        ctx = self.ctx
        if ctx.cancelled.is_set() or self._result.done():
            fatal = ctx.fatal or (
                AgentCancelled(f"{ctx.agent!r} was stopped: its task was cancelled.",
                               agent=ctx.agent)
                if not self.lost else self._lost_error()
            )  # fmt: skip
            return {"fatal": fatal.to_dict()}
        impl = self.impls.get(iface, {}).get(name)
        if impl is None:
            return {"failed": f"the kernel has no host function {iface}.{name}"}
        started = time.perf_counter()
        ctx.host_calls += 1
        try:
            lifted = hostcodec.decode(args)
            lifted = tuple(lifted) if isinstance(lifted, list | tuple) else (lifted,)
            dispatch = ctx.dispatch
            if dispatch is None:
                result = impl(ctx, *lifted)
            else:
                result = dispatch(ctx, iface, name, impl, lifted)
            return {"ok": hostcodec.encode(result)}
        except wasmtime.WasmtimeError as exc:
            fatal = ctx.fatal or HostError(f"{iface}.{name}: {exc}", agent=ctx.agent)
            return {"fatal": fatal.to_dict()}
        except Exception as exc:
            log.exception("relayed host function %s.%s failed for %s", iface, name, ctx.agent)
            return {"failed": f"{type(exc).__name__}: {exc}"}
        finally:
            ctx.host_seconds += time.perf_counter() - started


class Dispatcher:
    """Offers a kernel's agent runs to workers and serves their host calls.

    Args:
        config: The cluster.
        namespace: The project's namespace.
        loop: The kernel's loop.
        events: The kernel's event sink.
        builder: The kernel's builder (components and the runtimes' ``agent-code``).
    """

    def __init__(
        self,
        config: ClusterConfig,
        namespace: str,
        *,
        loop: asyncio.AbstractEventLoop,
        events: EventSink,
        builder: Builder,
    ) -> None:
        self.config = config
        self.ns = namespace
        self.loop = loop
        self.events = events
        self.builder = builder
        self.agents = config.agents
        self._link: Link | None = None
        self.workers: dict[str, WorkerInfo] = {}
        self.runs: dict[str, RemoteInstance] = {}
        self.id = uuid.uuid4().hex[:12]
        """This kernel's id in its runs' subjects."""
        self.placements: dict[str, str] = {}
        """Task id -> the worker that ran it (the last attempt)."""
        self._components: dict[Path, str] = {}
        self._monitor: asyncio.Task[None] | None = None
        self.notice: Callable[[str], None] | None = None
        """Told when a worker is lost (``briotui serve`` prints it)."""

    @property
    def link(self) -> Link:
        """The connection (after :meth:`start`)."""
        assert self._link is not None
        return self._link

    async def start(self) -> None:
        """Connect and listen for calls, results and heartbeats.

        Raises:
            ClusterError: the server is unreachable or refused the credentials.
        """
        self._link = await Link.connect(self.config, name=f"briotui-kernel {self.ns}")
        nc = self._link.nc
        await nc.subscribe(protocol.run_subject(self.ns, "call", self.id, "*"), cb=self._on_call)
        await nc.subscribe(protocol.run_subject(self.ns, "done", self.id, "*"), cb=self._on_done)
        await nc.subscribe(protocol.HEARTBEAT, cb=self._on_heartbeat)
        self._monitor = self.loop.create_task(self._watch_workers())

    async def close(self) -> None:
        """Fail what still runs remotely and disconnect."""
        for run in list(self.runs.values()):
            run.cancel()
            run.finish(  # nobody will report it any more
                {"error": AgentCancelled("The kernel closed.", agent=run.agent).to_dict()}
            )
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        if self._link is not None:
            await self._link.close()
            self._link = None

    # -- offering -------------------------------------------------------------------------

    def wants(self, agent: str) -> bool:
        """Whether ``agent`` may run on a worker."""
        return self._link is not None and (self.agents is None or agent in self.agents)

    def _component_bytes(self, spec: AgentSpec) -> tuple[Path, str]:
        entry = self.builder.entry_for(spec)
        path = entry.component if entry.component.is_file() else spec.component_file
        if path is None or not path.is_file():
            raise FileNotFoundError(f"no component file for {spec.name}")
        return path, self.builder.artifact(spec).key

    async def _publish_component(self, spec: AgentSpec) -> tuple[str, str]:
        path, key = await asyncio.to_thread(self._component_bytes, spec)
        sha = self._components.get(path)
        if sha is None:
            data = await asyncio.to_thread(path.read_bytes)
            if path.suffix == ".wat":
                data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
            sha = hashlib.sha256(data).hexdigest()
            if not await self.link.has_component(sha):
                await self.link.put_component(data)
            self._components[path] = sha
        return sha, key

    async def offer(self, loaded: LoadedAgent, task: AgentTask) -> RemoteInstance | None:
        """Hand ``task`` to a worker with a free slot; None if none took it in time."""
        if not self.wants(loaded.spec.name):
            return None
        spec = loaded.spec
        try:
            sha, key = await self._publish_component(spec)
        except Exception as exc:  # not publishable (a store error): it runs here
            log.warning("agent %s stays local: %s", spec.name, exc)
            if self.notice is not None:
                self.notice(
                    f"{spec.name} runs here: its component could not be put in the "
                    f"cluster's object store ({exc})"
                )
            return None
        artifact = self.builder.artifact(spec)
        impls: dict[str, Mapping[str, HostImpl]] = dict(HOST_FUNCTIONS)
        runtime = artifact.kind == "runtime"
        if runtime:
            impls.update(self.builder.server.host_functions(spec, artifact.key))
        subject = protocol.subject(self.ns, "run", spec.world)
        end = time.monotonic() + self.config.offer_ms / 1000
        while time.monotonic() < end:
            # A fresh run id per attempt, registered before the offer leaves: a worker
            # with a warm instance relays its first call before its "yes" is read here
            # (the call waits for the run to be bound), and a worker whose "yes" came
            # too late runs an id the kernel no longer knows (its calls are refused).
            run_id = protocol.new_run_id()
            instance = RemoteInstance(self, loaded, impls, run_id)
            self.runs[run_id] = instance
            offer = protocol.RunOffer(
                run=run_id,
                ns=self.ns,
                agent=spec.name,
                world=spec.world,
                limits=dict(spec.limits.__dict__),
                component=sha,
                key=key,
                runtime=runtime,
                task={"id": task.id, "goal": task.goal, "context": [list(c) for c in task.context]},
                kernel=self.id,
            )
            answer: Any = None
            try:
                raw = await self.link.pack(offer.to_dict())
                left = max(0.001, end - time.monotonic())
                msg = await self.link.nc.request(subject, raw, timeout=left)
                answer = protocol.loads(msg.data)
            except NoRespondersError:  # no worker listens (none, or all full): run here
                instance.discard()
                return None
            except (NatsTimeout, TimeoutError):
                pass
            worker = answer.get("worker") if isinstance(answer, dict) else None
            if isinstance(worker, str):
                instance.accepted(worker)
                self.placements[task.id] = worker
                self.workers.setdefault(worker, WorkerInfo(worker, time.monotonic()))
                return instance
            instance.discard()  # no worker took it (or too late: it is told to stop)
            await asyncio.sleep(0.02)  # busy, or no worker listens yet
        return None

    def send_cancel(self, run_id: str) -> None:
        """Tell the worker of ``run_id`` to stop it."""
        if self._link is None:
            return
        with contextlib.suppress(Exception):
            self.loop.create_task(
                self._link.nc.publish(protocol.subject(self.ns, "cancel", run_id), b"")
            )

    def forget(self, run_id: str) -> None:
        """The run ended: later messages of it are refused."""
        self.runs.pop(run_id, None)

    # -- messages ---------------------------------------------------------------------------

    async def _on_call(self, msg: Msg) -> None:
        run = self.runs.get(msg.subject.rsplit(".", 1)[-1])
        if run is None:  # ended, lost or unknown: nothing of it is applied any more
            with contextlib.suppress(Exception):
                await msg.respond(
                    protocol.dumps(
                        {"fatal": AgentCancelled("This run has ended in the kernel.").to_dict()}
                    )
                )
            return
        self.loop.create_task(run.serve(msg))

    async def _on_done(self, msg: Msg) -> None:
        run = self.runs.get(msg.subject.rsplit(".", 1)[-1])
        with contextlib.suppress(Exception):
            await msg.respond(b"ok")
        if run is None:
            return
        try:
            data = await self.link.unpack(msg.data)
        except Exception as exc:
            data = {"error": HostError(f"unreadable result: {exc}", agent=run.agent).to_dict()}
        run.finish(data if isinstance(data, dict) else {})

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = protocol.loads(msg.data)
            wid = str(beat["worker"])
        except (ValueError, KeyError, TypeError):
            return
        info = self.workers.setdefault(wid, WorkerInfo(wid, 0.0))
        info.last_seen = time.monotonic()
        info.slots = int(beat.get("slots", 0))
        info.free = int(beat.get("free", 0))
        info.runs = [str(r) for r in beat.get("runs", [])]

    async def _watch_workers(self) -> None:
        lost_after = self.config.lost_after_ms / 1000
        while True:
            await asyncio.sleep(min(0.25, lost_after / 4))
            now = time.monotonic()
            for run in list(self.runs.values()):
                info = self.workers.get(run.worker)
                if info is not None and now - info.last_seen > lost_after:
                    log.info("worker %s lost; failing run %s", run.worker, run.run_id)
                    if self.notice is not None:
                        self.notice(
                            f"worker {run.worker} lost: its {run.agent} run failed and is "
                            "retried once elsewhere"
                        )
                    run.lose()
