"""What the UI needs from a kernel: the narrow interface a local or a remote kernel offers.

The TUI drives :class:`KernelPort`: the local :class:`~briotui.kernel.kernel.Kernel`
implements it, and so does :class:`~briotui.kernel.serve.remote.RemoteKernel`, a kernel
served by ``briotui serve`` (``briotui attach``). The UI reads only the typed state
(``state``, in the shapes of :mod:`briotui.kernel.contract`), listens to the streamed
conversation (``events``) and calls these commands; what only a local kernel can do
(build agents, watch the working tree, trust the config) the app asks of its own
``Kernel`` and skips when attached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from briotui.kernel.runtime.events import Event
from briotui.kernel.session_commands import CommitCheck, Retest
from briotui.kernel.state import Json, PatchSink, Path, Subscription
from briotui.kernel.supervisor import TaskResult
from briotui.kernel.vfs import Decision, SessionDiff, SessionInfo
from briotui.kernel.vfs.commit import CommitResult, RollbackResult
from briotui.kernel.vfs.resolve import Choice, Resolved


class StatePort(Protocol):
    """The state tree as the UI reads it."""

    def get(self, path: Path = "", default: Json = None) -> Json: ...

    def set(
        self, path: Path, value: Json, *, coalesce: bool = False, parents: bool = False
    ) -> None: ...

    def subscribe(
        self, sink: PatchSink, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> Subscription: ...


class EventsPort(Protocol):
    """The kernel's events (the UI follows the streamed conversation)."""

    def subscribe(self, sink: Callable[[Event], None]) -> Callable[[], None]: ...


class SessionPort(Protocol):
    """One session as the review reads it (``diff`` and ``decisions`` off the loop)."""

    @property
    def id(self) -> str: ...

    @property
    def task(self) -> str: ...

    @property
    def state(self) -> str: ...

    def diff(self) -> SessionDiff: ...

    def decisions(self) -> dict[str, tuple[Decision, str]]: ...


class SessionsPort(Protocol):
    """The project's sessions (``list`` off the loop)."""

    def get(self, session_id: str) -> SessionPort: ...

    def list(self) -> list[SessionInfo]: ...


class KernelPort(Protocol):
    """The kernel as the UI drives it, local or attached."""

    @property
    def state(self) -> StatePort: ...

    @property
    def events(self) -> EventsPort: ...

    async def submit(
        self,
        goal: str,
        *,
        agent: str | None = None,
        provider: Any = None,
        session_id: str | None = None,
    ) -> str: ...

    async def wait(self, task_id: str) -> TaskResult: ...

    def cancel(self, task_id: str) -> bool: ...

    def sessions(self) -> SessionsPort: ...

    def transcript(self, task_id: str) -> list[dict[str, Any]]: ...

    def task_of_session(self, session_id: str) -> str | None: ...

    def test_run(self, session_id: str) -> dict[str, Any] | None: ...

    async def decide(
        self,
        session_id: str,
        hunk_ids: Sequence[str] | None,
        decision: Decision,
        *,
        reason: str = "",
        path: str | None = None,
    ) -> list[str]: ...

    async def verify_commit(self, session_id: str) -> CommitCheck: ...

    async def commit(
        self,
        session_id: str,
        *,
        git: bool = False,
        message: str | None = None,
        force: bool = False,
        expected_ids: Collection[str] | None = None,
    ) -> CommitResult: ...

    async def resolve_conflict(
        self,
        session_id: str,
        path: str,
        choice: Choice,
        *,
        region: int | None = None,
        text: bytes = b"",
        by: str = "user",
    ) -> Resolved: ...

    async def retest_session(self, session_id: str) -> Retest: ...

    async def rollback(self, session_id: str, *, force: bool = False) -> RollbackResult: ...

    async def discard_session(self, session_id: str) -> None: ...

    async def revise(
        self, session_id: str, instruction: str = "", *, provider: Any = None
    ) -> str: ...

    async def resume(self, task_id: str, *, provider: Any = None) -> str: ...

    async def discard_task(self, task_id: str) -> None: ...

    async def close(self) -> None: ...


__all__ = ["EventsPort", "KernelPort", "SessionPort", "SessionsPort", "StatePort"]
