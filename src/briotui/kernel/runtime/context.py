"""The per-instance state host functions work with: who is calling, limits, logs, usage.

Each agent instance runs in its own worker thread, and host functions find the
calling instance's :class:`CallContext` through a thread-local set by that thread.
Async work (a model request, a question to the user) goes to the event loop with
:meth:`CallContext.await_`, cut off by the host-call watchdog.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from briotui.kernel.caps.checker import Capabilities
from briotui.kernel.caps.model import Delegator
from briotui.kernel.errors import AgentError
from briotui.kernel.limits import Limits
from briotui.kernel.llm.types import Provider, Usage
from briotui.kernel.mesh import Endpoint, Envelope, Mesh
from briotui.kernel.runtime.events import EventSink, LogLine
from briotui.kernel.sqlpolicy import AgentSql
from briotui.kernel.workspace import WorkspaceView

if TYPE_CHECKING:
    from briotui.kernel.mcp.hub import McpHub
    from briotui.kernel.shell.session import ShellService
    from briotui.kernel.sqlservice import SqlService

T = TypeVar("T")

HostDispatch = Callable[["CallContext", str, str, Callable[..., Any], tuple[Any, ...]], Any]
"""How a host call is carried out: ``(ctx, iface, name, impl, args) -> result``."""


class TaskHost(Protocol):
    """What the ``tasks`` subtask imports call (the supervisor implements it)."""

    async def spawn(
        self,
        parent_task: str,
        parent_agent: str,
        subtask: dict[str, Any],
        *,
        ceiling: tuple[Delegator, ...] = (),
    ) -> str:
        """Start a subtask whose grants are cut down to those of ``ceiling``; its id."""
        ...

    async def wait(self, ids: Sequence[str], timeout_s: float) -> list[dict[str, Any]]:
        """Wait for subtasks; their results."""
        ...

    async def merge(self, parent_task: str, ids: Sequence[str]) -> dict[str, Any]:
        """Merge subtasks' branches into the parent's session; a report."""
        ...


AskUser = Callable[[str, str], Coroutine[Any, Any, str]]
"""Asks the user a question on behalf of an agent: ``(agent, question) -> answer``."""


@dataclass
class RunBindings:
    """What one run of an agent is bound to: its task, session and helpers.

    Attributes:
        task_id: The task being run.
        provider: Where ``llm.complete`` goes; None answers ``unavailable``.
        workspace: The session the ``workspace`` imports read and write; None answers
            ``unavailable``.
        ask_user: Answers ``tasks.ask-user``; None (headless) answers ``unavailable``.
        session_id: The session's id, for session-scoped grants.
        capabilities: The check every host call goes through; None only for trusted
            internal runs (the kernel always binds one for agents it runs).
        tasks: Serves the ``tasks`` subtask imports (the supervisor); None answers
            ``unavailable``.
        scope: Path globs this run's writes are confined to (a subtask's files); empty
            for no confinement beyond the agent's grants.
        shell: Runs allowed commands over the session; None answers ``unavailable``.
        sql: Opens the instance's private SQL tables; None answers ``unavailable``.
        mesh: Carries messages between agents; None answers ``unavailable``.
        ceiling: For a subtask, the agents above it: what it may do is cut down to
            what each of them may do (empty for a top-level run).
        mcp: The project's MCP servers, for the ``tools`` imports; None lists no tools.
        trace: The run's OpenTelemetry span context (None when tracing is off): spans
            opened by host calls on the worker thread are its children.
    """

    task_id: str = ""
    session_id: str = ""
    capabilities: Capabilities | None = None
    tasks: TaskHost | None = None
    scope: tuple[str, ...] = ()
    shell: ShellService | None = None
    sql: SqlService | None = None
    mesh: Mesh | None = None
    provider: Provider | None = None
    workspace: WorkspaceView | None = None
    ask_user: AskUser | None = None
    ceiling: tuple[Delegator, ...] = ()
    mcp: McpHub | None = None
    trace: object | None = None


class HostTimeout(Exception):
    """A host call ran past its watchdog (internal; becomes a WIT ``timeout`` error)."""


class BoundedLog:
    """The tail of an agent's output: whole lines, at most ``limit`` bytes in total."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lines: deque[str] = deque()
        self._size = 0
        self._partial = ""
        self.dropped = 0

    def add_line(self, line: str) -> None:
        """Append one line, dropping the oldest lines past the limit."""
        if len(line) > self.limit:
            line = line[: self.limit - 1] + "…"
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size > self.limit and self._lines:
            old = self._lines.popleft()
            self._size -= len(old) + 1
            self.dropped += 1

    def feed(self, data: bytes) -> list[str]:
        """Append raw output; returns the complete lines it finished."""
        text = self._partial + data.decode("utf-8", errors="replace")
        *complete, self._partial = text.split("\n")
        for line in complete:
            self.add_line(line)
        return complete

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines (including an unfinished one)."""
        items = list(self._lines)[-lines:]
        if self._partial:
            items.append(self._partial)
        return "\n".join(items)


class CallContext:
    """Everything host functions need about the instance that is calling them."""

    def __init__(
        self,
        *,
        agent: str,
        instance_id: str,
        limits: Limits,
        loop: asyncio.AbstractEventLoop,
        events: EventSink,
    ) -> None:
        self.agent = agent
        self.instance_id = instance_id
        self.limits = limits
        self.loop = loop
        self.events = events
        self.last_model_failures = 0
        """Failed attempts before the last model reply (its span's fallback count)."""
        self.bindings = RunBindings()
        self.log = BoundedLog(limits.log_bytes)
        self.cancelled = threading.Event()
        self.abandoned = False
        """Set (with ``cancelled``) when the run was given up on while this instance's
        thread was blocked; nothing the thread does afterwards may reach the kernel."""
        self.deadline_at = float("inf")
        self.stop_reason: str | None = None
        self.fatal: AgentError | None = None
        self.host_calls = 0
        self.host_seconds = 0.0
        self.loading = False
        """Set while a warm instance loads its agent's code before any run: host calls
        other than ``agent-code`` trap then (see :meth:`.AgentInstance.prepare`)."""
        self.code_digest = ""
        """The version of the agent's code the instance loaded ("" if it loaded none)."""
        self.on_host_call: Callable[[], None] | None = None
        """Called (on the instance's thread) at each host call: the live meters' sampler."""
        self.dispatch: HostDispatch | None = None
        """When set, each host call goes through it instead of calling the host function
        directly: ``dispatch(ctx, iface, name, impl, args)`` returns the call's result.
        The run journal records (or replays) through it; a worker relays through it.
        Arguments and results are kernel shapes (:mod:`.hostcodec` encodes them)."""
        self.usage = Usage()
        self.models: list[tuple[str, str]] = []
        self.sql: AgentSql | None = None
        self.endpoint: Endpoint | None = None
        self.requests: dict[int, Envelope] = {}

    def release(self) -> None:
        """Close what the instance held (its SQL connection, its mesh endpoint)."""
        if self.sql is not None:
            self.sql.close()
            self.sql = None
        if self.endpoint is not None and self.bindings.mesh is not None:
            self.bindings.mesh.unregister(self.instance_id)
            self.endpoint = None

    def begin(self, bindings: RunBindings, deadline_at: float | None = None) -> None:
        """Reset per-run state for a new run that must end by ``deadline_at``.

        Args:
            bindings: What the run is bound to.
            deadline_at: ``time.monotonic()`` value of the run's deadline; by default
                ``deadline_ms`` from now.
        """
        self.bindings = bindings
        self.deadline_at = (
            deadline_at
            if deadline_at is not None
            else time.monotonic() + self.limits.deadline_ms / 1000
        )
        self.stop_reason = None
        self.fatal = None
        self.host_calls = 0
        self.host_seconds = 0.0
        self.usage = Usage()
        self.models = []

    def remaining_seconds(self) -> float:
        """Time left before the run's deadline."""
        return self.deadline_at - time.monotonic()

    def should_stop(self) -> bool:
        """Whether a blocking host call must give up now: cancelled or past the deadline.

        Every host call that waits checks this in short slices, so the deadline and a
        cancel reach an agent blocked in the kernel as they reach one running code.
        """
        return self.cancelled.is_set() or time.monotonic() >= self.deadline_at

    def emit_log(self, level: str, message: str) -> None:
        """Record a log line and publish it."""
        self.log.add_line(f"[{level}] {message}")
        self.events(
            LogLine(agent=self.agent, instance=self.instance_id, level=level, message=message)
        )

    def output(self, stream: str) -> Callable[[bytes], None]:
        """A WASI stdout/stderr callback feeding this instance's bounded log."""
        level = "info" if stream == "stdout" else "warn"

        def write(data: bytes) -> None:
            if self.abandoned:  # a thread finishing after its run was given up on
                return
            for line in self.log.feed(data):
                self.events(
                    LogLine(agent=self.agent, instance=self.instance_id, level=level, message=line)
                )

        return write

    def await_(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the event loop and wait for it from this worker thread.

        The wait is cut off by the host-call watchdog: the smaller of the host-call
        limit and the time left before the deadline; a cancelled task cuts it too.

        Raises:
            HostTimeout: the watchdog fired (the coroutine is cancelled).
        """
        budget = min(self.limits.host_call_timeout_ms / 1000, max(0.0, self.remaining_seconds()))
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        end = time.monotonic() + budget
        while True:
            left = end - time.monotonic()
            if left <= 0 or self.should_stop():
                future.cancel()
                raise HostTimeout(
                    "cancelled" if self.cancelled.is_set() else f"after {budget * 1000:.0f} ms"
                )
            try:
                return future.result(timeout=min(left, 0.05))
            except concurrent.futures.TimeoutError:
                continue


_local = threading.local()


def bind_thread(ctx: CallContext) -> None:
    """Make ``ctx`` the context of host calls made on this thread."""
    _local.ctx = ctx


def current() -> CallContext:
    """The calling instance's context (set by :func:`bind_thread`)."""
    ctx: CallContext = _local.ctx
    return ctx
