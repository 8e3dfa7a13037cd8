"""Session commands the kernel owns: decide, commit, roll back, discard and revise.

Front ends (the TUI's review screen, ``briotui sessions ...``) never change a session
directly: they call these, through :class:`briotui.kernel.kernel.Kernel`, so every change
is followed by the session being published again in the state tree (its state,
decisions with reasons, verification and hunk provenance) and whatever shows the tree
(the status bar, the task tree) sees it. The blocking work (SQLite, the commit journal,
git) runs off the event loop.

A commit is verified first (:meth:`SessionCommands.verify_commit`): with a test command
configured, what is committed must have passed it. When every hunk is accepted that is
the session's own last test run; when only some are, the test command runs on exactly
the accepted hunks, in a scratch session (a fork with the other hunks undone) that is
discarded afterwards (its run stays in the store). An unverified commit needs ``force``
(the TUI asks, the CLI takes ``--force``).

``revise`` hands the rejected hunks and their reasons back to the Coder: it runs again in
the same session with them (and an optional extra instruction) in its ``feedback``
context, and its new edits become new hunks of the same review.

``resolve`` settles a conflicting region a merge left in the session (see
:mod:`briotui.kernel.vfs.resolve`): it writes the chosen text into the session (a new
version of the file, so its hunks change), marks the region resolved in the store with
who and when, and republishes the conflicts. The session is not verified again until
the tests pass on what it now holds: :meth:`SessionCommands.retest` runs the project's
test command in the session, as the pipeline's test step does. A commit with
conflicting regions left is not verified (it needs ``force``; the review asks).
"""

from __future__ import annotations

import asyncio
import shlex
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from briotui.kernel import contract, telemetry
from briotui.kernel.errors import (
    BrioError,
    CommitRefused,
    CommitUnverified,
    DecisionsChanged,
    SessionStateError,
)
from briotui.kernel.runtime.events import COMMAND_OUTPUT_TAIL, CommandRan
from briotui.kernel.vfs import Decision, HunkId, Session
from briotui.kernel.vfs.commit import CommitResult, RollbackResult
from briotui.kernel.vfs.diff import apply_accepted
from briotui.kernel.vfs.resolve import Choice, Resolved, resolve_in_session

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


SUBSET_TIMEOUT_S = 900.0
"""Wall-clock limit of the test run on the accepted hunks before a commit."""

CheckStatus = Literal[
    "verified",
    "no-tests",
    "subset-passed",
    "subset-failed",
    "unverified",
    "failed",
    "conflicts",
]
"""What the verification of a commit found (the first three allow it)."""


@dataclass(frozen=True)
class CommitCheck:
    """Whether what a commit would write passed the project's tests.

    Attributes:
        status: See :data:`CheckStatus`.
        message: One or two sentences for the user.
        run: The test run on the accepted hunks (as stored: ``argv``, ``exit_code``,
            ``duration_ms``, ``output``, ``failed``, ...), when one ran.
        scratch: The scratch session it ran in ("" when none).
        accepted: The accepted hunk ids this check is about, sorted (None when no hunk
            was looked at: no test command); pass them to :meth:`SessionCommands.commit`
            as ``expected_ids`` so that exactly these are committed.
    """

    status: CheckStatus
    message: str
    run: dict[str, Any] | None = None
    scratch: str = ""
    accepted: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        """Whether the commit may go ahead without the user's confirmation."""
        return self.status in ("verified", "no-tests", "subset-passed")

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data (``run`` without its full output)."""
        run = None
        if self.run is not None:
            run = {k: v for k, v in self.run.items() if k != "output"}
            run["tail"] = "\n".join(str(self.run["output"]).splitlines()[-40:])
        return {"status": self.status, "ok": self.ok, "message": self.message, "run": run}


def _failing(run: dict[str, Any]) -> str:
    names = run.get("failed") or []
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    return f" Failing: {shown}." if shown else f" It exited {run['exit_code']}."


def scratch_of(session: Session, accepted: set[str]) -> Session:
    """A fork of ``session`` holding exactly its ``accepted`` hunks (on its base)."""
    scratch = session.fork(label=f"verify the accepted hunks of {session.id}")
    try:
        for change in session.diff().files:
            outcome = apply_accepted(change, accepted)
            # undo the session's change, then apply only what is accepted
            if change.status in ("added", "renamed"):
                scratch.delete(change.path)
            if change.old is not None:
                if change.old_symlink:
                    scratch.write_symlink(change.old_path, change.old)
                else:
                    scratch.write(change.old_path, change.old, change.old_exec)
            for path, data, executable in outcome.writes:
                if path in outcome.links:
                    scratch.write_symlink(path, data)
                else:
                    scratch.write(path, data, executable)
            for path in outcome.deletes:
                scratch.delete(path)
    except BaseException:
        scratch.discard()
        raise
    return scratch


@dataclass(frozen=True)
class Retest:
    """A test run in a session after it changed (e.g. its last conflict was resolved).

    Attributes:
        verified: Whether the session is verified now (None: no test command).
        run: The stored run (``argv``, ``exit_code``, ``output`` ...), when one ran.
        message: One sentence for the user.
    """

    verified: bool | None
    message: str
    run: dict[str, Any] | None = field(default=None)


class SessionCommands:
    """The session commands of one kernel (see the module docstring).

    Args:
        kernel: The kernel whose sessions, recorder and state these use.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._resolving = threading.Lock()  # one read-modify-write of a file at a time

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

    async def verify_commit(self, session_id: str) -> CommitCheck:
        """Whether the accepted hunks of a session passed the project's tests.

        All hunks accepted: the session's own last test run decides, unless the session
        changed after it (a revision). Only some, or changed since: the test command runs
        on exactly the accepted hunks, in a scratch session (see the module docstring).
        No test command configured: nothing to verify (allowed).

        Raises:
            CommitRefused: No hunk is accepted (nothing to commit, nothing to test).
        """
        from briotui.kernel.supervisor import test_command

        kernel = self.kernel
        session = await asyncio.to_thread(self._open, session_id)
        left = contract.unresolved(
            await asyncio.to_thread(kernel.recorder.conflicts_of, session.id)
        )
        if left:  # what passed (if anything did) is not the change as it will be
            return CommitCheck(
                "conflicts",
                f"{left} conflicting region(s) of session {session.id} are not resolved; "
                "the session keeps its own side there and the branch's is left out. "
                f"Resolve them first (briotui sessions resolve {session.id} PATH ...).",
            )
        command = test_command(kernel)
        if command is None:
            return CommitCheck("no-tests", "No test command is configured ([tests] command).")
        hunks = {h.id for h in (await asyncio.to_thread(session.diff)).hunks()}
        accepted = session.accepted_ids() & hunks
        if not accepted:  # nothing would be committed: no test run on an empty subset
            raise CommitRefused(
                f"Session {session_id} has no accepted hunks to apply. Accept some with "
                f"`briotui sessions accept {session_id} [HUNK...]` first."
            )
        check = await self._check_accepted(session, accepted, hunks, command)
        return replace(check, accepted=tuple(sorted(accepted)))  # what the check is about

    async def _check_accepted(
        self, session: Session, accepted: set[str], hunks: set[HunkId], command: list[str]
    ) -> CommitCheck:
        """:meth:`verify_commit` once the accepted hunks are known."""
        kernel, session_id = self.kernel, session.id
        if accepted == hunks:
            last = kernel.test_run(session_id)
            if last is None:
                return CommitCheck(
                    "unverified", f"The tests ({shlex.join(command)}) never ran on this session."
                )
            changed = await asyncio.to_thread(self._changed_since, session_id, last["created"])
            if not changed:
                if last["exit_code"] == 0:
                    return CommitCheck("verified", "The tests passed on this session.", last)
                return CommitCheck(
                    "failed", "The tests failed on this session." + _failing(last), last
                )
            # the session changed after its last test run (a revision): test what is there
        return await self._run_subset(session, accepted, command)

    def _changed_since(self, session_id: str, when: float) -> bool:
        """Whether the session's files changed after ``when`` (a test run's time)."""
        rows = self.kernel.sessions().store.query(
            "SELECT updated FROM sessions WHERE id = ?", (session_id,)
        )
        return bool(rows) and float(rows[0]["updated"]) > float(when)

    async def _run_tests(self, session: Session, command: list[str]) -> dict[str, Any]:
        """Run the user's test command in ``session`` and store the run (as the
        pipeline's test step does); returns the stored run.

        Raises:
            BrioError: The command could not run (refused, timed out, not started).
        """
        kernel = self.kernel
        # the user asked for this (a commit, a resolved conflict); their own command runs
        with telemetry.span(
            "briotui.test_run",
            {"briotui.test.command": shlex.join(command), "briotui.session.id": session.id},
        ) as span:
            out = (
                await asyncio.to_thread(
                    kernel.shell().run,
                    session,
                    command,
                    cwd="",
                    timeout_s=SUBSET_TIMEOUT_S,
                    confirmed=True,
                )
            ).output
            telemetry.set_attributes(
                span,
                {
                    "briotui.test.passed": out.exit_code == 0,
                    "briotui.test.exit_code": out.exit_code,
                },
            )
        both = out.stdout + ("\n" if out.stdout and out.stderr else "") + out.stderr
        kernel.recorder.on_event(
            CommandRan(
                agent="kernel",
                instance="",
                session=session.id,
                argv=tuple(command),
                exit_code=out.exit_code,
                duration_ms=out.duration_ms,
                output=both[-COMMAND_OUTPUT_TAIL:],
                truncated=out.truncated or len(both) > COMMAND_OUTPUT_TAIL,
            )
        )
        run = kernel.recorder.last_run(session.id, command)
        assert run is not None
        return run

    async def _run_subset(
        self, session: Session, accepted: set[str], command: list[str]
    ) -> CommitCheck:
        scratch = await asyncio.to_thread(scratch_of, session, accepted)
        shell = self.kernel.shell()
        try:
            run = await self._run_tests(scratch, command)
        except BrioError as exc:
            return CommitCheck(
                "unverified",
                f"The tests could not run on the accepted hunks: {exc.message}",
                scratch=scratch.id,
            )
        finally:
            await asyncio.to_thread(shell.release, scratch)
            await asyncio.to_thread(scratch.discard)
        what = f"{len(accepted)} accepted hunk(s) of session {session.id}"
        if run["exit_code"] == 0:
            return CommitCheck("subset-passed", f"The tests pass on the {what}.", run, scratch.id)
        return CommitCheck(
            "subset-failed",
            f"The tests fail on the {what} (they were run on exactly what would be "
            "committed)." + _failing(run),
            run,
            scratch.id,
        )

    async def resolve(
        self,
        session_id: str,
        path: str,
        choice: Choice,
        *,
        region: int | None = None,
        text: bytes = b"",
        by: str = "user",
    ) -> Resolved:
        """Resolve conflicting regions of ``path`` in a session (see the module docstring).

        Args:
            session_id: The session (or a unique prefix of its id).
            path: The conflicting file.
            choice: ours (the session's side), theirs (the branch's), both (ours then
                theirs) or text (``text``: the region's new text, or with no ``region``
                the whole file's).
            region: The region's number within the file (from 1); None for every
                unresolved region of the file.
            text: The user's own text for ``choice="text"``.
            by: Who resolved it, as the store keeps it (e.g. ``user (cli)``).

        Raises:
            SessionNotFound: No such session.
            SessionStateError: The session is committed or discarded, or the region is
                resolved already.
            ConflictNotFound: No conflict in ``path``, or no region ``region``.
            ConflictMoved: The region cannot be found safely in the file any more.
        """

        def work() -> Resolved:
            with self._resolving:
                session = self._open(session_id)
                before = {h.id for h in session.diff().hunks()}
                done = resolve_in_session(session, path, choice, region=region, text=text, by=by)
                if done.changed:  # what the user chose is theirs, not the last agent's
                    new = sorted({h.id for h in session.diff().hunks()} - before)
                    self.kernel.recorder.note_user_authors(session.id, new, by)
                self._republish_conflicts(session)
                return done

        return await asyncio.to_thread(work)

    def _republish_conflicts(self, session: Session) -> None:
        """Publish a session's conflicts and files again after a resolution; it is not
        verified until the tests pass on what it holds now."""
        from briotui.kernel.supervisor import test_command

        kernel = self.kernel
        state = kernel.state
        if state.exists(["sessions", session.id]):
            with state.batch():
                state.set(
                    ["sessions", session.id, "conflicts"], kernel.recorder.conflicts_of(session.id)
                )
                if test_command(kernel) is not None:  # the last run was on other content
                    state.set(["sessions", session.id, "verified"], False)
                    state.set(["sessions", session.id, "tests"], None)
        self._publish(session)

    async def retest(self, session_id: str) -> Retest:
        """Run the project's test command in a session (after it changed: its last
        conflict resolved) and publish whether it is verified now.

        Raises:
            SessionNotFound: No such session.
            SessionStateError: The session is not open.
        """
        from briotui.kernel.supervisor import test_command

        kernel = self.kernel
        session = await asyncio.to_thread(self._open, session_id)
        if session.state != "open":
            raise SessionStateError(
                f"Session {session.id} is {session.state}; there is nothing to test.",
                title="Session closed",
            )
        command = test_command(kernel)
        if command is None:
            return Retest(None, "No test command is configured ([tests] command).")
        try:
            run = await self._run_tests(session, command)
        except BrioError as exc:  # an older run does not verify what the session holds now
            if kernel.state.exists(["sessions", session.id]):
                kernel.state.set(["sessions", session.id, "verified"], False)
            return Retest(False, f"The tests could not run: {exc.message}")
        verified = await asyncio.to_thread(kernel.is_verified, session.id)
        await asyncio.to_thread(self._publish, session)  # a test run may change files
        if verified:
            message = f"The tests ({shlex.join(command)}) pass: the session is verified."
        elif run["exit_code"] == 0:
            left = contract.unresolved(kernel.recorder.conflicts_of(session.id))
            message = f"The tests pass, but {left} conflicting region(s) are left to resolve."
        else:
            message = "The tests fail." + _failing(run)
        return Retest(verified, message, run)

    async def commit(
        self,
        session_id: str,
        *,
        git: bool = False,
        message: str | None = None,
        include_staged: bool = False,
        provenance: str | None = None,
        force: bool = False,
        expected_ids: Collection[str] | None = None,
    ) -> CommitResult:
        """Apply the accepted hunks to the working tree (and make a git commit if asked).

        The git message is :func:`commit_message`'s: ``message`` (or the session's task)
        as its subject, and where the change came from.

        Args:
            expected_ids: The accepted hunk ids the caller verified (a
                :meth:`verify_commit` check's ``accepted``); the commit is refused if
                the session's accepted hunks are not exactly these any more. Without
                ``force`` the check made here sets them.

        Raises:
            CommitUnverified: Without ``force``, what would be committed did not pass
                the project's tests (:meth:`verify_commit`); nothing was written.
            DecisionsChanged: The accepted hunks changed since they were verified;
                nothing was written.
        """
        with telemetry.span(
            "briotui.commit", {"briotui.session.id": session_id, "briotui.commit.git": git}
        ) as span:
            result = await self._commit(
                session_id,
                git=git,
                message=message,
                include_staged=include_staged,
                provenance=provenance,
                force=force,
                expected_ids=expected_ids,
            )
            telemetry.set_attributes(
                span,
                {
                    "briotui.commit.written": len(result.written),
                    "briotui.commit.git_commit": result.git_commit or None,
                },
            )
            return result

    async def _commit(
        self,
        session_id: str,
        *,
        git: bool,
        message: str | None,
        include_staged: bool,
        provenance: str | None,
        force: bool,
        expected_ids: Collection[str] | None,
    ) -> CommitResult:
        expected = set(expected_ids) if expected_ids is not None else None
        if not force:
            check = await self.verify_commit(session_id)
            if not check.ok:
                raise CommitUnverified(
                    check.message + " Nothing was written. Commit anyway with --force "
                    "(the review asks), or fix the change first."
                )
            if expected is None and check.accepted is not None:
                expected = set(check.accepted)

        def work() -> CommitResult:
            session = self._open(session_id)
            if expected is not None:
                hunks = {h.id for h in session.diff().hunks()}
                now = session.accepted_ids() & hunks
                if now != expected:
                    raise DecisionsChanged(
                        f"The accepted hunks of session {session_id} changed after they were "
                        f"checked against the tests ({len(expected)} then, {len(now)} now): "
                        "what would be written is not what was checked. Nothing was written. "
                        "Commit again to check what is accepted now."
                    )
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
