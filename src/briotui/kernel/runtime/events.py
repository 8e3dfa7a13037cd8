"""Events the runtime publishes: lifecycle changes, meters, logs, progress, streamed model text.

Events are frozen dataclasses delivered to a sink callable. Sinks may be called from
agent worker threads; :class:`EventBus` hands them to subscribers on the event loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from time import time

log = logging.getLogger(__name__)


class AgentState(enum.Enum):
    """The lifecycle of one agent instance."""

    UNLOADED = "unloaded"
    LOADED = "loaded"
    READY = "ready"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Event:
    """Base of runtime events."""

    agent: str
    instance: str
    at: float = field(default_factory=time, compare=False)


@dataclass(frozen=True)
class StateChanged(Event):
    """An instance moved to a new lifecycle state."""

    state: AgentState = AgentState.UNLOADED
    detail: str = ""


@dataclass(frozen=True)
class Metrics(Event):
    """What a running instance uses now, sampled from its store (at most ~10 a second).

    Attributes:
        task: The task the instance runs.
        fuel_used: Fuel spent by the run so far.
        fuel_limit: The run's fuel budget.
        memory_bytes: The size of the instance's linear memories now.
        memory_limit: The most its memories may grow to.
        peak_memory_bytes: The largest ``memory_bytes`` seen (memories never shrink).
        final: The last sample of a run.
    """

    task: str = ""
    fuel_used: int = 0
    fuel_limit: int = 0
    memory_bytes: int = 0
    memory_limit: int = 0
    peak_memory_bytes: int = 0
    final: bool = False


@dataclass(frozen=True)
class LogLine(Event):
    """The agent logged a line (through ``log.emit`` or its stdout/stderr)."""

    level: str = "info"
    message: str = ""


@dataclass(frozen=True)
class Progress(Event):
    """The agent reported progress on its task."""

    task: str = ""
    percent: int = 0
    note: str = ""


@dataclass(frozen=True)
class Milestone(Event):
    """The agent reached a milestone."""

    task: str = ""
    name: str = ""


@dataclass(frozen=True)
class ModelDelta(Event):
    """A piece of a model reply, streamed as it arrives."""

    task: str = ""
    text: str = ""


@dataclass(frozen=True)
class ModelReply(Event):
    """A complete model reply, with its provenance (for the transcript and accounting)."""

    task: str = ""
    purpose: str = ""
    prompt: str = ""
    text: str = ""
    provider: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    fallback_from: str = ""
    tool_calls: tuple[str, ...] = ()
    """The tool calls the reply made, each named compactly ("read calc.py:120-180")."""


@dataclass(frozen=True)
class ModelReset(Event):
    """The model request in progress failed after streaming: drop the text it streamed.

    Front ends discard the deltas since the instance's last :class:`ModelReply` (the
    reply in progress); another provider's reply follows.
    """

    task: str = ""


@dataclass(frozen=True)
class ModelAttemptFailed(Event):
    """One attempt at a model request failed (the router retries or falls back)."""

    task: str = ""
    session: str = ""
    provider: str = ""
    model: str = ""
    cause: str = ""
    message: str = ""


@dataclass(frozen=True)
class ModelFallback(Event):
    """A reply came from another provider than the one asked first, which failed."""

    task: str = ""
    from_provider: str = ""
    from_model: str = ""
    to_provider: str = ""
    to_model: str = ""
    cause: str = ""


@dataclass(frozen=True)
class CommandRan(Event):
    """An agent's command finished in a session (the kernel ran it and saw the exit)."""

    task: str = ""
    session: str = ""
    argv: tuple[str, ...] = ()
    exit_code: int = 0
    duration_ms: int = 0
    output: str = ""
    """The tail of what it printed (stdout, then stderr), bounded by
    :data:`COMMAND_OUTPUT_TAIL` characters."""
    truncated: bool = False
    """Whether ``output`` lost its beginning (the runner's bound or the tail)."""


COMMAND_OUTPUT_TAIL = 64_000
"""Most characters of a command's output the kernel keeps (its end: failures print last)."""


EventSink = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers, safe to publish from any thread.

    Subscribers are plain callables run on the bus's event loop (so UI code can
    touch its widgets); publishing from a worker thread schedules delivery with
    ``call_soon_threadsafe``. With no loop (plain scripts), delivery is immediate.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._subscribers: list[EventSink] = []
        self._lock = threading.Lock()

    def subscribe(self, sink: EventSink) -> Callable[[], None]:
        """Add ``sink``; returns a function that removes it."""
        with self._lock:
            self._subscribers.append(sink)

        def unsubscribe() -> None:
            with self._lock:
                if sink in self._subscribers:
                    self._subscribers.remove(sink)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber (on the loop, if there is one)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._deliver, event)
                return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sink in subscribers:
            try:
                sink(event)
            except Exception:  # a broken subscriber must not break the runtime
                log.exception("event subscriber %r failed on %s", sink, type(event).__name__)
