"""The subjects and messages between a kernel and its workers (JSON over NATS).

Subjects (``<ns>`` is the project's namespace, :func:`.config.project_namespace`):

- ``brio.<ns>.run.<world>`` — request, queue group :data:`QUEUE`: the kernel offers a
  run (:class:`RunOffer`); one worker with a free slot answers ``{"worker": id}``, a
  full one ``{"busy": true}``.
- ``brio.<ns>.call.<kernel>.<run>`` — request, worker → kernel: one relayed host call
  ``{"seq", "iface", "name", "args"}``; the reply is ``{"ok": value}``,
  ``{"failed": text}`` (the kernel failed serving it) or ``{"fatal": error}`` (the run
  must stop, e.g. cancelled). Values use :mod:`briotui.kernel.runtime.hostcodec`.
- ``brio.<ns>.done.<kernel>.<run>`` — request, worker → kernel: the run's end
  ``{"outcome": {...}}`` or ``{"error": {...}, "usage": {...}}``; retried until acked.
- ``brio.<ns>.cancel.<run>`` — publish, kernel → worker: stop the run.

``<kernel>`` is the offering kernel's own id: two kernels of the same project (two
clones of a repository share its namespace) never see each other's runs' calls.
- ``brio.<ns>.state`` — the project's state patches (published by the kernel).
- :data:`HEARTBEAT` — publish, every worker every :data:`HEARTBEAT_S`: its id, slots
  and runs. A worker is compute only and serves any project whose kernel shares its
  credentials, so its heartbeat is not namespaced.

A payload larger than the server's ``max_payload`` is put in the :data:`BLOBS` object
store bucket and the message carries ``{"$blob": name}`` instead.
Components travel by content hash in the :data:`COMPONENTS` bucket.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from briotui.kernel.errors import (
    AgentBusy,
    AgentCancelled,
    AgentError,
    AgentTimeout,
    CapabilityDenied,
    FuelExhausted,
    GuestError,
    GuestPanic,
    HostError,
    MemoryLimit,
    MessageTooLarge,
    WorkerLost,
)

QUEUE = "brio-workers"
"""The queue group every worker joins: one of them gets each offer."""

HEARTBEAT = "brio._workers.heartbeat"
HEARTBEAT_S = 0.5
"""How often a worker says it is alive."""

COMPONENTS = "brio-components"
"""Object store bucket of agent components, named by their SHA-256."""

BLOBS = "brio-blobs"
"""Object store bucket of oversized payloads (deleted once read)."""

BLOB_MARGIN = 4096


def subject(ns: str, kind: str, tail: str) -> str:
    """``brio.<ns>.<kind>.<tail>``."""
    return f"brio.{ns}.{kind}.{tail}"


def run_subject(ns: str, kind: str, kernel: str, run: str) -> str:
    """A run's call or done subject: ``brio.<ns>.<kind>.<kernel>.<run>``."""
    return f"brio.{ns}.{kind}.{kernel}.{run}"


def new_run_id() -> str:
    """A fresh run id (subject-safe)."""
    return uuid.uuid4().hex


def dumps(data: Any) -> bytes:
    """A message as compact JSON bytes."""
    return json.dumps(data, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """A message from JSON bytes."""
    return json.loads(data)


@dataclass(frozen=True)
class RunOffer:
    """One run the kernel offers to a worker.

    Attributes:
        run: The run id (its subjects' tail).
        ns: The project's namespace.
        agent: The agent's name.
        world: Its WIT world.
        limits: Its limits (as ``Limits`` fields).
        component: The SHA-256 of its component (in :data:`COMPONENTS`).
        key: The kernel's cache key of that component (a worker's own cache may have it).
        runtime: Whether it is a world's shared Python runtime (its ``agent-code`` import
            is relayed like any host call).
        task: ``{"id", "goal", "context"}``.
        kernel: Which kernel offers it (for the worker's log).
    """

    run: str
    ns: str
    agent: str
    world: str
    limits: dict[str, int]
    component: str
    key: str
    runtime: bool
    task: dict[str, Any]
    kernel: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As a message."""
        return dict(self.__dict__)

    @classmethod
    def of(cls, data: dict[str, Any]) -> RunOffer:
        """From a message."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


_ERRORS: dict[str, type[AgentError]] = {
    cls.kind: cls
    for cls in (
        AgentBusy,
        AgentCancelled,
        AgentError,
        AgentTimeout,
        CapabilityDenied,
        FuelExhausted,
        GuestError,
        GuestPanic,
        HostError,
        MemoryLimit,
        MessageTooLarge,
        WorkerLost,
    )
}


def error_to_dict(error: AgentError) -> dict[str, Any]:
    """A typed agent error as a message."""
    return error.to_dict()


def error_of(data: dict[str, Any], agent: str) -> AgentError:
    """The typed agent error a message describes (an unknown kind is a ``HostError``)."""
    cls = _ERRORS.get(str(data.get("kind", "")), HostError)
    error = cls(
        str(data.get("message", "")),
        agent=str(data.get("agent") or agent),
        title=str(data.get("title") or "") or None,
        stderr_tail=str(data.get("stderr_tail", "")),
    )
    return error
