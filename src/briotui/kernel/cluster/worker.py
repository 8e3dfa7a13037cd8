"""A worker: compute for a kernel elsewhere, holding no grants, sessions or keys.

``briotui worker --nats URL --slots N`` joins the :data:`~.protocol.QUEUE` queue group
of every world and takes up to N runs at a time. For each run it gets the agent's
component by content hash (its own cache first, else the cluster's object store,
then compiled once into its own cache), instantiates it with the brio imports
*relayed*: the instance's :attr:`CallContext.dispatch` sends each host call to the
kernel (:class:`Relay`) and the kernel's answer is lowered as a local result would be.
Fuel, memory and the deadline are enforced here exactly as in a local run (it is the
same :class:`~briotui.kernel.runtime.instance.AgentInstance`); a cancel arrives on
the run's cancel subject; a heartbeat says the worker is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import platform
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from wasmtime import component as wc

from briotui.kernel.agents import AgentSpec
from briotui.kernel.cluster import protocol
from briotui.kernel.cluster.config import ClusterConfig
from briotui.kernel.cluster.link import Link
from briotui.kernel.errors import AgentError, BrioError, HostError
from briotui.kernel.limits import Limits
from briotui.kernel.paths import cache_dir
from briotui.kernel.runtime import hostcodec
from briotui.kernel.runtime.cache import BuildCache, atomic_write
from briotui.kernel.runtime.context import CallContext, RunBindings
from briotui.kernel.runtime.engine import EngineSettings, EpochTicker, make_engine
from briotui.kernel.runtime.events import Event
from briotui.kernel.runtime.host import build_linker
from briotui.kernel.runtime.instance import AgentInstance, AgentTask, LoadedAgent, RunFailed
from briotui.kernel.runtime.pool import AgentPool
from briotui.kernel.runtime.pyruntime import AGENT_CODE

log = logging.getLogger(__name__)

RELAY_RETRY_S = 5.0
"""A relayed call unanswered this long is sent again (same seq: the kernel applies it
once and answers the retry with the same reply)."""

DONE_TRIES = 20


class RelayStopped(Exception):
    """A relayed host call gave up: the run was cancelled or the kernel is gone."""


class Relay:
    """Carries one run's host calls to the kernel (called on the instance's thread).

    Args:
        link: The worker's connection.
        subject: The run's call subject.
        loop: The worker's event loop (the NATS client lives there).
    """

    def __init__(self, link: Link, subject: str, loop: asyncio.AbstractEventLoop) -> None:
        self.link = link
        self.subject = subject
        self.loop = loop
        self.seq = 0

    async def _request(self, raw: bytes, wait_s: float) -> Any:
        packed = raw
        if len(raw) > self.link.nc.max_payload - protocol.BLOB_MARGIN:
            packed = await self.link.pack(protocol.loads(raw))
        msg = await self.link.nc.request(self.subject, packed, timeout=wait_s)
        return await self.link.unpack(msg.data)

    def dispatch(
        self, ctx: CallContext, iface: str, name: str, impl: Any, args: tuple[Any, ...]
    ) -> Any:
        """A host call, carried out by the kernel (a :data:`HostDispatch`).

        Raises:
            wasmtime.WasmtimeError: the kernel says the run must stop (``ctx.fatal`` set).
            RelayStopped: the run stopped while waiting, or the kernel never answered.
        """
        self.seq += 1
        raw = protocol.dumps(
            {"seq": self.seq, "iface": iface, "name": name, "args": hostcodec.encode(args)}
        )
        no_kernel_since: float | None = None
        while True:
            if ctx.should_stop():
                raise RelayStopped(f"{iface}.{name}: the run was stopped")
            future = asyncio.run_coroutine_threadsafe(self._request(raw, RELAY_RETRY_S), self.loop)
            try:
                reply = future.result(timeout=RELAY_RETRY_S + 1)
                break
            except (NatsTimeout, TimeoutError):
                future.cancel()
                continue  # the kernel is slow (a model reply): ask again, same seq
            except NoRespondersError:
                now = time.monotonic()
                no_kernel_since = no_kernel_since or now
                if now - no_kernel_since > 10:  # the kernel is gone: the run stops here
                    ctx.fatal = HostError(
                        f"The kernel stopped answering {ctx.agent!r}'s host calls; the run "
                        "was stopped on the worker.",
                        agent=ctx.agent,
                    )
                    ctx.cancelled.set()
                    raise wasmtime.WasmtimeError("brio: the kernel is gone") from None
                time.sleep(0.1)
        if "ok" in reply:
            return hostcodec.decode(reply["ok"])
        if "fatal" in reply:
            ctx.fatal = protocol.error_of(reply["fatal"], ctx.agent)
            raise wasmtime.WasmtimeError(f"brio: {ctx.fatal.title}")
        raise RelayStopped(str(reply.get("failed", "no answer")))


def _no_agent_code(ctx: CallContext) -> list[dict[str, Any]]:
    raise RelayStopped("agent-code is served by the kernel")  # replaced by the relay


@dataclass
class _Slot:
    offer: protocol.RunOffer
    instance: AgentInstance | None = None
    cancelled: bool = False


@dataclass
class WorkerStats:
    """What a worker did (for its log and the tests)."""

    runs: int = 0
    compiled: int = 0
    fetched: int = 0
    failures: list[str] = field(default_factory=list)


class Worker:
    """Runs agents for kernels over NATS.

    Args:
        config: Where the NATS server is and the credentials.
        slots: How many runs at a time.
        cache_root: Its compile cache (default: the build cache's ``cluster/``).
        worker_id: Its name (default: host name and a random suffix).
        namespace: Serve only this project's namespace (default: any).
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        slots: int = 2,
        cache_root: Path | None = None,
        worker_id: str | None = None,
        namespace: str = "*",
    ) -> None:
        self.config = config
        self.slots = max(1, slots)
        self.cache = BuildCache()
        self.cache_root = cache_root or self.cache.root / "cluster"
        self.id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self.namespace = namespace
        self.settings = EngineSettings()
        self.engine = make_engine(self.settings)
        self.ticker = EpochTicker(self.engine)
        self._fp = f"{self.settings.fingerprint()}-{platform.machine()}"
        self._components: dict[str, wc.Component] = {}
        self._pools: dict[tuple[object, ...], AgentPool] = {}
        """Warm instances per (component, agent, world, limits): a run takes one in
        microseconds and the pool refills after it, as in the kernel."""
        self._hashes: dict[Path, str] = {}
        self._running: dict[str, _Slot] = {}
        self._link: Link | None = None
        self._offers: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self.stats = WorkerStats()
        self.report: Callable[[str], None] | None = None
        """Told one line per run (the ``briotui worker`` command prints them)."""

    @property
    def free(self) -> int:
        """Free slots."""
        return self.slots - len(self._running)

    async def start(self) -> None:
        """Connect and start taking runs.

        Raises:
            ClusterError: the server is unreachable or refused the credentials.
        """
        self._link = await Link.connect(self.config, name=f"briotui-worker {self.id}")
        nc = self._link.nc
        await nc.subscribe(protocol.subject(self.namespace, "cancel", "*"), cb=self._on_cancel)
        await self._subscribe_offers()
        self._spawn(self._heartbeat())

    async def serve_forever(self) -> None:
        """Run until :meth:`stop`."""
        await self._stop.wait()

    async def stop(self) -> None:
        """Cancel the runs in progress and disconnect."""
        for slot in list(self._running.values()):
            if slot.instance is not None:
                slot.instance.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for pool in self._pools.values():
            await pool.close()
        if self._link is not None:
            await self._link.close()
        self.ticker.stop()
        self._stop.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe_offers(self) -> None:
        assert self._link is not None
        if self._offers is None:
            self._offers = await self._link.nc.subscribe(
                protocol.subject(self.namespace, "run", "*"),
                queue=protocol.QUEUE,
                cb=self._on_offer,
            )

    async def _unsubscribe_offers(self) -> None:
        offers, self._offers = self._offers, None
        if offers is not None:
            with contextlib.suppress(Exception):
                await offers.unsubscribe()

    async def _heartbeat(self) -> None:
        assert self._link is not None
        while not self._stop.is_set():
            beat = {
                "worker": self.id,
                "slots": self.slots,
                "free": self.free,
                "runs": sorted(self._running),
            }
            with contextlib.suppress(Exception):
                await self._link.nc.publish(protocol.HEARTBEAT, protocol.dumps(beat))
            await asyncio.sleep(protocol.HEARTBEAT_S)

    # -- offers ---------------------------------------------------------------------

    async def _on_offer(self, msg: Msg) -> None:
        try:
            assert self._link is not None
            offer = protocol.RunOffer.of(await self._link.unpack(msg.data))
        except Exception as exc:  # a malformed offer (or its blob is gone)
            await msg.respond(protocol.dumps({"refused": f"bad offer: {exc}"}))
            return
        if self.free <= 0:
            await msg.respond(protocol.dumps({"busy": True}))
            return
        self._running[offer.run] = _Slot(offer)
        if self.free <= 0:
            await self._unsubscribe_offers()  # no more offers until a slot frees
        await msg.respond(protocol.dumps({"worker": self.id}))
        self._spawn(self._run(offer))

    async def _on_cancel(self, msg: Msg) -> None:
        run = msg.subject.rsplit(".", 1)[-1]
        slot = self._running.get(run)
        if slot is None:
            return
        slot.cancelled = True
        if slot.instance is not None:
            slot.instance.cancel()

    # -- one run --------------------------------------------------------------------

    async def _run(self, offer: protocol.RunOffer) -> None:
        assert self._link is not None
        loop = asyncio.get_running_loop()
        result: dict[str, Any]
        try:
            instance = await (await self._pool(offer)).acquire()
            relay = Relay(
                self._link, protocol.run_subject(offer.ns, "call", offer.kernel, offer.run), loop
            )
            instance.ctx.dispatch = relay.dispatch
            slot = self._running[offer.run]
            slot.instance = instance
            if slot.cancelled:
                instance.cancel()
            task = offer.task
            outcome = await instance.run(
                AgentTask(
                    str(task["id"]),
                    str(task["goal"]),
                    tuple((str(k), str(v)) for k, v in task.get("context", ())),
                ),
                RunBindings(task_id=str(task["id"])),
            )
            result = {
                "outcome": {
                    "summary": outcome.summary,
                    "data": outcome.data,
                    "usage": _usage(outcome.usage),
                    "models": [list(m) for m in outcome.models],
                    "log_tail": outcome.log_tail,
                }
            }
        except RunFailed as failure:
            result = {"error": failure.error.to_dict(), "usage": _usage(failure.usage)}
        except AgentError as error:
            result = {"error": error.to_dict(), "usage": {}}
        except BrioError as error:
            result = {
                "error": HostError(error.message, agent=offer.agent, title=error.title).to_dict(),
                "usage": {},
            }
        except Exception as exc:  # a worker bug: the kernel gets a typed error, not silence
            log.exception("run %s of %s failed on the worker", offer.run, offer.agent)
            result = {
                "error": HostError(
                    f"The worker {self.id} failed running {offer.agent!r}: "
                    f"{type(exc).__name__}: {exc}",
                    agent=offer.agent,
                ).to_dict(),
                "usage": {},
            }
        result["worker"] = self.id
        self.stats.runs += 1
        if self.report is not None:
            failed = result.get("error")
            how = f"failed: {failed.get('title')}" if isinstance(failed, dict) else "done"
            self.report(f"{offer.agent} (task {offer.task.get('id')}, project {offer.ns}): {how}")
        await self._finish(offer, result)

    async def _finish(self, offer: protocol.RunOffer, result: dict[str, Any]) -> None:
        assert self._link is not None
        raw = await self._link.pack(result)
        done = protocol.run_subject(offer.ns, "done", offer.kernel, offer.run)
        # The slot is free (and offers are taken again) before the kernel hears of the
        # end: its next offer, sent when it does, finds this worker listening.
        self._running.pop(offer.run, None)
        if self.free > 0 and not self._stop.is_set():
            await self._subscribe_offers()
        for _ in range(DONE_TRIES):
            try:
                await self._link.nc.request(done, raw, timeout=2)
                break
            except Exception:  # the kernel is gone or slow: it may also have given up
                await asyncio.sleep(0.2)

    # -- components -------------------------------------------------------------------

    async def _pool(self, offer: protocol.RunOffer) -> AgentPool:
        key = (offer.component, offer.agent, offer.world, offer.runtime,
               tuple(sorted(offer.limits.items())))  # fmt: skip
        pool = self._pools.get(key)
        if pool is None:
            loaded = await self._load(offer)
            pool = self._pools.setdefault(
                key, AgentPool(loaded, size=1, loop=asyncio.get_running_loop(), events=_quiet)
            )
        return pool

    async def _load(self, offer: protocol.RunOffer) -> LoadedAgent:
        component = await self._component(offer)
        spec = AgentSpec(
            name=offer.agent,
            directory=Path(f"<{offer.agent} on worker {self.id}>"),
            origin="builtin",
            world=offer.world,
            limits=Limits(**offer.limits),
        )
        extra = {AGENT_CODE: {"modules": _no_agent_code}} if offer.runtime else None
        linker, shape = await asyncio.to_thread(
            build_linker, self.engine, component, spec, extra=extra
        )
        return LoadedAgent(spec, self.engine, component, linker, shape, self.ticker)

    def _sha_of(self, path: Path) -> str:
        known = self._hashes.get(path)
        if known is None:
            known = hashlib.sha256(path.read_bytes()).hexdigest()
            self._hashes[path] = known
        return known

    async def _component(self, offer: protocol.RunOffer) -> wc.Component:
        """The compiled component of ``offer``: in memory, in this machine's caches, or
        fetched by hash and compiled once."""
        sha = offer.component
        if sha in self._components:
            return self._components[sha]
        own = self.cache_root / f"{sha}-{self._fp}.cwasm"
        component: wc.Component | None = None
        if own.is_file():
            component = await asyncio.to_thread(_deserialize, self.engine, own)
        if component is None and offer.key:  # this machine's own build of the same bytes
            entry = self.cache.entry(offer.key, self.settings.fingerprint())
            if entry.compiled.is_file() and entry.component.is_file():
                same = await asyncio.to_thread(self._sha_of, entry.component)
                if same == sha:
                    component = await asyncio.to_thread(_deserialize, self.engine, entry.compiled)
        if component is None:
            assert self._link is not None
            data = await self._link.get_component(sha)
            self.stats.fetched += 1
            component = await asyncio.to_thread(self._compile, data, own)
        self._components[sha] = component
        return component

    def _compile(self, data: bytes, path: Path) -> wc.Component:
        try:
            component = wc.Component(self.engine, data)
        except wasmtime.WasmtimeError as exc:
            raise HostError(
                f"The component fetched from the cluster does not compile here: "
                f"{str(exc).splitlines()[0]}",
                title="Component does not compile",
            ) from None
        with contextlib.suppress(OSError):
            atomic_write(path, bytes(component.serialize()))
        self.stats.compiled += 1
        return component


def _deserialize(engine: wasmtime.Engine, path: Path) -> wc.Component | None:
    try:
        return wc.Component.deserialize_file(engine, str(path))
    except wasmtime.WasmtimeError:
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _quiet(event: Event) -> None:
    """The worker's event sink: the kernel publishes what users see."""


def _usage(usage: Any) -> dict[str, Any]:
    data: dict[str, Any] = usage.to_dict()
    data["call_ms"] = round(usage.call_ms, 3)
    return data


def default_worker_cache() -> Path:
    """Where a worker keeps the components it compiled."""
    return Path(os.environ.get("BRIOTUI_WORKER_CACHE", str(cache_dir() / "cluster")))
