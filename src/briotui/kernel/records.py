"""What the kernel remembers of its work: the task tree in the state, and the store.

:class:`Recorder` turns runtime events into state-tree patches (progress, milestones,
agent lifecycle and meters, usage per provider, the provider and any fallback) and rows
in the project database (tasks, transcripts with the provider and model of every reply,
usage, failed model attempts, reviews, the commands agents ran), so a restart shows the
same tasks and sessions. The rows written during a run are queued for the store's
writer thread (:meth:`~briotui.kernel.store.Store.write`), off the event loop. Every
value it puts in the state tree is built by :mod:`briotui.kernel.contract`'s
constructors, in the shapes front ends read.

The ``usage`` table holds one row per model reply (provider, model, tokens, cost) and
one per run (fuel and wall time, with the provider and model of the run's last reply).

What a restart shows is read back from the store, never lost with the process: each
task's title, who wrote each hunk (``hunk_provenance``: kept when a session is
published), and whether a session is verified (its last run of the test command
passed on its current version, with no conflicts left).

One piece (~690 lines): it is the one writer of the kernel's records, events in and
state and rows out; splitting tasks from sessions would split that one write path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from briotui.kernel import contract
from briotui.kernel.errors import BrioError
from briotui.kernel.runtime.events import (
    AgentState,
    CommandRan,
    Event,
    Metrics,
    Milestone,
    ModelAttemptFailed,
    ModelReply,
    Progress,
    StateChanged,
)
from briotui.kernel.runtime.instance import RunUsage
from briotui.kernel.state import StateTree
from briotui.kernel.store import Store
from briotui.kernel.tasktree import TaskStatus, TaskTree
from briotui.kernel.vfs import Session, SessionDiff

_GONE = (AgentState.STOPPED, AgentState.FAILED)

INTERRUPTED = "interrupted by a restart"
"""The stored result of a task that was running when briotui went away."""

FOLLOW_UP_NOTE = "\n\nThis request continues an open session"
"""Where a follow-up's goal (see ``supervisor.follow_up_goal``) stops being the request."""

NOT_WRITERS = frozenset({"pipeline", "council", "foreman", "reviewer", "smart"})
"""Agents that plan, review or test: a session's changes are never credited to them."""


def _agent_node(agent: str) -> contract.AgentView:
    """A fresh ``/agents/<instance>`` value: no task yet, meters at zero."""
    return contract.agent_view(agent, state="")


class Recorder:
    """Keeps the state tree and the store up to date with the kernel's work."""

    def __init__(
        self,
        state: StateTree,
        store: Store,
        *,
        test_command: Callable[[], Sequence[str] | None] | None = None,
    ) -> None:
        self.state = state
        self.tasks = TaskTree(state)
        self.store = store
        self._test_command = test_command
        """The project's test command (None: none configured), for verification."""
        self._agents: dict[str, contract.AgentView] = {}
        """What is published at ``/agents/<instance>``, per live instance."""
        self._last_model: dict[str, tuple[str, str]] = {}
        """The provider and model of each running task's last reply."""

    # -- events (delivered on the kernel's loop) -------------------------------------

    def on_event(self, event: Event) -> None:
        """Apply one runtime event."""
        if isinstance(event, Progress) and self.state.exists(["tasks", event.task]):
            self.tasks.set_progress(event.task, event.percent, event.note)
        elif isinstance(event, Milestone) and self.state.exists(["tasks", event.task]):
            self.tasks.add_milestone(event.task, event.name)
        elif isinstance(event, StateChanged):
            if event.state in _GONE:
                self._agents.pop(event.instance, None)
                if self.state.exists(["agents", event.instance]):
                    self.state.remove(["agents", event.instance])
            elif event.state is not AgentState.LOADED:
                node = self._agents.setdefault(event.instance, _agent_node(event.agent))
                node["state"] = event.state.value
                node["detail"] = event.detail
                self.state.set(["agents", event.instance], dict(node), coalesce=True)
        elif isinstance(event, Metrics):
            live = self._agents.get(event.instance)
            if live is not None:
                live["task"] = event.task
                live["fuel_used"] = event.fuel_used
                live["fuel_limit"] = event.fuel_limit
                live["memory_bytes"] = event.memory_bytes
                live["memory_limit"] = event.memory_limit
                live["peak_memory_bytes"] = event.peak_memory_bytes
                self.state.set(["agents", event.instance], dict(live), coalesce=True)
        elif isinstance(event, ModelReply):
            self._reply(event)
        elif isinstance(event, ModelAttemptFailed):
            self.store.write(
                "INSERT INTO provider_failures (task_id, session_id, agent, provider, model,"
                " error_kind, message, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.task,
                    event.session,
                    event.agent,
                    event.provider,
                    event.model,
                    event.cause,
                    event.message[:2000],
                    time.time(),
                ),
            )
        elif isinstance(event, CommandRan):
            self.store.write(
                "INSERT INTO command_runs (session_id, task_id, agent, argv, exit_code,"
                " duration_ms, output, truncated, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.session,
                    event.task,
                    event.agent,
                    json.dumps(list(event.argv)),
                    event.exit_code,
                    event.duration_ms,
                    event.output,
                    int(event.truncated),
                    time.time(),
                ),
            )

    def _reply(self, event: ModelReply) -> None:
        now = time.time()
        message = (
            "INSERT INTO messages (task_id, agent, role, content, provider, model, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self.store.write_many(
            [
                (message, (event.task, event.agent, "user", event.prompt, "", "", now)),
                (
                    message,
                    (
                        event.task,
                        event.agent,
                        "assistant",
                        "\n".join([event.text, *(f"[tool] {c}" for c in event.tool_calls)])
                        if event.tool_calls
                        else event.text,
                        event.provider,
                        event.model,
                        now,
                    ),
                ),
                (
                    "INSERT INTO usage (task_id, agent, provider, model, input_tokens,"
                    " output_tokens, cost_usd, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.task,
                        event.agent,
                        event.provider,
                        event.model,
                        event.input_tokens,
                        event.output_tokens,
                        event.cost_usd,
                        now,
                    ),
                ),
            ]
        )
        self._last_model[event.task] = (event.provider, event.model)
        cost = event.cost_usd or 0.0
        for field, value in (
            ("input_tokens", event.input_tokens),
            ("output_tokens", event.output_tokens),
            ("cost_usd", cost),
        ):
            self.state.add_number(["usage", field], value, coalesce=True, parents=True)

        def add(current: Any) -> contract.TokenUsageView:
            return contract.TokenUsageView(
                input_tokens=int(current.get("input_tokens", 0)) + event.input_tokens,
                output_tokens=int(current.get("output_tokens", 0)) + event.output_tokens,
                cost_usd=float(current.get("cost_usd", 0.0)) + cost,
            )

        self.state.update(
            ["usage", "by_provider", event.provider or "unknown"],
            add,
            default={},
            coalesce=True,
            parents=True,
        )
        self.state.set(
            ["provider"],
            contract.provider_view(
                event.provider,
                model=event.model,
                detail=f"fell back from {event.fallback_from}" if event.fallback_from else "",
                fallback_from=event.fallback_from,
            ),
            coalesce=True,
        )
        if self.state.exists(["tasks", event.task]):
            self.tasks.add_usage(
                event.task,
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                cost_usd=cost,
            )

    # -- restart ----------------------------------------------------------------------

    def restore(self) -> list[str]:
        """Load the stored tasks and sessions into the state tree after a start.

        Open sessions are listed (task, label, review); :meth:`publish_session` (off
        the loop: it reads their diffs) then shows each whole again, with its hunks'
        provenance and its verification, as before the restart.

        Tasks still marked running were interrupted (briotui quit or crashed): they are
        marked cancelled here, and their ids returned so the user can resume (submit
        again) or discard (roll back their session) them. So are the top-level tasks a
        quit stopped, and those offered before that were neither resumed nor discarded.
        """
        interrupted: list[str] = []
        rows = self.store.query("SELECT * FROM tasks ORDER BY created")
        with self.state.batch():
            for row in self.store.query("SELECT id, task, label, state FROM sessions"):
                if row["state"] == "open":
                    self.state.set(
                        ["sessions", row["id"]],
                        contract.session_view(
                            row["id"],
                            task=row["task"] or "",
                            label=row["label"] or "",
                            review=self._review_view(row["id"]),
                        ),
                        parents=True,
                    )
            for row in rows:
                status = row["status"]
                if status in ("running", "pending", "waiting"):
                    status = "cancelled"
                    interrupted.append(row["id"])
                elif row["result"] == INTERRUPTED and row["parent_id"] is None:
                    interrupted.append(row["id"])  # stopped by a quit, or offered before
                if self.state.exists(["tasks", row["id"]]):
                    continue
                parent = (
                    row["parent_id"]
                    if self.state.exists(["tasks", row["parent_id"] or ""])
                    else None
                )
                self.tasks.add_task(
                    row["id"],
                    title=row["title"] or _first_line(row["goal"]),
                    agent=row["agent"],
                    parent=parent,
                    session=row["session_id"],
                    status=status,
                )
                if row["outcome"] and status == row["status"]:  # how a request ended
                    self.state.set(
                        ["tasks", row["id"], "outcome"],
                        contract.OutcomeView(
                            summary=str(row["result"] or "")[:4000], kind=row["outcome"]
                        ),
                    )
        if interrupted:
            self.store.execute(
                "UPDATE tasks SET status = 'cancelled', result = ?"
                f" WHERE id IN ({', '.join('?' for _ in interrupted)})",
                [INTERRUPTED, *interrupted],
            )
        return interrupted

    def stored_tasks(self, *, roots_only: bool = True) -> list[dict[str, Any]]:
        """The stored tasks, oldest first: id, agent, goal, status, session, result."""
        where = " WHERE parent_id IS NULL" if roots_only else ""
        rows = self.store.query(
            "SELECT id, parent_id, agent, goal, status, outcome, session_id, result, created,"
            " updated"
            f" FROM tasks{where} ORDER BY created"
        )
        return [
            {
                **dict(r),
                "interrupted": r["status"] in ("running", "pending", "waiting")
                or r["result"] == INTERRUPTED,
            }
            for r in rows
        ]

    def sessions_of_ended_tasks(self) -> set[str]:
        """The sessions of top-level tasks that failed or were cancelled."""
        rows = self.store.query(
            "SELECT session_id FROM tasks WHERE parent_id IS NULL AND session_id IS NOT NULL"
            " AND status IN ('failed', 'cancelled')"
        )
        return {str(r["session_id"]) for r in rows}

    def task_of_session(self, session_id: str) -> str | None:
        """The top-level task that made a session, or None."""
        rows = self.store.query(
            "SELECT id FROM tasks WHERE session_id = ? AND parent_id IS NULL"
            " ORDER BY created LIMIT 1",
            (session_id,),
        )
        return str(rows[0]["id"]) if rows else None

    def requests_of(self, session_id: str) -> list[str]:
        """The requests made in a session so far, oldest first: the goals of the
        top-level tasks that worked in it (the first, a revision, follow-ups)."""
        rows = self.store.query(
            "SELECT goal FROM tasks WHERE session_id = ? AND parent_id IS NULL ORDER BY created",
            (session_id,),
        )
        goals = (str(r["goal"]).split(FOLLOW_UP_NOTE, 1)[0].strip() for r in rows)
        return list(dict.fromkeys(goal for goal in goals if goal))

    def goal_of(self, task_id: str) -> tuple[str, str, str | None] | None:
        """A stored task's (goal, agent, session id), or None."""
        rows = self.store.query(
            "SELECT goal, agent, session_id FROM tasks WHERE id = ?", (task_id,)
        )
        return (rows[0]["goal"], rows[0]["agent"], rows[0]["session_id"]) if rows else None

    # -- tasks -----------------------------------------------------------------------

    def task_started(
        self,
        task_id: str,
        *,
        agent: str,
        goal: str,
        parent: str | None,
        session_id: str | None,
        title: str | None = None,
    ) -> None:
        """A task began running (``title``, if given, is shown instead of the goal)."""
        now = time.time()
        title = title or _first_line(goal)
        if not self.state.exists(["tasks", task_id]):
            self.tasks.add_task(
                task_id,
                title=title,
                agent=agent,
                parent=parent,
                session=session_id,
                status="running",
            )
        else:
            self.tasks.set_status(task_id, "running")
        self.store.write(
            "INSERT OR REPLACE INTO tasks (id, parent_id, agent, goal, status, session_id,"
            " created, updated, title) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (task_id, parent, agent, goal, session_id, now, now, title),
        )

    def task_finished(
        self,
        task_id: str,
        status: TaskStatus,
        summary: str,
        usage: RunUsage | None,
        *,
        agent: str = "",
        session_id: str = "",
        final: bool = True,
        kind: str = "",
    ) -> None:
        """A task ended (done, failed or cancelled).

        ``kind`` is how a request ended (a top-level task's outcome: a pipeline can end
        ``done`` with nothing changed, which is ``failed``).

        With ``final`` False only the run's usage is recorded: the task goes on (an
        ``@agent`` request's one run, whose driver then records how the task ended).
        """
        if self.state.exists(["tasks", task_id]):
            with self.state.batch():
                if usage is not None:
                    self.tasks.add_usage(
                        task_id, fuel=usage.fuel, wall_ms=usage.wall_ms, coalesce=False
                    )
                if final:
                    self.state.set(
                        ["tasks", task_id, "outcome"], self._outcome(task_id, summary, kind)
                    )
                    self.tasks.set_status(task_id, status)
        if final:
            self.store.write(
                "UPDATE tasks SET status = ?, result = ?, outcome = ?, updated = ? WHERE id = ?",
                (status, summary[:20_000], kind, time.time(), task_id),
            )
        provider, model = self._last_model.pop(task_id, ("", ""))
        if usage is not None:  # the tokens are in the rows of the run's replies
            self.store.write(
                "INSERT INTO usage (task_id, session_id, agent, provider, model, fuel, wall_ms,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    session_id,
                    agent,
                    provider,
                    model,
                    usage.fuel,
                    usage.wall_ms,
                    time.time(),
                ),
            )

    def _outcome(self, task_id: str, summary: str, kind: str = "") -> contract.OutcomeView:
        outcome = contract.OutcomeView(summary=summary[:4000])
        if kind:
            outcome["kind"] = kind
        error = self.state.get(["tasks", task_id, "outcome", "error"])
        if error:
            outcome["error"] = contract.error_view(error)
        return outcome

    def _review_view(self, session_id: str) -> contract.ReviewView | None:
        stored = self.review_of(session_id)
        return contract.review_view(stored) if stored is not None else None

    def publish_session(self, session: Session) -> None:
        """Publish a session's state, files and hunks (decisions, reasons, provenance).

        What other steps published (the task, label, review, conflicts) is kept. An
        open session's verification is read from the store (see :meth:`verification`),
        and its hunks' provenance is kept there (see :meth:`authors`), so a restart
        publishes the same. Blocking (it reads the session's diff and the store): call
        it off the loop.
        """
        diff = session.diff()
        decisions = session.decisions()
        authors = self.authors(session)
        new = [h.id for h in diff.hunks() if h.id not in authors]  # not stored yet
        self._keep_authors(session.id, new, authors, diff)
        current: dict[str, Any] = self.state.get(["sessions", session.id]) or {}
        verified, tests = current.get("verified"), current.get("tests")
        if session.state == "open":
            known = self.verification(session.id)
            if known is not None:
                verified, tests = known
        files = [
            contract.file_view(
                f.path,
                old_path=f.old_path,
                status=f.status,
                hunks=[
                    contract.hunk_view(
                        h.id,
                        kind=h.kind,
                        header=h.header(),
                        decision=decisions.get(h.id, ("pending", ""))[0],
                        reason=decisions.get(h.id, ("pending", ""))[1],
                        agent=(authors.get(h.id) or authors.get(f.path) or ("", ""))[0],
                        model=(authors.get(h.id) or authors.get(f.path) or ("", ""))[1],
                    )
                    for h in f.hunks
                ],
            )
            for f in diff.files
        ]
        self.state.set(
            ["sessions", session.id],
            contract.session_view(
                session.id,
                task=str(current.get("task") or session.task or ""),
                label=str(current.get("label") or session.label or ""),
                state=session.state,
                verified=verified,
                files=files,
                conflicts=current.get("conflicts") or self.conflicts_of(session.id),
                review=current.get("review") or self._review_view(session.id),
                tests=tests,
            ),
            parents=True,
        )

    def note_authors(self, session_id: str, hunk_ids: Sequence[str], task_id: str) -> None:
        """Remember (in the store) that ``task_id`` wrote these hunks (e.g. a revise
        run's or a fix round's new hunks)."""
        rows = self.store.query("SELECT agent FROM tasks WHERE id = ?", (task_id,))
        agent = str(rows[0]["agent"]) if rows else "coder"
        model = self._model_of(task_id)
        now = time.time()
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO hunk_provenance (session_id, hunk_id, task_id, agent,"
                " model, created) VALUES (?, ?, ?, ?, ?, ?)",
                [(session_id, h, task_id, agent, model, now) for h in hunk_ids],
            )

    def note_user_authors(self, session_id: str, hunk_ids: Sequence[str], by: str) -> None:
        """Remember (in the store) that the user wrote these hunks, e.g. by resolving a
        conflict (``by`` says how, e.g. ``user (tui)`` or a served kernel's client id);
        they are never credited to the agent that last wrote in the session."""
        agent = by if by.startswith("user") else f"user ({by})"
        now = time.time()
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO hunk_provenance (session_id, hunk_id, task_id, agent,"
                " model, created) VALUES (?, ?, NULL, ?, '', ?)",
                [(session_id, h, agent[:200], now) for h in hunk_ids],
            )

    def _keep_authors(
        self,
        session_id: str,
        hunk_ids: Sequence[str],
        authors: Mapping[str, tuple[str, str]],
        diff: SessionDiff,
    ) -> None:
        """Store the provenance of hunks published for the first time (a hunk's id
        names its content, so who wrote it does not change afterwards); their credit
        in ``authors`` is their path's."""
        path_of: dict[str, str] = {h.id: f.path for f in diff.files for h in f.hunks}
        rows = []
        now = time.time()
        for hunk_id in hunk_ids:
            agent, model = authors.get(hunk_id) or authors.get(path_of[hunk_id]) or ("", "")
            if agent:
                rows.append((session_id, hunk_id, agent, model, now))
        if rows:
            with self.store.transaction() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO hunk_provenance (session_id, hunk_id, agent, model,"
                    " created) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

    def _model_of(self, task_id: str) -> str:
        rows = self.store.query(
            "SELECT provider, model FROM messages WHERE task_id = ? AND role = 'assistant'"
            " ORDER BY id DESC LIMIT 1",
            (task_id,),
        )
        if not rows:
            return ""
        return "/".join(str(rows[0][k]) for k in ("provider", "model") if rows[0][k])

    def authors(self, session: Session) -> dict[str, tuple[str, str]]:
        """Who wrote what in a session: path or hunk id -> (agent, model).

        A path is credited to the writing agent that changed it: the agent run in a
        branch forked from the session (a Coder of the pipeline) whose version the
        session holds exactly (else the first branch that changed it), else the latest
        writing agent that ran in the session itself; hunk ids in the store's
        ``hunk_provenance`` (noted by :meth:`note_authors` for a fix round or a revise
        run, or kept when first published) override both. The model is that task's
        last reply's provider/model from the transcript.
        """
        found: dict[str, tuple[str, str]] = {}

        def writer(session_id: str) -> tuple[str, str] | None:
            rows = self.store.query(
                "SELECT id, agent FROM tasks WHERE session_id = ? ORDER BY created DESC",
                (session_id,),
            )
            for row in rows:
                if row["agent"] not in NOT_WRITERS:
                    return str(row["id"]), str(row["agent"])
            return None

        mine = session.overlay()
        children = self.store.query(
            "SELECT id FROM sessions WHERE parent_id = ? ORDER BY created", (session.id,)
        )
        maybe: dict[str, tuple[str, str]] = {}
        for child in children:
            who = writer(str(child["id"]))
            if who is None:
                continue
            try:
                paths = session.manager.get(str(child["id"])).overlay()
            except BrioError:
                continue
            for path, entry in paths.items():
                credit = (who[1], self._model_of(who[0]))
                if path in mine and mine[path].blob == entry.blob:
                    found.setdefault(path, credit)  # the session has exactly its version
                else:
                    maybe.setdefault(path, credit)  # merged with others, or not merged
        for path, credit in maybe.items():
            found.setdefault(path, credit)
        own = writer(session.id)
        if own is not None:
            for path in mine:
                found.setdefault(path, (own[1], self._model_of(own[0])))
        for row in self.store.query(
            "SELECT hunk_id, agent, model FROM hunk_provenance WHERE session_id = ?",
            (session.id,),
        ):
            found[str(row["hunk_id"])] = (str(row["agent"]), str(row["model"]))
        return found

    def verification(self, session_id: str) -> tuple[bool, contract.VerificationView | None] | None:
        """Whether a session is verified, from the store: its last run of the test
        command passed on its current version (no file changed or conflict resolved
        since) and no conflicts are left; with that run's view (None when the run tested
        other content). None when no test command is configured or it never ran there
        (what was published stands).
        """
        command = self._test_command() if self._test_command is not None else None
        if command is None:
            return None
        run = self.last_run(session_id, command)
        if run is None:
            return None
        rows = self.store.query("SELECT updated FROM sessions WHERE id = ?", (session_id,))
        current = not rows or float(rows[0]["updated"]) <= float(run["created"])
        conflicts = self.conflicts_of(session_id)
        resolved_at = max(
            (r.get("resolved_at", 0.0) for c in conflicts for r in c["regions"]), default=0.0
        )
        if not current or float(run["created"]) < resolved_at:
            return False, None  # that run tested other content: no test run to show
        passed = run["exit_code"] == 0 and not contract.unresolved(conflicts)
        return passed, verification_view(run)

    def record_review(self, session_id: str, review: dict[str, Any], task_id: str = "") -> None:
        """Keep the Reviewer's verdict and findings for a session."""
        verdict = str(review.get("verdict", "none"))
        findings = review.get("findings", [])
        self.store.execute(
            "INSERT INTO reviews (session_id, task_id, verdict, findings, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (session_id, task_id, verdict, json.dumps(findings), time.time()),
        )
        if self.state.exists(["sessions", session_id]):
            self.state.set(
                ["sessions", session_id, "review"],
                contract.review_view({"verdict": verdict, "findings": findings}),
            )

    def review_of(self, session_id: str) -> dict[str, Any] | None:
        """The latest review of a session, or None."""
        rows = self.store.query(
            "SELECT verdict, findings FROM reviews WHERE session_id = ? ORDER BY id DESC LIMIT 1",
            (session_id,),
        )
        if not rows:
            return None
        return {"verdict": rows[0]["verdict"], "findings": json.loads(rows[0]["findings"])}

    def record_conflicts(self, session_id: str, views: Sequence[contract.ConflictView]) -> None:
        """Keep the conflicting regions a merge left in a session and publish them all."""
        now = time.time()
        for view in views:
            self.store.execute(
                "INSERT OR REPLACE INTO session_conflicts (session_id, path, branch, regions,"
                " created) VALUES (?, ?, ?, ?, ?)",
                (session_id, view["path"], view["session"], json.dumps(view["regions"]), now),
            )
        if self.state.exists(["sessions", session_id]):
            self.state.set(["sessions", session_id, "conflicts"], self.conflicts_of(session_id))

    def conflicts_of(self, session_id: str) -> list[contract.ConflictView]:
        """The conflicts a session holds for the user to resolve (oldest first)."""
        rows = self.store.query(
            "SELECT path, branch, regions FROM session_conflicts WHERE session_id = ?"
            " ORDER BY created, path",
            (session_id,),
        )
        views: list[contract.ConflictView] = []
        for r in rows:
            file = {"path": r["path"], "regions": json.loads(r["regions"])}
            views += contract.conflict_views(str(r["branch"]), [file])
        return contract.number_regions(views)  # within a file, across its branches

    def last_run(self, session_id: str, argv: Sequence[str]) -> dict[str, Any] | None:
        """The latest run of ``argv`` in a session (see :func:`last_command_run`)."""
        return last_command_run(self.store, session_id, argv)

    def transcript(self, task_id: str) -> list[dict[str, Any]]:
        """The messages of a task (and its subtasks), oldest first; "" for all."""
        if not task_id:
            return [
                dict(r)
                for r in self.store.query(
                    "SELECT task_id, agent, role, content, provider, model, created FROM messages"
                    " ORDER BY id"
                )
            ]
        rows = self.store.query(
            "SELECT task_id, agent, role, content, provider, model, created FROM messages"
            " WHERE task_id = ? OR task_id LIKE ? ESCAPE '\\' ORDER BY id",
            (task_id, _like_literal(task_id) + ".%"),
        )
        return [dict(r) for r in rows]


def verification_view(run: Mapping[str, Any]) -> contract.VerificationView:
    """The state's view of a stored test run (see :func:`last_command_run`)."""
    return contract.verification_view(
        run["argv"],
        exit_code=int(run["exit_code"]),
        duration_ms=int(run["duration_ms"]),
        output=str(run["output"]),
        truncated=bool(run["truncated"]),
    )


def _first_line(goal: str) -> str:
    """A task's default title: its goal's first line."""
    return (goal.strip().splitlines() or [""])[0][:120]


def last_command_run(store: Store, session_id: str, argv: Sequence[str]) -> dict[str, Any] | None:
    """The latest run of ``argv`` in a session, as the kernel saw it.

    Returns:
        ``task_id``, ``agent``, ``argv``, ``exit_code``, ``duration_ms``, ``output`` (its
        tail), ``truncated``, ``created`` and ``failed`` (the failing tests' names the
        output lists), or None if it never ran there.
    """
    rows = store.query(
        "SELECT task_id, agent, argv, exit_code, duration_ms, output, truncated, created"
        " FROM command_runs WHERE session_id = ? AND argv = ? ORDER BY id DESC LIMIT 1",
        (session_id, json.dumps(list(argv))),
    )
    if not rows:
        return None
    row = dict(rows[0])
    row["argv"] = json.loads(row["argv"])
    row["truncated"] = bool(row["truncated"])
    row["failed"] = contract.failed_tests(row["output"])
    return row


def _like_literal(text: str) -> str:
    """``text`` for a SQL LIKE pattern (``ESCAPE '\\'``): ``%`` and ``_`` match only
    themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
