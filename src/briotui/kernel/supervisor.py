"""The supervisor: runs tasks — one agent, or the whole pipeline — and their subtasks.

The pipeline for a request, each step a real agent component in its own instance:

1. **Council** reads the project and plans: a JSON list of subtasks (goal, files in
   scope, acceptance checks); it may ask the user a clarifying question.
2. **Foreman** runs the plan: it spawns a **Coder** per subtask through the ``tasks``
   imports; each Coder works in its own branch session (a fork of the task's session)
   with its writes confined to the subtask's scope, in parallel up to the concurrency
   limit; the Foreman retries a failed subtask within its budget and merges the
   branches back (3-way: every conflict-free file and region is merged; conflicting
   regions keep the session's side and are kept, both sides, for the user to resolve,
   never overwritten). A Coder that applied nothing failed its subtask.
3. **Reviewer** reads the merged session's diff and attaches findings to hunks, with a
   verdict.
4. **Smart Agent** runs the project's configured test command in the session; the
   session is "verified" only when the kernel saw that command pass there.

Everything the user reviews is one session; nothing reaches the working tree until the
user accepts hunks and commits. A follow-up request continues an open session instead of
a new one: the steps work on its content and are given the requests made in it before
(:func:`follow_up_goal`), its new hunks join the earlier ones, and it is verified again
only when the tests pass on the whole of it. The run's outcome (:data:`OUTCOMES`) says
what really happened: a session without changes, or with conflicts left, is never
verified, and failed subtasks are named with their reasons. Branch sessions are
discarded (kept in history) once the task ends.

One piece (~640 lines): the pipeline's steps and the ``tasks`` imports its agents call
(spawn, wait, merge) share one run's subtasks and branch sessions.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from briotui.kernel import contract, telemetry
from briotui.kernel.caps.model import Delegator
from briotui.kernel.errors import BrioError, ConfigError, MergeConflict
from briotui.kernel.llm.types import Provider
from briotui.kernel.records import FOLLOW_UP_NOTE
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.instance import RunFailed, RunOutcome
from briotui.kernel.tasktree import TaskStatus
from briotui.kernel.vfs import Session

if TYPE_CHECKING:
    from briotui.kernel.settings import Settings
    from briotui.kernel.state import StateTree


class SupervisorHost(Protocol):
    """What the supervisor needs from the kernel (the :class:`~briotui.kernel.kernel.Kernel`
    implements it); the supervisor never imports the kernel module."""

    @property
    def config(self) -> Settings:
        """The project's settings (``[pipeline]``, ``[tests]``)."""
        ...

    state: StateTree
    """The state tree (conflicts are published under the session)."""

    async def ask_user(self, agent: str, question: str) -> str:
        """Ask the user an agent's question."""
        ...

    def session_of(self, task_id: str) -> Session | None:
        """The session a task (or its nearest ancestor) works in."""
        ...

    async def run_agent(
        self,
        name: str,
        goal: str,
        *,
        bindings: RunBindings | None = None,
        context: Sequence[tuple[str, str]] = (),
        task_id: str | None = None,
        parent_task: str | None = None,
        title: str | None = None,
    ) -> RunOutcome:
        """Run an agent on a goal in a fresh instance."""
        ...

    def record_review(self, session_id: str, review: dict[str, Any]) -> None:
        """Keep the Reviewer's verdict and findings for a session."""
        ...

    def is_verified(self, session_id: str) -> bool:
        """Whether the project's test command passed in the session."""
        ...

    def test_run(self, session_id: str) -> dict[str, Any] | None:
        """The latest stored run of the project's test command in the session."""
        ...

    def note_authors(self, session_id: str, hunk_ids: Sequence[str], task_id: str) -> None:
        """Remember that ``task_id`` wrote these hunks of the session."""
        ...

    def record_conflicts(self, session_id: str, views: Sequence[contract.ConflictView]) -> None:
        """Keep (and publish) the conflicting regions a merge left in a session."""
        ...


STEP_TITLES = {
    "council": "Plan the change",
    "foreman": "Run the plan",
    "reviewer": "Review the diff",
    "smart": "Run the tests",
}
"""What the task tree calls each pipeline step."""

SUBTASK_AGENTS = frozenset({"coder", "smart", "reviewer"})
"""Agents a Foreman may spawn for a subtask."""

WRITING_AGENTS = frozenset({"coder"})
"""Agents whose job is to change files: a run of one that applied nothing failed."""


@dataclass
class Subtask:
    """A spawned subtask and its branch session."""

    id: str
    parent: str
    agent: str
    goal: str
    scope: tuple[str, ...]
    acceptance: tuple[str, ...]
    session: Session
    ceiling: tuple[Delegator, ...] = ()
    job: asyncio.Task[dict[str, Any]] | None = None


@dataclass
class TaskResult:
    """How a submitted task ended."""

    task_id: str
    status: TaskStatus
    summary: str = ""
    session_id: str = ""
    plan: list[dict[str, Any]] = field(default_factory=list)
    merge: dict[str, Any] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)
    verified: bool | None = None
    tests_passed: bool | None = None
    """Whether the last test run passed (None: no test command). Verified needs more:
    a change, and no conflicts left."""
    fix_rounds: int = 0
    """How many rounds of the fix loop ran (the tests failed and the Coder tried again)."""
    error: dict[str, Any] | None = None
    outcome: str = ""
    """One of :data:`OUTCOMES` ("" until known: see :attr:`final_outcome`)."""
    failed_subtasks: list[dict[str, Any]] = field(default_factory=list)
    """The subtasks that failed: ``id``, ``goal`` and ``reason``."""

    @property
    def final_outcome(self) -> str:
        """The outcome, one of :data:`OUTCOMES`, also for a run that ended early."""
        if self.status == "cancelled":
            return "cancelled"
        if self.status != "done" or self.error is not None:
            return "error"
        if self.outcome:
            return self.outcome
        return "done" if self.verified is None else "verified" if self.verified else "tests-failed"

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data."""
        return {**self.__dict__, "outcome": self.final_outcome}


OUTCOMES = ("verified", "done", "tests-failed", "partial", "failed", "error", "cancelled")
"""How a run can end: verified (tests passed), done (no test command), tests-failed,
partial (some subtasks failed or conflicts wait), failed (nothing was changed), error
(the run stopped), cancelled."""


def tests_words(result: TaskResult) -> str:
    """What the test step came to, in words: verified, passed but not verified (the
    conflicts left are not in what passed), or failed."""
    if result.verified:
        return "tests passed in the session (verified)"
    if result.tests_passed:
        return "tests passed, but not verified while conflicts wait for you"
    return "tests failed"


def pipeline_concurrency(kernel: SupervisorHost) -> int:
    """How many subtasks run at once: ``[pipeline] concurrency`` (default 2)."""
    table, path = kernel.config.pipeline()
    value = table.get("concurrency", 2)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 32:
        raise ConfigError(
            f"[pipeline] concurrency in {path} must be a whole number from 1 to 32, not {value!r}."
        )
    return value


def fix_rounds(kernel: SupervisorHost) -> int:
    """How many times failing tests go back to the Coder: ``[tests] fix_rounds``
    (default 2; 0 turns the fix loop off)."""
    value, path = kernel.config.tests_fix_rounds()
    if value is None:
        return 2
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
        raise ConfigError(
            f"[tests] fix_rounds in {path} must be a whole number from 0 to 10, not {value!r}."
        )
    return value


def test_command(kernel: SupervisorHost) -> list[str] | None:
    """The project's test command from ``[tests] command`` in ``.brio/config.toml``.

    None when unset, or while the project is not trusted (it is a command the
    pipeline would run).
    """
    return test_command_of(kernel.config)


def test_command_of(settings: Settings) -> list[str] | None:
    """:func:`test_command` from the settings alone (for front ends without a kernel)."""
    command, path = settings.tests_command()
    if command is None:
        return None
    argv = shlex.split(command) if isinstance(command, str) else command
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ConfigError(
            f'[tests] command in {path} must be a command line, e.g. command = "pytest -q".'
        )
    return argv


class Supervisor:
    """Runs one submitted task and the subtasks its agents spawn.

    Args:
        kernel: The kernel (agents, sessions, state).
        provider: Where the agents' model requests go.
        concurrency: How many subtasks run at once.
    """

    def __init__(
        self, kernel: SupervisorHost, provider: Provider | None, *, concurrency: int = 2
    ) -> None:
        self.kernel = kernel
        self.provider = provider
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._subtasks: dict[str, Subtask] = {}

    def bindings(
        self,
        session: Session | None,
        *,
        scope: Sequence[str] = (),
        ceiling: tuple[Delegator, ...] = (),
    ) -> RunBindings:
        """Bindings for an agent run under this supervisor (a subtask's are cut down
        to the grants of the agents in ``ceiling``)."""
        return RunBindings(
            ceiling=ceiling,
            provider=self.provider,
            workspace=session,
            session_id=session.id if session is not None else "",
            tasks=self,
            scope=tuple(scope),
            ask_user=self.kernel.ask_user,
        )

    # -- the tasks imports (called from agents through the host) -------------------------

    async def spawn(
        self,
        parent_task: str,
        parent_agent: str,
        subtask: dict[str, Any],
        *,
        ceiling: tuple[Delegator, ...] = (),
    ) -> str:
        """Start a subtask in a branch of the parent task's session; returns its id.

        The subtask's agent may do only what its own grants allow and every agent in
        ``ceiling`` (its parent, and theirs) may do too.
        """
        agent = str(subtask["agent"])
        if agent not in SUBTASK_AGENTS:
            raise ConfigError(
                f"{parent_agent!r} asked for a subtask by {agent!r}; subtasks may use "
                f"{', '.join(sorted(SUBTASK_AGENTS))}.",
                title="Unknown subtask agent",
            )
        parent_session = self.kernel.session_of(parent_task)
        if parent_session is None:
            raise ConfigError("The parent task has no session to branch from.")
        sub_id = f"{parent_task}.{len(self._subtasks) + 1}"
        branch = parent_session.fork(label=f"{agent}: {subtask['goal'][:40]}")
        record = Subtask(
            id=sub_id,
            parent=parent_task,
            agent=agent,
            goal=str(subtask["goal"]),
            scope=tuple(subtask.get("scope", ())),
            acceptance=tuple(subtask.get("acceptance", ())),
            session=branch,
            ceiling=ceiling or (Delegator(parent_agent, parent_task, parent_session.id),),
        )
        self._subtasks[sub_id] = record
        record.job = asyncio.create_task(self._run_subtask(record), name=f"subtask {sub_id}")
        return sub_id

    async def _run_subtask(self, record: Subtask) -> dict[str, Any]:
        context = [("files", " ".join(record.scope))] if record.scope else []
        if record.acceptance:
            context.append(("acceptance", "\n".join(record.acceptance)))
        async with self._slots:
            try:
                outcome = await self.kernel.run_agent(
                    record.agent,
                    record.goal,
                    bindings=self.bindings(
                        record.session, scope=record.scope, ceiling=record.ceiling
                    ),
                    context=context,
                    task_id=record.id,
                    parent_task=record.parent,
                )
            except RunFailed as failure:
                return {"id": record.id, "ok": False, "summary": failure.error.message}
            except BrioError as error:
                return {"id": record.id, "ok": False, "summary": error.message}
        if record.agent in WRITING_AGENTS and not await asyncio.to_thread(
            _has_changes, record.session
        ):
            # a Coder that applied nothing did not do its subtask, whatever it says
            summary = applied_nothing(outcome.summary)
            state = self.kernel.state
            if state.exists(["tasks", record.id]):  # the task tree shows it failed
                with state.batch():
                    state.set(["tasks", record.id, "outcome"], {"summary": summary})
                    state.set(["tasks", record.id, "status"], "failed")
            return {"id": record.id, "ok": False, "summary": summary}
        return {"id": record.id, "ok": True, "summary": outcome.summary}

    async def settle(self) -> None:
        """Wait until every subtask has ended (a task ends when all its parts have)."""
        jobs = [r.job for r in self._subtasks.values() if r.job is not None]
        await asyncio.gather(*jobs, return_exceptions=True)
        await asyncio.to_thread(self._close_branches)

    def _close_branches(self) -> None:
        """Discard the subtasks' branch sessions (kept in history): a branch was merged
        into its session, or its subtask failed; either way it is not to be committed."""
        for record in self._subtasks.values():
            record.session.reload_state()
            if record.session.state == "open":
                record.session.discard()

    async def wait(self, ids: Sequence[str], timeout_s: float) -> list[dict[str, Any]]:
        """The results of subtasks ``ids``, waiting at most ``timeout_s`` for all."""
        jobs = []
        for sub_id in ids:
            record = self._subtasks.get(sub_id)
            if record is None or record.job is None:
                raise ConfigError(f"There is no subtask {sub_id!r}.", title="Unknown subtask")
            jobs.append(record.job)
        done, _ = await asyncio.wait(jobs, timeout=timeout_s)
        return [
            job.result()
            if job in done
            else {"id": sub_id, "ok": False, "summary": "still running (timed out waiting)"}
            for sub_id, job in zip(ids, jobs, strict=True)
        ]

    async def merge(self, parent_task: str, ids: Sequence[str]) -> dict[str, Any]:
        """Merge finished subtasks' branches into the parent's session, in order."""
        target = self.kernel.session_of(parent_task)
        if target is None:
            raise ConfigError("The parent task has no session to merge into.")
        merged: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        for sub_id in ids:
            record = self._subtasks[sub_id]
            try:
                paths = await asyncio.to_thread(target.merge_from, record.session, keep_going=True)
                merged.append({"id": sub_id, "paths": paths})
            except MergeConflict as conflict:
                # everything else of the branch is merged; the regions wait for the user
                conflicts.append(
                    {
                        "id": sub_id,
                        "session": record.session.id,
                        "files": conflict.conflicts,
                        "merged": conflict.merged,
                    }
                )
        report = {"merged": merged, "conflicts": conflicts}
        if conflicts:  # one entry per file, with its regions, kept with the session's
            self.kernel.record_conflicts(
                target.id,
                [
                    view
                    for c in conflicts
                    for view in contract.conflict_views(c["session"], c["files"])
                ],
            )
        return report

    # -- the pipeline ----------------------------------------------------------------

    async def run_pipeline(
        self, task_id: str, goal: str, session: Session, *, previous: Sequence[str] = ()
    ) -> TaskResult:
        """Council, Foreman (with Coders), Reviewer and, if configured, the tests.

        With ``previous`` (the requests made in ``session`` before: a follow-up) the
        agents get them with the new request (see :func:`follow_up_goal`, and the
        ``previous-requests`` context); the run counts as having changed something
        only if this run changed the session.
        """
        kernel = self.kernel
        result = TaskResult(task_id, "running", session_id=session.id)
        start = await asyncio.to_thread(_content, session) if previous else {}
        extra: list[tuple[str, str]] = []
        if previous:
            goal = follow_up_goal(goal, previous)
            extra = [("previous-requests", "\n".join(previous))]
        plan = await self._step("council", goal, session, task_id, list(extra))
        result.plan = _json(plan.data).get("subtasks", [])
        if not result.plan:
            raise ConfigError("The Council's plan has no subtasks.", title="Empty plan")
        foreman = await self._step(
            "foreman", goal, session, task_id, [("plan", json.dumps(result.plan)), *extra]
        )
        coded = _json(foreman.data)
        result.merge = coded.get("merge", {})
        result.failed_subtasks = self._failures(coded.get("subtasks", []))
        if previous:
            changed = await asyncio.to_thread(_content, session) != start
        else:
            changed = await asyncio.to_thread(_has_changes, session)
        if not changed:  # nothing to review or to verify: the run says why
            result.verified = False if test_command(kernel) is not None else None
            return self._conclude(result, changed=False)
        # The Coders' work is in the session now: a step that fails from here on (a
        # provider outage at review, a test command that cannot run) ends the run, but
        # the session stays for the user to review.
        step = "review"
        try:
            review = await self._step(
                "reviewer", goal, session, task_id, [("plan", json.dumps(result.plan)), *extra]
            )
            result.review = _json(review.data)
            kernel.record_review(session.id, result.review)
            command = test_command(kernel)
            if command is not None:
                step = "the tests"
                with telemetry.span(
                    "briotui.test_run",
                    {"briotui.test.command": shlex.join(command), "briotui.session.id": session.id},
                ) as span:
                    await self._step(
                        "smart",
                        f"Run the project's tests: {shlex.join(command)}",
                        session,
                        task_id,
                        [("command", json.dumps(command))],
                    )
                    # the kernel's own record of the command decides, not the agent's summary
                    result.verified = kernel.is_verified(session.id)
                    result.tests_passed = self._tests_passed(session.id)
                    telemetry.set_attributes(span, {"briotui.test.passed": result.tests_passed})
                rounds = fix_rounds(kernel)
                for round_no in range(1, rounds + 1):
                    if result.tests_passed:  # conflicts are the user's to resolve, not a fix's
                        break
                    step = f"fix round {round_no}"
                    if not await self._fix_round(round_no, rounds, goal, session, task_id, command):
                        break
                    result.verified = kernel.is_verified(session.id)
                    result.tests_passed = self._tests_passed(session.id)
                    result.fix_rounds = round_no
        except RunFailed as failure:
            return self._conclude(result, changed=True, stopped=(step, failure.error))
        except BrioError as error:
            return self._conclude(result, changed=True, stopped=(step, error))
        return self._conclude(result, changed=True)

    def _tests_passed(self, session_id: str) -> bool:
        """Whether the session's last run of the test command passed (the kernel's record)."""
        run = self.kernel.test_run(session_id)
        return run is not None and run["exit_code"] == 0

    def _failures(self, results: Sequence[Any]) -> list[dict[str, Any]]:
        """The subtasks whose last attempt failed: id, goal and why."""
        failed = []
        for item in results:
            if not isinstance(item, dict) or item.get("ok"):
                continue
            record = self._subtasks.get(str(item.get("id")))
            failed.append(
                {
                    "id": str(item.get("id", "")),
                    "goal": record.goal.split("\n", 1)[0] if record is not None else "",
                    "reason": str(item.get("summary", "")),
                }
            )
        return failed

    def _conclude(
        self,
        result: TaskResult,
        *,
        changed: bool,
        stopped: tuple[str, BrioError] | None = None,
    ) -> TaskResult:
        """Set the run's outcome and its summary from what really happened.

        A session without changes is never verified, nor one with conflicts left to
        resolve; failed subtasks and conflicts make the outcome ``partial``. A step
        that failed after the Coders (``stopped``: which step, and its error) makes
        it ``error`` (``cancelled`` if it was cancelled): the run stopped, its session
        keeps the changes.
        """
        conflicts = result.merge.get("conflicts", [])
        files = [f["path"] for c in conflicts for f in c.get("files", [])]
        failed = result.failed_subtasks
        planned = len(result.plan)
        if files and result.verified:
            result.verified = False  # what passed is not the whole change
            self.kernel.state.set(["sessions", result.session_id, "verified"], False)
        if not changed:
            result.verified = None if result.verified is None else False
            if self.kernel.state.exists(["sessions", result.session_id]):
                self.kernel.state.set(["sessions", result.session_id, "verified"], False)
        result.status = "done"
        if not changed:
            result.outcome = "failed"
        elif failed or files:
            result.outcome = "partial"
        elif result.verified is None:
            result.outcome = "done"
        else:
            result.outcome = "verified" if result.verified else "tests-failed"
        merged = len(result.merge.get("merged", []))
        parts = [
            f"{planned - len(failed)} of {planned} subtask(s) coded"
            + (f", {merged} merged cleanly" if changed else "; nothing was changed")
        ]
        if files:
            parts.append(f"{len(conflicts)} merged with conflicts to resolve in {', '.join(files)}")
        if failed:
            parts.append("failed: " + "; ".join(f"{f['id']} ({f['reason']})" for f in failed))
        if changed:
            parts.append(f"review: {result.review.get('verdict', 'none')}")
        if result.verified is not None:
            parts.append(tests_words(result))
        if result.fix_rounds:
            parts.append(f"after {result.fix_rounds} fix round(s)")
        if stopped is not None:
            step, error = stopped
            cancelled = error.kind == "cancelled"
            result.status = "cancelled" if cancelled else "failed"
            result.error = error.to_dict()
            result.outcome = "cancelled" if cancelled else "error"
            parts.append(
                f"stopped at {step}: {error.message} (the changes are kept in the session "
                "for review)"
            )
        result.summary = "; ".join(parts)
        return result

    # -- the fix loop ------------------------------------------------------------------

    async def _fix_round(
        self,
        round_no: int,
        rounds: int,
        goal: str,
        session: Session,
        parent: str,
        command: list[str],
    ) -> bool:
        """One round of the fix loop: the Coder gets the failing output and edits the
        session again (its task is "Fix round N"), then the tests run again under it.

        Returns:
            Whether the round ran to the test run (False: the Coder failed, or there
            was no failing run to show it; the loop stops).
        """
        kernel = self.kernel
        run = kernel.test_run(session.id)
        if run is None:
            return False
        before = {h.id for h in (await asyncio.to_thread(session.diff)).hunks()}
        changed = [f.path for f in (await asyncio.to_thread(session.diff)).files]
        named = [n.split("::", 1)[0] for n in run["failed"] if "::" in n]
        files = [p for p in dict.fromkeys(changed + named) if p and " " not in p]
        context = [("tests_failed", fix_feedback(run, round_no, rounds))]
        if files:
            context.append(("files", " ".join(files)))
        fix_id = f"{parent}.fix{round_no}-{uuid.uuid4().hex[:4]}"
        try:
            await kernel.run_agent(
                "coder",
                f"{goal}\n\nThe project's tests fail after this change; fix the code so "
                f"they pass (fix round {round_no} of {rounds}).",
                bindings=self.bindings(session),
                context=context,
                task_id=fix_id,
                parent_task=parent,
                title=f"Fix round {round_no}",
            )
        except (RunFailed, BrioError):
            return False
        after = {h.id for h in (await asyncio.to_thread(session.diff)).hunks()}
        kernel.note_authors(session.id, sorted(after - before), fix_id)
        await self._step(
            "smart",
            f"Run the project's tests: {shlex.join(command)} (after fix round {round_no})",
            session,
            fix_id,
            [("command", json.dumps(command))],
        )
        return True

    async def _step(
        self,
        agent: str,
        goal: str,
        session: Session,
        parent: str,
        context: list[tuple[str, str]],
    ) -> RunOutcome:
        return await self.kernel.run_agent(
            agent,
            goal,
            bindings=self.bindings(session),
            context=context,
            task_id=f"{parent}.{agent}-{uuid.uuid4().hex[:4]}",
            parent_task=parent,
            title=STEP_TITLES.get(agent),
        )


FIX_OUTPUT_CHARS = 6000
"""How much of the failing output's end a fix round shows the Coder."""


def fix_feedback(run: dict[str, Any], round_no: int, rounds: int) -> str:
    """What the Coder is told in a fix round (its ``tests_failed`` context): the command,
    the failing tests, the output."""
    failed = "".join(f"- {name}\n" for name in run["failed"])
    return (
        f"Fix round {round_no} of {rounds}.\n"
        f"Command: {shlex.join(run['argv'])} exited {run['exit_code']}.\n"
        + (f"Failing tests:\n{failed}" if failed else "")
        + "Output (its end):\n```\n"
        + str(run["output"])[-FIX_OUTPUT_CHARS:]
        + "\n```\nChange the code (not the tests, unless they are wrong) so they pass."
    )


def follow_up_goal(goal: str, previous: Sequence[str]) -> str:
    """What the agents are asked for a follow-up request: the new request (its first
    line stays the request), then the earlier requests the session already holds."""
    earlier = "".join(f"{n}. {request}\n" for n, request in enumerate(previous, 1))
    return (
        f"{goal.strip()}{FOLLOW_UP_NOTE} that already holds the "
        "changes made for the earlier request(s) below (the files you read show them): "
        f"build on them, do not redo or undo them unless asked.\nEarlier requests:\n{earlier}"
    )


def _content(session: Session) -> dict[str, object]:
    """What a session holds beyond its base: path -> blob (to see whether a run changed it)."""
    return dict(session.overlay())


def applied_nothing(summary: str) -> str:
    """Why a writing agent's run failed although it ended: it changed no file."""
    return "applied nothing: " + (summary or "no edits")


def _has_changes(session: Session) -> bool:
    return bool(session.diff().files)


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
