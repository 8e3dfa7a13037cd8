"""Session commands the kernel owns: decide, commit, roll back, discard and revise.

Front ends (the TUI's review screen, ``briotui sessions ...``) never change a session
directly: they call these, through :class:`briotui.kernel.kernel.Kernel`, so every change
is followed by the session being published again in the state tree (its state,
decisions with reasons, verification and hunk provenance) and whatever shows the tree
(the status bar, the task tree) sees it. The blocking work (SQLite, the commit journal,
git) runs off the event loop.

``revise`` hands the rejected hunks and their reasons back to the Coder: it runs again in
the same session with them (and an optional extra instruction) in its ``feedback``
context, and its new edits become new hunks of the same review.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from briotui.kernel.errors import SessionStateError
from briotui.kernel.vfs import Decision, Session
from briotui.kernel.vfs.commit import CommitResult, RollbackResult

if TYPE_CHECKING:
    from briotui.kernel.kernel import Kernel

SUBJECT_LIMIT = 72
"""A git commit subject is at most this many characters."""

FEEDBACK_LIMIT = 20_000
"""At most this many characters of rejected hunks go back to the Coder."""


@dataclass(frozen=True)
class Revision:
    """A revise request handed to the Coder.

    Attributes:
        goal: What the Coder is asked to do (the session's task, plus the instruction).
        feedback: The rejected hunks with their reasons, as the Coder's prompt shows them.
        files: The paths the rejected hunks touch (the Coder's scope hint).
    """

    goal: str
    feedback: str
    files: tuple[str, ...]


def commit_subject(text: str, limit: int = SUBJECT_LIMIT) -> str:
    """A one-line git subject for ``text``: its first line, or first sentence if that
    is too long, or else cut at a word with an ellipsis; never cut mid-word."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) <= limit:
        return line
    sentence, dot, _ = line.partition(". ")
    if dot and len(sentence) + 1 <= limit:
        return sentence + "."
    cut = line[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def commit_message(session_id: str, request: str, message: str | None = None) -> str:
    """The git commit message of a session, the same from the TUI and the CLI.

    The subject is ``message``'s (the user's own, when given) or the request's, cut
    at a word; the whole request follows when the subject had to shorten it; the last
    paragraph says where the change came from.

    Args:
        session_id: The session committed.
        request: The session's task (the user's request).
        message: The user's own message, or None for one made from the request.
    """
    source = (message if message is not None and message.strip() else request).strip()
    subject = commit_subject(source) or f"Changes from briotui session {session_id}"
    parts = [subject]
    first, _, after = source.partition("\n")
    body = after.strip() if " ".join(first.split()) == subject else source
    if body:
        parts.append(body)
    parts.append(f"Approved hunk by hunk in briotui (session {session_id}).")
    return "\n\n".join(parts)


def feedback_of(session: Session, instruction: str = "") -> Revision:
    """The rejected hunks of ``session`` with their reasons, as feedback for the Coder.

    Raises:
        SessionStateError: the session is not open, or nothing is rejected and no
            instruction is given (there would be nothing to revise).
    """
    if session.state != "open":
        raise SessionStateError(
            f"Session {session.id} is {session.state}; only an open session can be revised.",
            title="Session closed",
        )
    decisions = session.decisions()
    parts: list[str] = []
    files: list[str] = []
    for hunk in session.diff().hunks():
        decision, reason = decisions.get(hunk.id, ("pending", ""))
        if decision != "rejected":
            continue
        parts.append(
            f"{hunk.path} {hunk.header()}\n"
            + "".join(line if line.endswith("\n") else line + "\n" for line in hunk.lines)
            + f"Reason: {reason.strip() or '(no reason given)'}\n"
        )
        if hunk.path not in files:
            files.append(hunk.path)
    instruction = instruction.strip()
    if not parts and not instruction:
        raise SessionStateError(
            f"Session {session.id} has no rejected hunks. Reject the hunks the Coder should "
            "redo (with a reason), or give an instruction with -m.",
            title="Nothing to revise",
        )
    feedback = "\n".join(parts)[:FEEDBACK_LIMIT]
    if instruction:
        feedback += ("\n" if feedback else "") + f"Also: {instruction}\n"
    goal = session.task or "Revise the change"
    if instruction:
        goal += f"\n\n{instruction}"
    return Revision(goal=goal, feedback=feedback, files=tuple(files))


class SessionCommands:
    """The session commands of one kernel (see the module docstring).

    Args:
        kernel: The kernel whose sessions, recorder and state these use.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def _open(self, session_id: str) -> Session:
        return self.kernel.sessions().get(session_id)

    def _publish(self, session: Session) -> None:
        self.kernel.recorder.publish_session(session)

    async def publish(self, session_id: str) -> None:
        """Publish a session again (e.g. after a change the kernel did not make)."""

        def work() -> None:
            self._publish(self._open(session_id))

        await asyncio.to_thread(work)

    async def decide(
        self,
        session_id: str,
        hunk_ids: Iterable[str] | None,
        decision: Decision,
        *,
        reason: str = "",
        path: str | None = None,
    ) -> list[str]:
        """Accept or reject hunks (None: all, or all of ``path``); returns the ids decided."""
        ids = list(hunk_ids) if hunk_ids is not None else None

        def work() -> list[str]:
            session = self._open(session_id)
            decided = session.decide(ids, decision, reason=reason, path=path)
            self._publish(session)
            return decided

        return await asyncio.to_thread(work)

    async def commit(
        self,
        session_id: str,
        *,
        git: bool = False,
        message: str | None = None,
        include_staged: bool = False,
        provenance: str | None = None,
    ) -> CommitResult:
        """Apply the accepted hunks to the working tree (and make a git commit if asked).

        The git message is :func:`commit_message`'s: ``message`` (or the session's task)
        as its subject, and where the change came from.
        """

        def work() -> CommitResult:
            session = self._open(session_id)
            try:
                return session.commit(
                    git=git,
                    message=commit_message(session.id, session.task or "", message),
                    include_staged=include_staged,
                    provenance=provenance,
                )
            finally:
                self._publish(session)

        return await asyncio.to_thread(work)

    async def rollback(self, session_id: str, *, force: bool = False) -> RollbackResult:
        """Discard an open session, or undo a committed one."""

        def work() -> RollbackResult:
            session = self._open(session_id)
            try:
                return session.rollback(force=force)
            finally:
                self._publish(session)

        return await asyncio.to_thread(work)

    async def discard(self, session_id: str) -> None:
        """Discard an open session: nothing of it is applied."""

        def work() -> None:
            session = self._open(session_id)
            try:
                session.discard()
            finally:
                self._publish(session)

        await asyncio.to_thread(work)
