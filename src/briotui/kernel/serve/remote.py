"""A served kernel as the TUI uses a local one: ``briotui attach``'s kernel.

:class:`RemoteKernel` offers the part of :class:`~briotui.kernel.kernel.Kernel` the UI
calls (the UI's ``KernelPort``): :attr:`RemoteKernel.state` is a read-only view of the
client's mirror with the same ``get``/``subscribe`` as the
:class:`~briotui.kernel.state.StateTree`; :attr:`RemoteKernel.events` re-publishes the
streamed conversation; commands go over the socket and come back as the same
dataclasses a local kernel returns (see :mod:`briotui.kernel.serve.wire`).

Reads the UI does off the loop (a session's diff, a test run, the session list) block
their worker thread on the loop; a read the UI does on the loop (a transcript, which
task made a session) is answered from the mirror or from what was fetched last.
What only the serving machine can do (build agents, watch its working tree, trust its
config) is not offered: the UI does not ask for it when attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import threading
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from briotui.kernel import contract
from briotui.kernel.errors import RemoteError
from briotui.kernel.runtime.events import (
    Event,
    EventBus,
    ModelDelta,
    ModelFallback,
    ModelReply,
    ModelReset,
)
from briotui.kernel.serve.client import Listener, RemoteClient
from briotui.kernel.serve.wire import (
    commit_check_of,
    commit_result_of,
    diff_of,
    rollback_result_of,
    session_info_of,
)
from briotui.kernel.session_commands import CommitCheck, Retest
from briotui.kernel.state import (
    Json,
    PatchSink,
    Path,
    Snapshot,
    StatePatch,
    Subscription,
    tokens_of,
)
from briotui.kernel.supervisor import TaskResult
from briotui.kernel.vfs import Decision, SessionDiff, SessionInfo
from briotui.kernel.vfs.commit import CommitResult, RollbackResult
from briotui.kernel.vfs.resolve import Choice, Resolved

T = TypeVar("T")

_EVENTS: dict[str, type[Event]] = {
    "ModelDelta": ModelDelta,
    "ModelReply": ModelReply,
    "ModelReset": ModelReset,
    "ModelFallback": ModelFallback,
}

_ENDED = ("done", "failed", "cancelled")


class MirrorClient(Protocol):
    """What :class:`RemoteKernel` needs of its client: a :class:`RemoteClient`, or a
    read-only follower of the state over NATS (:mod:`briotui.kernel.cluster.statefeed`)."""

    tree: dict[str, Any]
    seq: int
    hello: dict[str, Any]
    listeners: list[Listener]
    event_listeners: list[Callable[[str, dict[str, Any]], None]]
    closed: asyncio.Event
    joined: asyncio.Event

    async def command(self, name: str, within_s: float | None = None, **args: Any) -> Any: ...

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, within_s: float = 30.0
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class RemoteState:
    """The mirror of a served kernel's state, read like a :class:`StateTree`."""

    def __init__(self, client: MirrorClient) -> None:
        self._client = client
        self._sinks: list[tuple[PatchSink, asyncio.AbstractEventLoop | None]] = []
        self._keys: set[str] = set(client.tree)
        """The top-level keys subscribers have (removed when a fresh snapshot lacks them)."""
        self._seq = client.seq
        """The ``seq`` of the last patch subscribers got. It follows the kernel's, but never
        goes back: a restarted kernel numbers from 1 again, and subscribers drop patches
        numbered below what they have."""
        client.listeners.append(self._on_change)

    @property
    def seq(self) -> int:
        """The ``seq`` of the last patch subscribers got (the kernel's, unless it restarted)."""
        return self._seq

    def get(self, path: Path = "", default: Json = None) -> Json:
        """A deep copy of the value at ``path`` in the mirror (``default`` if none)."""
        node: Any = self._client.tree
        for token in tokens_of(path):
            if isinstance(node, dict) and str(token) in node:
                node = node[str(token)]
            elif isinstance(node, list) and str(token).isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return default
        return copy.deepcopy(node)

    def exists(self, path: Path) -> bool:
        """Whether ``path`` exists in the mirror."""
        missing = object()
        return self.get(path, missing) is not missing

    def set(self, path: Path, value: Json, **_options: Any) -> None:
        """Refused: an attached front end changes the state only through commands."""
        raise RemoteError(
            "An attached front end cannot change the kernel's state directly.",
            title="Not available when attached",
        )

    def subscribe(
        self, sink: PatchSink, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> Subscription:
        """Receive the mirror's patches from now on, with a snapshot of it now.

        When the mirror starts over from a fresh snapshot (a rejoin), the subscriber gets
        one patch replacing the whole tree.
        """
        entry = (sink, loop)
        self._sinks.append(entry)

        def close() -> None:
            with contextlib.suppress(ValueError):
                self._sinks.remove(entry)

        return Subscription(Snapshot(self.seq, copy.deepcopy(self._client.tree)), close)

    def _on_change(self, patch: StatePatch | None) -> None:
        if patch is None:  # a fresh snapshot: replace everything
            tree = self._client.tree
            ops: list[dict[str, Any]] = [
                {"op": "remove", "path": "/" + key} for key in self._keys - tree.keys()
            ]
            ops += [
                {"op": "add", "path": "/" + key, "value": copy.deepcopy(v)}
                for key, v in tree.items()
            ]
            patch = StatePatch(max(self._seq + 1, self._client.seq), ops)
        elif patch.seq <= self._seq:  # numbered by a restarted kernel: renumber it
            patch = StatePatch(self._seq + 1, patch.ops)
        self._seq = patch.seq
        self._keys = set(self._client.tree)
        for sink, loop in list(self._sinks):
            if loop is None:
                sink(patch)
            else:
                loop.call_soon(sink, patch)


class RemoteSession:
    """A session of the served kernel, read on demand (block only off the loop)."""

    def __init__(self, kernel: RemoteKernel, session_id: str) -> None:
        self._kernel = kernel
        self.id = session_id
        self._data: dict[str, Any] | None = None

    def _fetch(self) -> dict[str, Any]:
        data: dict[str, Any] = self._kernel.blocking(
            self._kernel.client.command("session", session=self.id)
        )
        self._data = data
        return data

    def _view(self) -> contract.SessionView | None:
        return contract.session(self._kernel.client.tree, self.id)

    @property
    def task(self) -> str:
        """The request the session was made for."""
        if self._data is not None:
            return str(self._data["task"])
        view = self._view()
        return view["task"] if view else ""

    @property
    def state(self) -> str:
        """open, committed, discarded or rolled-back (as last fetched or published)."""
        view = self._view()
        if view is not None:
            return view["state"]
        return str(self._data["state"]) if self._data is not None else "open"

    def diff(self) -> SessionDiff:
        """The session's changes (fetched; call it off the loop)."""
        return diff_of(self._fetch()["files"])

    def decisions(self) -> dict[str, tuple[Decision, str]]:
        """Each decided hunk's decision and reason (fetched; call it off the loop)."""
        return {k: (v[0], v[1]) for k, v in self._fetch()["decisions"].items()}


class RemoteSessions:
    """The served kernel's sessions, as the UI reads them."""

    def __init__(self, kernel: RemoteKernel) -> None:
        self._kernel = kernel

    def get(self, session_id: str) -> RemoteSession:
        """The session ``session_id`` (nothing is fetched until it is read)."""
        return RemoteSession(self._kernel, session_id)

    def list(self) -> list[SessionInfo]:
        """Every session of the project (fetched; call it off the loop)."""
        rows = self._kernel.blocking(self._kernel.client.command("sessions"))
        return [session_info_of(row) for row in rows]


class RemoteKernel:
    """A kernel served by ``briotui serve``, driven over its socket.

    Args:
        client: A connected :class:`RemoteClient` (or another :class:`MirrorClient`).
    """

    remote = True

    def __init__(self, client: MirrorClient) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.state = RemoteState(client)
        self.events = EventBus(self.loop)
        self._sessions = RemoteSessions(self)
        self._transcripts: dict[str, list[dict[str, Any]]] = {}
        client.event_listeners.append(self._on_event)

    @classmethod
    async def attach(cls, url: str, *, name: str = "tui") -> RemoteKernel:
        """Connect to ``url`` (rejoining on its own when the connection drops).

        Raises:
            RemoteRefused / RemoteClosed: the kernel refused or cannot be reached.
        """
        client = RemoteClient(url, name=name, rejoin=True)
        await client.connect()
        return cls(client)

    def blocking(self, work: Coroutine[Any, Any, T], within_s: float = 60.0) -> T:
        """Run ``work`` on the loop and wait for it from a worker thread.

        Raises:
            RemoteError: called on the loop's own thread (it would wait for itself).
        """
        if threading.get_ident() == self._loop_thread:
            work.close()
            raise RemoteError(
                "A blocking read of the remote kernel ran on the event loop; run it in a "
                "worker thread (asyncio.to_thread).",
                title="Remote read on the loop",
            )
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(within_s)

    def _on_event(self, kind: str, fields: dict[str, Any]) -> None:
        cls = _EVENTS.get(kind)
        if cls is None:
            return
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            event = cls(**{k: v for k, v in fields.items() if k in known})
        except TypeError:
            return
        self.events.publish(event)

    # -- tasks ---------------------------------------------------------------------------

    async def submit(
        self,
        goal: str,
        *,
        agent: str | None = None,
        provider: object = None,
        concurrency: int | None = None,
        session_id: str | None = None,
    ) -> str:
        """Start a task on the served kernel (with its provider); its id. With
        ``session_id``, a follow-up that continues that open session."""
        value = await self.client.command("submit", goal=goal, agent=agent, session=session_id)
        task_id = str(value["task"])
        await self.client.wait_for(lambda tree: task_id in tree.get("tasks", {}))
        return task_id

    async def wait(self, task_id: str) -> TaskResult:
        """How ``task_id`` ended, once the mirror shows it ended."""

        def ended(tree: dict[str, Any]) -> bool:
            view = contract.task(tree, task_id)
            return view is not None and view["status"] in _ENDED

        tree = await self.client.wait_for(ended, within_s=24 * 3600)
        view = contract.task(tree, task_id)
        assert view is not None
        outcome = view.get("outcome") or {}
        error = outcome.get("error")
        kind = str(outcome.get("kind", ""))
        return TaskResult(
            task_id,
            view["status"],
            str(outcome.get("summary", "")),
            view["session"] or "",
            error=dict(error) if error else None,
            outcome=kind if view["status"] == "done" else "",
        )

    def cancel(self, task_id: str) -> bool:
        """Ask the served kernel to cancel ``task_id``; whether it was still running."""
        view = contract.task(self.client.tree, task_id)
        self.loop.create_task(self._cancel(task_id))
        return view is not None and view["status"] not in _ENDED

    async def _cancel(self, task_id: str) -> None:
        with contextlib.suppress(RemoteError):
            await self.client.command("cancel", task=task_id)

    def transcript(self, task_id: str) -> list[dict[str, Any]]:
        """The task's stored messages as last fetched (a fetch starts in the background)."""
        self.loop.create_task(self._fetch_transcript(task_id))
        return self._transcripts.get(task_id, [])

    async def _fetch_transcript(self, task_id: str) -> None:
        with contextlib.suppress(RemoteError):
            self._transcripts[task_id] = list(await self.client.command("transcript", task=task_id))

    def task_of_session(self, session_id: str) -> str | None:
        """The top-level task that made a session (from the mirror)."""
        for task_id, view in contract.tasks(self.client.tree).items():
            if view["session"] == session_id and not view["parent"]:
                return task_id
        return None

    # -- sessions ------------------------------------------------------------------------

    def sessions(self) -> RemoteSessions:
        """The served kernel's sessions."""
        return self._sessions

    def test_run(self, session_id: str) -> dict[str, Any] | None:
        """The latest test run in a session (fetched; call it off the loop)."""
        run: dict[str, Any] | None = self.blocking(
            self.client.command("test_run", session=session_id)
        )
        return run

    async def decide(
        self,
        session_id: str,
        hunk_ids: Sequence[str] | None,
        decision: Decision,
        *,
        reason: str = "",
        path: str | None = None,
    ) -> list[str]:
        """Accept or reject hunks on the served kernel."""
        value = await self.client.command(
            "decide",
            session=session_id,
            hunks=None if hunk_ids is None else list(hunk_ids),
            decision=decision,
            reason=reason,
            path=path,
        )
        return list(value["hunks"])

    async def verify_commit(self, session_id: str) -> CommitCheck:
        """Whether the accepted hunks pass the project's tests (on the served kernel)."""
        return commit_check_of(await self.client.command("verify_commit", session=session_id))

    async def commit(
        self,
        session_id: str,
        *,
        git: bool = False,
        message: str | None = None,
        force: bool = False,
        expected_ids: Collection[str] | None = None,
        **_local_only: Any,
    ) -> CommitResult:
        """Commit a session's accepted hunks on the served kernel.

        ``git`` follows the served project (a git commit when it is a repository), not
        the directory this front end runs in.
        """
        git = bool(self.client.hello.get("git", git))
        value = await self.client.command(
            "commit",
            session=session_id,
            git=git,
            message=message,
            force=force,
            expected=sorted(expected_ids) if expected_ids is not None else None,
        )
        return commit_result_of(value)

    async def resolve_conflict(
        self,
        session_id: str,
        path: str,
        choice: Choice,
        *,
        region: int | None = None,
        text: bytes = b"",
        by: str = "user",
    ) -> Resolved:
        """Resolve conflicting regions on the served kernel (audited as this client)."""
        value = await self.client.command(
            "resolve",
            session=session_id,
            path=path,
            choice=choice,
            region=region,
            text=text.decode("utf-8", "replace"),
        )
        return Resolved(
            session=str(value["session"]),
            path=str(value["path"]),
            regions=tuple(int(r) for r in value["regions"]),
            resolution=str(value["resolution"]),
            changed=bool(value["changed"]),
            remaining=int(value["remaining"]),
        )

    async def retest_session(self, session_id: str) -> Retest:
        """Run the project's tests in a session on the served kernel."""
        value = await self.client.command("retest", session=session_id)
        return Retest(
            verified=value.get("verified"), message=str(value["message"]), run=value.get("run")
        )

    async def rollback(self, session_id: str, *, force: bool = False) -> RollbackResult:
        """Discard or undo a session on the served kernel."""
        return rollback_result_of(
            await self.client.command("rollback", session=session_id, force=force)
        )

    async def discard_session(self, session_id: str) -> None:
        """Discard an open session on the served kernel."""
        await self.client.command("discard", session=session_id)

    async def revise(
        self, session_id: str, instruction: str = "", *, provider: object = None
    ) -> str:
        """Have the served kernel's Coder revise a session; the new task's id."""
        value = await self.client.command("revise", session=session_id, instruction=instruction)
        return str(value["task"])

    async def resume(self, task_id: str, *, provider: object = None) -> str:
        """Not offered when attached (the serving machine restores its own tasks)."""
        raise RemoteError(
            "Resuming an interrupted task is done where the kernel runs (`briotui` there).",
            title="Not available when attached",
        )

    async def discard_task(self, task_id: str) -> None:
        """Discard a task's session on the served kernel (through its session)."""
        view = contract.task(self.client.tree, task_id)
        if view is None or not view["session"]:
            raise RemoteError(f"Task {task_id!r} has no session to discard.", title="No session")
        await self.client.command("discard", session=view["session"])

    async def answer(self, prompt_id: str, answer: str) -> None:
        """Answer a waiting prompt under ``/prompts`` (first answer wins)."""
        await self.client.command("answer", prompt=prompt_id, answer=answer)

    async def close(self) -> None:
        """Leave the served kernel (it keeps running)."""
        await self.client.close()


__all__ = ["MirrorClient", "RemoteKernel", "RemoteSession", "RemoteSessions", "RemoteState"]
