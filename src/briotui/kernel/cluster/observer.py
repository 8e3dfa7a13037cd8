"""A project followed over NATS, as the TUI drives a kernel: ``briotui attach --nats``.

:class:`ObserverKernel` is a :class:`~briotui.kernel.serve.remote.RemoteKernel` whose
mirror is a :class:`~briotui.kernel.cluster.statefeed.StateFollower` instead of a
WebSocket client: the task tree, sessions, usage and the streamed conversation show as
when attached, but an observer only watches. Every command (submit, cancel, decide,
commit, answer...) raises :class:`~briotui.kernel.errors.ObserverReadOnly` saying so, and
reads the feed does not carry (a session's diff, a stored transcript) say what is missing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from briotui.kernel.cluster.follower import StateFollower, open_follower
from briotui.kernel.serve.remote import RemoteKernel
from briotui.kernel.session_commands import CommitCheck, Retest
from briotui.kernel.vfs import Decision
from briotui.kernel.vfs.commit import CommitResult, RollbackResult
from briotui.kernel.vfs.resolve import Choice, Resolved


class ObserverKernel(RemoteKernel):
    """A read-only kernel for the TUI, fed by a project's state published on NATS.

    Args:
        follower: A started follower (closed when this kernel closes).
    """

    observer = True
    """The UI asks no prompts and offers no commands for an observer."""

    def __init__(self, follower: StateFollower) -> None:
        super().__init__(follower)
        self.follower = follower

    @classmethod
    async def follow(
        cls, url: str, prefix: str, *, token: str | None = None, within_s: float = 5.0
    ) -> ObserverKernel:
        """Connect to NATS at ``url`` and follow the project under ``prefix``.

        Raises:
            StateFeedRefused: the NATS server refused the token.
            StateFeedUnavailable: NATS cannot be reached, or no kernel publishes there.
        """
        return cls(await open_follower(url, prefix, token=token, within_s=within_s))

    async def submit(
        self,
        goal: str,
        *,
        agent: str | None = None,
        provider: object = None,
        concurrency: int | None = None,
        session_id: str | None = None,
    ) -> str:
        """Refused: an observer cannot submit requests."""
        raise self.follower.refusal("submit")

    def cancel(self, task_id: str) -> bool:
        """Refused: an observer cannot cancel tasks."""
        raise self.follower.refusal("cancel")

    async def decide(
        self,
        session_id: str,
        hunk_ids: Sequence[str] | None,
        decision: Decision,
        *,
        reason: str = "",
        path: str | None = None,
    ) -> list[str]:
        """Refused: an observer cannot accept or reject changes."""
        raise self.follower.refusal("decide")

    async def verify_commit(self, session_id: str) -> CommitCheck:
        """Refused: an observer cannot check a commit."""
        raise self.follower.refusal("verify_commit")

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
        """Refused: an observer cannot commit."""
        raise self.follower.refusal("commit")

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
        """Refused: an observer cannot resolve conflicts."""
        raise self.follower.refusal("resolve")

    async def retest_session(self, session_id: str) -> Retest:
        """Refused: an observer cannot run the tests."""
        raise self.follower.refusal("retest")

    async def rollback(self, session_id: str, *, force: bool = False) -> RollbackResult:
        """Refused: an observer cannot roll back."""
        raise self.follower.refusal("rollback")

    async def discard_session(self, session_id: str) -> None:
        """Refused: an observer cannot discard sessions."""
        raise self.follower.refusal("discard")

    async def revise(
        self, session_id: str, instruction: str = "", *, provider: object = None
    ) -> str:
        """Refused: an observer cannot ask for revisions."""
        raise self.follower.refusal("revise")

    async def discard_task(self, task_id: str) -> None:
        """Refused: an observer cannot discard tasks."""
        raise self.follower.refusal("discard")

    async def answer(self, prompt_id: str, answer: str) -> None:
        """Refused: prompts are answered by the kernel's own clients."""
        raise self.follower.refusal("answer")


__all__ = ["ObserverKernel"]
