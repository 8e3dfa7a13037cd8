"""The kernel's command API: one object per project that the TUI, the CLI and tests drive.

Everything a front end does goes through :class:`Kernel`; everything it shows comes
from the kernel's events (:attr:`Kernel.events`). The kernel never imports Textual.

It is longer than most modules (~1000 lines) because it is the one command surface:
each front-end command (tasks, session commands, grants, questions) is a short method
here that delegates to the module doing the work (``supervisor``, ``session_commands``,
``records``, ``caps``).

One piece: the :class:`Kernel` is the facade front ends use; each method delegates to
the module doing the work (supervisor, session commands, records, runtime), so its
length is its public API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from briotui.kernel import contract, telemetry
from briotui.kernel.agents import AgentSpec, Discovery, discover
from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.caps.checker import Capabilities, PromptFn
from briotui.kernel.caps.model import ApproveMode, CapabilityRequest
from briotui.kernel.caps.profiles import profiles_from_settings
from briotui.kernel.cluster.config import ClusterConfig, cluster_config, project_namespace
from briotui.kernel.errors import (
    AgentCancelled,
    AgentNotFound,
    BrioError,
    BuildError,
    ConfigError,
    EmptyRequest,
    GrantNotFound,
    JournalNotFound,
    SessionNotContinuable,
    TaskNotFound,
)
from briotui.kernel.journal import Journals, RunHandle, run_by_id, runs_of
from briotui.kernel.journal.replay import AgentCodeSource
from briotui.kernel.journal.replayer import TaskReplay, replay_task
from briotui.kernel.llm.types import Provider
from briotui.kernel.mcp.hub import McpHub
from briotui.kernel.mesh import Mesh
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.records import INTERRUPTED, Recorder
from briotui.kernel.repomap import build_repo_map
from briotui.kernel.runtime.build import Builder, BuildEvent, BuildResult
from briotui.kernel.runtime.cache import BuildCache
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.engine import EngineSettings, EpochTicker, make_engine
from briotui.kernel.runtime.events import Event, EventBus
from briotui.kernel.runtime.instance import (
    AgentInstance,
    AgentTask,
    LoadedAgent,
    RunFailed,
    RunOutcome,
    RunUsage,
)
from briotui.kernel.runtime.pool import AgentPool
from briotui.kernel.session_commands import CommitCheck, Retest, SessionCommands, feedback_of
from briotui.kernel.settings import Settings, load_settings
from briotui.kernel.shell.policy import CommandPolicy
from briotui.kernel.shell.runner import ProjectEnv, ShellSettings, project_env, sandbox_status
from briotui.kernel.shell.session import ShellService
from briotui.kernel.sqlservice import SqlService
from briotui.kernel.state import StateTree
from briotui.kernel.supervisor import (
    Supervisor,
    TaskResult,
    follow_up_goal,
    pipeline_concurrency,
)
from briotui.kernel.tasktree import TaskStatus
from briotui.kernel.trust import agents_tree_digest
from briotui.kernel.vfs import Decision, Session, SessionManager
from briotui.kernel.vfs.commit import CommitResult, RollbackResult
from briotui.kernel.vfs.resolve import Choice, Resolved

AnswerFn = Callable[[str, str], Awaitable[str | None]]
"""Asks the user an agent's question: ``(agent, question) -> answer``, None for no answer."""

NO_ANSWER = "(no answer from the user) Decide yourself and say what you assumed."
"""What an agent hears when the user gives no answer (or none can)."""

if TYPE_CHECKING:  # the NATS client is imported only when a cluster is joined
    from briotui.kernel.cluster.dispatch import Dispatcher, RemoteInstance

log = logging.getLogger(__name__)

REPO_MAP_AGENTS = frozenset({"coder", "council"})
"""Agents whose context carries the repository map (``repo-map``)."""


def refuse_empty(goal: str) -> None:
    """Refuse a request with nothing in it (there is nothing to plan or code).

    Raises:
        EmptyRequest: ``goal`` is empty or only whitespace.
    """
    if not goal.strip():
        raise EmptyRequest(
            'The request is empty. Say what to change, e.g. briotui run "add a --verbose '
            'flag to the CLI".'
        )


class Kernel:
    """The agent kernel for one project directory.

    Args:
        project: The project directory.
        cache: The build cache (default: the user's cache dir, or $BRIOTUI_CACHE_DIR).
        loop: The event loop the kernel serves (default: the running loop).
        config: The configuration, already loaded (default: read on first use).
    """

    def __init__(
        self,
        project: Path | str,
        *,
        cache: BuildCache | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        config: Settings | None = None,
    ) -> None:
        self.paths = ProjectPaths.at(project)
        self._config = config
        self.loop = loop or asyncio.get_event_loop()
        self.events = EventBus(self.loop)
        self.settings = EngineSettings()
        self.engine = make_engine(self.settings)
        self.ticker = EpochTicker(self.engine)
        self.builder = Builder(self.engine, self.settings, self.ticker, cache)
        self.builder.code_check = self._check_agent_code
        self.builtin_agents: Path | None = None
        """Where the built-in agents are (None: the shipped ones; benchmarks use a copy)."""
        self._discovery: Discovery | None = None
        self._loaded: dict[str, LoadedAgent] = {}
        self._pools: dict[str, AgentPool] = {}
        self._running: dict[str, AgentInstance | RemoteInstance] = {}
        self.cluster: Dispatcher | None = None
        """Workers over NATS (:meth:`join_cluster`); None runs every agent here."""
        self._sessions: SessionManager | None = None
        self._capabilities: Capabilities | None = None
        self._audit: AuditLog | None = None
        self.approve_mode: ApproveMode = "never"
        self.prompt: PromptFn | None = None
        self.shell_settings, settings_problem = self._user_shell_settings()
        sandbox = contract.sandbox_view(
            sandbox_status(self.shell_settings).to_dict(), problem=settings_problem
        )
        self.state = StateTree(dict(contract.initial_tree(sandbox)), loop=self.loop)
        self._recorder: Recorder | None = None
        self.mesh = Mesh()
        self._shell: ShellService | None = None
        self._mcp: McpHub | None = None
        self._mcp_loaded = False
        self._sql: SqlService | None = None
        self._jobs: dict[str, asyncio.Task[TaskResult]] = {}
        self._task_sessions: dict[str, Session] = {}
        self._cancelled: set[str] = set()
        self._driving: set[str] = set()
        """Tasks whose driver is inside its run (a cancel may interrupt it there)."""
        self._commands = SessionCommands(self)
        self._answer: AnswerFn | None = None
        self.interrupted: list[str] = []
        """Tasks a previous run left unfinished (found by :meth:`restore`)."""
        self._journals: Journals | None = None
        self._identities: dict[str, tuple[LoadedAgent, tuple[str, str]]] = {}
        self.journaling = True
        """Whether agent runs are journaled (``briotui bench`` turns it off to compare)."""
        self.events.subscribe(self._on_event)

    # -- configuration -----------------------------------------------------------------

    def _user_shell_settings(self) -> tuple[ShellSettings, str]:
        """The user's ``[shell]`` sandbox settings; the safe defaults and why when broken."""
        try:
            return self.config.shell_settings(), ""
        except ConfigError as exc:
            return ShellSettings(), f"{exc.message} The defaults apply (ask before unsandboxed)."

    @property
    def config(self) -> Settings:
        """The user's and the project's settings, read once (the trust gate applied).

        Raises:
            ConfigFileError: a config file cannot be read or is not valid TOML.
        """
        if self._config is None:
            self._config = load_settings(self.paths)
        return self._config

    def reload_config(self, config: Settings | None = None) -> Settings:
        """Use ``config`` (or read the files again), e.g. after the user trusted the project.

        The shell policy, the project's test command and Python environment, the
        agents' grants and the agents found follow the new settings.
        """
        self._config = config or load_settings(self.paths)
        if self._shell is not None:  # keep its materialized work dirs; change the rules
            from briotui.kernel.supervisor import test_command_of

            self._shell.reconfigure(
                policy=CommandPolicy.from_config(self._config.shell()),
                user_command=test_command_of(self._config),
                env=self._project_env(),
            )
        self._discovery = None
        if self._capabilities is not None:
            self._capabilities.profiles = profiles_from_settings(self._config)
        return self._config

    # -- agents ----------------------------------------------------------------------

    def discovery(self, *, refresh: bool = False) -> Discovery:
        """The agents of this project: built-ins, and ``.brio/agents`` once trusted."""
        if self._discovery is None or refresh:
            trusted = self.config.user_agents_allowed()
            self._discovery = discover(
                self.paths if trusted else None,
                builtin=self.builtin_agents,
                trusted=self.config.agent_limits(),
            )
        return self._discovery

    def _check_agent_code(self, spec: AgentSpec) -> None:
        """Refuse to serve a project agent's code changed since the project was trusted.

        Raises:
            BuildError: it changed; the user reviews it again with ``briotui trust``.
        """
        if spec.origin != "user":
            return
        # What the user trusted is the tree hashed when the trust decision was taken (the
        # config's load), never what is on disk at a later discovery: a project agent's
        # code is served to a run (read at each run by the shared Python runtime) only
        # while it is still that.
        trusted = self.config.request.agents_tree if self.config.user_agents_allowed() else None
        if trusted is None or agents_tree_digest(self.paths.user_agents) != trusted:
            raise BuildError(
                f"The project's agents (.brio/agents/) changed since the project was trusted, "
                f"so {spec.name!r} does not run its new code. Run `briotui trust` to review "
                "the change, then run it again.",
                agent=spec.name,
                file=str(spec.directory),
                title="Project agent changed since trusted",
            )

    def agent(self, name: str) -> AgentSpec:
        """The spec of agent ``name`` (raises AgentNotFound or its manifest's BuildError)."""
        try:
            return self.discovery().get(name)
        except AgentNotFound:
            if name in self.config.request.agents and not self.config.applies:
                raise AgentNotFound(
                    f"{name!r} is a project agent (.brio/agents/{name}); project agents run "
                    "only once you trust the project. Run `briotui trust` to review what the "
                    "project asks for and trust it.",
                    title="Project agent not trusted",
                ) from None
            raise

    async def build_agents(
        self,
        names: Sequence[str] | None = None,
        *,
        force: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
    ) -> list[BuildResult]:
        """Build agents (all, or ``names``) off the event loop.

        Raises:
            AgentNotFound: a name in ``names`` is unknown.
        """
        found = self.discovery(refresh=True)
        specs = [self.agent(n) for n in names] if names else list(found.agents.values())
        results = await asyncio.to_thread(self.builder.build, specs, force=force, on_event=on_event)
        for result in results:
            if result.status == "built":
                self._loaded.pop(result.agent, None)
        return results

    async def load(
        self,
        name: str,
        *,
        build: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
    ) -> LoadedAgent:
        """The loaded (compiled, linked) agent ``name``, building it first if asked.

        An agent on its world's shared Python runtime reads its code at each run (hot
        reload); one edited so that it now needs a component of its own is loaded again.
        """
        spec = self.agent(name)
        # a project agent edited since trusted is neither built nor run (an own build or
        # one edited off the shared runtime would otherwise build the new code unasked)
        await asyncio.to_thread(self._check_agent_code, spec)
        if name in self._loaded:
            if not self.builder.left_runtime(self._loaded[name].spec):
                return self._loaded[name]
            self._loaded.pop(name, None)
            stale = self._pools.pop(name, None)
            if stale is not None:
                await stale.close()
        if build and not self.builder.is_built(spec):
            [result] = await asyncio.to_thread(  # a run waits for it: it goes first
                self.builder.build, [spec], on_event=on_event, urgent=True
            )
            if result.error is not None:
                raise result.error
        loaded = await asyncio.to_thread(self.builder.load, spec)
        self._loaded[name] = loaded
        return loaded

    async def pool(self, name: str, size: int = 2) -> AgentPool:
        """The warm pool of agent ``name`` (created and filled on first use)."""
        if name not in self._pools:
            loaded = await self.load(name)
            pool = AgentPool(loaded, size=size, loop=self.loop, events=self.events.publish)
            self._pools[name] = pool
            await pool.fill()
        return self._pools[name]

    async def join_cluster(self, config: ClusterConfig) -> Dispatcher:
        """Send agent runs to workers over NATS from now on (local when none answers).

        Raises:
            ClusterError: the NATS server is unreachable or refused the credentials.
        """
        if self.cluster is None:
            from briotui.kernel.cluster.dispatch import Dispatcher

            dispatcher = Dispatcher(
                config,
                project_namespace(self.paths.root),
                loop=self.loop,
                events=self.events.publish,
                builder=self.builder,
            )
            await dispatcher.start()
            self.cluster = dispatcher
        return self.cluster

    async def join_configured_cluster(
        self, *, nats: str | None = None, token_file: str | None = None
    ) -> Dispatcher | None:
        """Join the cluster the user's ``[cluster]`` config (or ``nats``) names; None
        (the embedded default, nothing changes) when there is none.

        Raises:
            ClusterError: NATS credentials in the project's config, the server is
                unreachable or refused the credentials.
        """
        settings = self.config
        config = cluster_config(
            settings.user,
            str(settings.user_file),
            settings.project,
            str(settings.project_file),
            nats=nats,
            token_file=token_file,
        )
        if config is None:
            return None
        return await self.join_cluster(config)

    async def _acquire(
        self, name: str, pool: AgentPool, task: AgentTask
    ) -> AgentInstance | RemoteInstance:
        """An instance for ``task``: on a worker if one takes it in time, else local."""
        if self.cluster is not None and self.cluster.wants(name):
            remote = await self.cluster.offer(self._loaded[name], task)
            if remote is not None:
                return remote
        return await pool.acquire()

    # -- sessions --------------------------------------------------------------------

    def sessions(self) -> SessionManager:
        """The project's sessions (opened on first use; recovers interrupted commits)."""
        if self._sessions is None:
            self._sessions = SessionManager.open(self.paths.root)
        return self._sessions

    def journals(self) -> Journals:
        """The project's run journals (every agent run's host calls; opened on first use)."""
        if self._journals is None:
            sessions = self.sessions()
            self._journals = Journals(
                sessions.store, sessions.blobs, code=self.builder.server.served
            )
        return self._journals

    def code_identity(self, name: str) -> tuple[str, str]:
        """What the loaded agent ``name`` runs on (``kind:digest`` of its component) and,
        for an agent with a component of its own, its code's digest ("" for an agent on
        the shared runtime: its journal names the code it read, and "" where it cannot be
        told). Worked out once per loaded component."""
        loaded = self._loaded.get(name)
        if loaded is None:
            return "", ""
        known = self._identities.get(name)
        if known is not None and known[0] is loaded:
            return known[1]
        try:
            artifact = self.builder.artifact(loaded.spec)
        except (BrioError, OSError):
            return "", ""
        identity = (
            f"{artifact.kind}:{artifact.key}",
            "" if artifact.kind == "runtime" else artifact.key,
        )
        self._identities[name] = (loaded, identity)
        return identity

    def _journal_start(
        self,
        journals: Journals,
        instance: AgentInstance | RemoteInstance,
        name: str,
        task: AgentTask,
        session_id: str,
        lost: RunHandle | None = None,
    ) -> RunHandle | None:
        """Begin the run's journal (a resumed step's, or one resuming from ``lost``, its
        attempt lost with its worker, reads its journal: off the loop)."""
        runtime, code = self.code_identity(name)
        try:
            return journals.start(
                instance.ctx,
                run_id=task.id,
                agent=name,
                task={"id": task.id, "goal": task.goal, "context": [list(c) for c in task.context]},
                session_id=session_id,
                runtime=runtime,
                code=code,
                lost=lost,
            )
        except (BrioError, OSError, sqlite3.Error) as exc:  # the run goes on unjournaled
            log.warning("no journal for run %s: %s", task.id, exc)
            return None

    def _journal_end(self, handle: RunHandle | None, status: str, outcome: dict[str, Any]) -> None:
        if handle is not None and self._journals is not None:
            self._journals.end(handle, status, outcome)

    def shell(self) -> ShellService:
        """Runs agents' allowed commands in sessions (the ``[shell]`` config applies).

        Raises:
            ConfigError: ``[shell]`` in ``.brio/config.toml`` is invalid.
        """
        if self._shell is None:
            from briotui.kernel.supervisor import test_command_of

            self._shell = ShellService(
                self.paths,
                shell=self.config.shell(),
                settings=self.shell_settings,
                user_command=test_command_of(self.config),
                env=self._project_env(),
            )
        return self._shell

    def _project_env(self) -> ProjectEnv:
        """The Python environment commands run with (the project's own virtualenv only
        once the user trusted it)."""
        return project_env(self.paths.root, trusted_venv=self.config.trusted_venv())

    def mcp(self) -> McpHub | None:
        """The project's MCP servers (none started until an agent asks), or None when
        ``[mcp]`` configures none (or the project is not trusted with its own).

        Raises:
            ConfigError: ``[mcp]`` is malformed.
        """
        if not self._mcp_loaded:
            settings = self.config.mcp()
            self._mcp_loaded = True
            if settings.servers:
                sandbox = False if self.shell_settings.sandbox == "off" else None
                self._mcp = McpHub(
                    settings,
                    self.paths.root,
                    sandbox=sandbox,
                    unsandboxed=self.shell_settings.unsandboxed,
                )
        return self._mcp

    def sql(self) -> SqlService:
        """Opens agent instances' private SQL tables in ``.brio/agents.db``."""
        if self._sql is None:
            self._sql = SqlService(self.paths)
        return self._sql

    @property
    def recorder(self) -> Recorder:
        """The task tree and the store's records of tasks, transcripts and reviews."""
        if self._recorder is None:
            self._recorder = Recorder(
                self.state, self.sessions().store, test_command=self._test_command_or_none
            )
        return self._recorder

    def _test_command_or_none(self) -> list[str] | None:
        """The project's test command; None when unset or not understood (a
        verification read from the store then says nothing)."""
        from briotui.kernel.supervisor import test_command

        try:
            return test_command(self)
        except ConfigError:
            return None

    def _on_event(self, event: Event) -> None:
        self.recorder.on_event(event)

    def session_of(self, task_id: str) -> Session | None:
        """The session a task (or, for a subtask, its nearest ancestor) works in."""
        while task_id:
            if task_id in self._task_sessions:
                return self._task_sessions[task_id]
            task_id = task_id.rpartition(".")[0]
        return None

    def new_session(self, *, label: str, task: str) -> Session:
        """A new session on the project's current state, published in the state tree."""
        session = self.sessions().create(label=label, task=task)
        self.state.set(
            ["sessions", session.id],
            contract.session_view(session.id, task=task, label=label, state=session.state),
            parents=True,
        )
        return session

    def record_review(self, session_id: str, review: dict[str, Any]) -> None:
        """Keep the Reviewer's verdict and findings for a session."""
        self.recorder.record_review(session_id, review)

    def record_conflicts(self, session_id: str, views: Sequence[contract.ConflictView]) -> None:
        """Keep (and publish) the conflicting regions a merge left in a session."""
        self.recorder.record_conflicts(session_id, views)

    def review_of(self, session_id: str) -> dict[str, Any] | None:
        """The latest review of a session, or None."""
        return self.recorder.review_of(session_id)

    def is_verified(self, session_id: str) -> bool:
        """Whether the project's test command passed in the session as it is now (the
        kernel saw it pass, no file changed and no conflict was resolved since, none is
        left); republished: ``verified`` is None when no test command is configured or
        it never ran there, and ``tests`` is None when its last run tested other content.
        """
        known = self.recorder.verification(session_id)
        if self.state.exists(["sessions", session_id]):
            self.state.set(["sessions", session_id, "verified"], known and known[0])
            if known is not None:
                self.state.set(["sessions", session_id, "tests"], known[1])
        return bool(known and known[0])

    def changed_since(self, session_id: str, when: float) -> bool:
        """Whether a session's files changed after ``when`` (e.g. a test run's time)."""
        rows = self.sessions().store.query(
            "SELECT updated FROM sessions WHERE id = ?", (session_id,)
        )
        return bool(rows) and float(rows[0]["updated"]) > when

    def note_authors(self, session_id: str, hunk_ids: Sequence[str], task_id: str) -> None:
        """Remember that ``task_id`` wrote these hunks (a fix round's, a revision's)."""
        self.recorder.note_authors(session_id, hunk_ids, task_id)

    def test_run(self, session_id: str) -> dict[str, Any] | None:
        """The latest run of the project's test command in a session, as stored: argv,
        exit code, duration, the output's tail and the names of the failing tests."""
        from briotui.kernel.supervisor import test_command

        command = test_command(self)
        run = self.recorder.last_run(session_id, command) if command is not None else None
        return run

    def transcript_all(self) -> list[dict[str, Any]]:
        """Every stored message of the project, oldest first."""
        return self.recorder.transcript("")

    def transcript(self, task_id: str) -> list[dict[str, Any]]:
        """The stored messages of a task and its subtasks, with provider and model."""
        return self.recorder.transcript(task_id)

    # -- session commands (each republishes the session) -------------------------------

    async def refresh_session(self, session_id: str) -> None:
        """Publish a session again in the state tree."""
        await self._commands.publish(session_id)

    async def decide(
        self,
        session_id: str,
        hunk_ids: Sequence[str] | None,
        decision: Decision,
        *,
        reason: str = "",
        path: str | None = None,
    ) -> list[str]:
        """Accept or reject hunks (all, or all of ``path``, when ``hunk_ids`` is None).

        A reject's ``reason`` is what :meth:`revise` hands back to the Coder.

        Raises:
            SessionNotFound / SessionStateError / HunkNotFound: as the session says.
        """
        return await self._commands.decide(session_id, hunk_ids, decision, reason=reason, path=path)

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
        """Apply a session's accepted hunks to the working tree (and git-commit them).

        Without ``force`` only what passed the project's tests is committed (see
        :meth:`verify_commit`); otherwise :class:`CommitUnverified` is raised. With
        ``expected_ids`` (a check's ``accepted``) the commit is refused with
        :class:`DecisionsChanged` unless exactly those hunks are accepted.
        """
        return await self._commands.commit(
            session_id,
            git=git,
            message=message,
            include_staged=include_staged,
            provenance=provenance,
            force=force,
            expected_ids=expected_ids,
        )

    async def verify_commit(self, session_id: str) -> CommitCheck:
        """Whether the accepted hunks of a session passed the project's tests (running
        them on exactly those hunks when only some are accepted); the check's
        ``accepted`` are the hunk ids it is about (pass them to :meth:`commit`)."""
        return await self._commands.verify_commit(session_id)

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
        """Resolve conflicting regions a merge left in ``path`` of a session: take ours
        (the session's side), theirs (the branch's), both, or the user's own ``text``;
        one region (numbered from 1) or every unresolved one of the file.

        The session gets the new content (its hunks change), the store records who
        resolved what and when, and the session is published again, not verified
        until the tests pass on it (:meth:`retest_session`).

        Raises:
            SessionNotFound / SessionStateError / ConflictNotFound / ConflictMoved.
        """
        return await self._commands.resolve(
            session_id, path, choice, region=region, text=text, by=by
        )

    async def retest_session(self, session_id: str) -> Retest:
        """Run the project's test command in a session and publish whether it is
        verified now (e.g. once its last conflict is resolved)."""
        return await self._commands.retest(session_id)

    async def rollback(self, session_id: str, *, force: bool = False) -> RollbackResult:
        """Discard an open session, or undo a committed one."""
        return await self._commands.rollback(session_id, force=force)

    async def discard_session(self, session_id: str) -> None:
        """Discard an open session; nothing of it is applied."""
        await self._commands.discard(session_id)

    async def prune_sessions(self) -> list[str]:
        """Discard the open sessions that only pile up (kept in history); returns their ids.

        Those are empty sessions, branch sessions, and the sessions of failed or
        cancelled tasks (see :meth:`SessionManager.prune_candidates`).
        """
        ended = await asyncio.to_thread(self.recorder.sessions_of_ended_tasks)
        ids = await asyncio.to_thread(self.sessions().prune_candidates, ended)
        for session_id in ids:
            await self._commands.discard(session_id)
        return list(ids)

    async def revise(
        self, session_id: str, instruction: str = "", *, provider: Provider | None = None
    ) -> str:
        """Run the Coder again in the same session with the rejected hunks as feedback.

        The Coder gets each rejected hunk with its reason (and ``instruction``, if
        given) in its ``feedback`` context; its new edits become new hunks of the same
        session. Returns the new task's id (see :meth:`wait`).

        Raises:
            SessionNotFound: no such session.
            SessionStateError: the session is closed, or nothing to revise.
        """
        session = await asyncio.to_thread(self.sessions().get, session_id)
        revision = await asyncio.to_thread(feedback_of, session, instruction)
        before = {h.id for h in (await asyncio.to_thread(session.diff)).hunks()}
        context: list[tuple[str, str]] = [("feedback", revision.feedback)]
        if revision.files and not any(" " in p for p in revision.files):
            context.append(("files", " ".join(revision.files)))
        task_id = "t-" + uuid.uuid4().hex[:8]
        self._task_sessions[task_id] = session
        self.recorder.task_started(
            task_id,
            agent="coder",
            goal=revision.goal,
            parent=None,
            session_id=session.id,
            title=f"Revise session {session.id}",
        )
        supervisor = Supervisor(self, provider, concurrency=1)

        async def job() -> TaskResult:
            result = await self._drive(
                task_id, revision.goal, "coder", session, supervisor, context=context
            )
            after = {h.id for h in (await asyncio.to_thread(session.diff)).hunks()}
            self.recorder.note_authors(session.id, sorted(after - before), task_id)
            if session.state == "open":
                await asyncio.to_thread(self.is_verified, session.id)  # tested before it
                await asyncio.to_thread(self.recorder.publish_session, session)
            return result

        self._jobs[task_id] = self.loop.create_task(job(), name=f"revise {task_id}")
        return task_id

    # -- tasks -----------------------------------------------------------------------

    async def submit(
        self,
        goal: str,
        *,
        agent: str | None = None,
        provider: Provider | None = None,
        concurrency: int | None = None,
        session_id: str | None = None,
        resume_from: str | None = None,
    ) -> str:
        """Start a task in the background; returns its id (see :meth:`wait`).

        With ``agent`` None the whole pipeline runs (Council, Foreman with Coders in
        branches, Reviewer, tests); otherwise that one agent. Either way the changes
        land in one session and nothing is applied: a new session, or with
        ``session_id`` (a follow-up request) that open session, continued: the work
        starts from its content (the Coders' branches fork from it and merge back into
        it), the earlier requests made in it are given with the new one, its new hunks
        join the earlier ones in the same review, and its verification starts over
        (the tests run again on the whole session).

        With ``resume_from`` (an interrupted task of the same request), each agent run
        of the new task replays the journal of the same step of that task first (no
        model request for what it already answered) and goes on live where it stopped
        (see :mod:`briotui.kernel.journal.book`).

        Raises:
            EmptyRequest: ``goal`` is empty or only whitespace.
            SessionNotFound: no session ``session_id``.
            SessionNotContinuable: that session is committed, discarded, a branch, or
                busy with another task.
        """
        refuse_empty(goal)
        previous: list[str] = []
        if session_id is not None:
            session = await asyncio.to_thread(self.continuable_session, session_id)
            previous = await asyncio.to_thread(self.requests_of, session)
        task_id = "t-" + uuid.uuid4().hex[:8]
        if resume_from is not None:
            self.journals().resume(task_id, resume_from)
        if provider is not None and not self.state.get(["provider", "name"]):
            self.state.set(["provider"], contract.provider_view(provider.name))
        if session_id is None:
            session = await asyncio.to_thread(
                self.new_session, label=agent or "pipeline", task=goal
            )
        else:
            await asyncio.to_thread(self.recorder.publish_session, session)
            with self.state.batch():  # verified again only once the tests pass again
                self.state.set(["sessions", session.id, "verified"], None)
                if self.state.exists(["sessions", session.id, "tests"]):
                    self.state.remove(["sessions", session.id, "tests"])
        self._task_sessions[task_id] = session
        self.recorder.task_started(
            task_id, agent=agent or "pipeline", goal=goal, parent=None, session_id=session.id
        )
        supervisor = Supervisor(
            self, provider, concurrency=concurrency or pipeline_concurrency(self)
        )
        self._jobs[task_id] = self.loop.create_task(
            self._traced(
                task_id,
                goal,
                agent,
                self._drive(
                    task_id,
                    goal,
                    agent,
                    session,
                    supervisor,
                    previous=previous,
                    discard_unused=session_id is None,
                ),
            ),
            name=f"task {task_id}",
        )
        return task_id

    def continuable_session(self, session_id: str) -> Session:
        """The open session ``session_id``, for a follow-up request to continue.

        Blocking (it reads the store).

        Raises:
            SessionNotFound: no such session.
            SessionNotContinuable: it is committed, discarded, a branch of another
                session, or a task of this kernel still works in it.
        """
        session = self.sessions().get(session_id)
        listed = "`briotui sessions list` shows the open ones"
        if session.state != "open":
            raise SessionNotContinuable(
                f"Session {session.id} is {session.state}; a follow-up request continues "
                f"an open session. Run the request without --session (a new session), or "
                f"name an open session ({listed})."
            )
        if session.parent_id is not None:
            raise SessionNotContinuable(
                f"Session {session.id} is a Coder's branch of session {session.parent_id}; "
                f"continue session {session.parent_id} instead."
            )
        busy = [
            tid
            for tid, job in self._jobs.items()
            if not job.done()
            and self._task_sessions.get(tid) is not None
            and self._task_sessions[tid].id == session.id
        ]
        if busy:
            raise SessionNotContinuable(
                f"Task {busy[0]} is still working in session {session.id}; wait for it to "
                "end (or cancel it), then continue the session."
            )
        return session

    def requests_of(self, session: Session) -> list[str]:
        """The requests made in a session so far, oldest first (its first request when
        no task recorded one). Blocking (it reads the store)."""
        return self.recorder.requests_of(session.id) or (
            [session.task.strip()] if session.task.strip() else []
        )

    async def _traced(
        self, task_id: str, goal: str, agent: str | None, job: Awaitable[TaskResult]
    ) -> TaskResult:
        """``job`` inside the task's span (when tracing is on)."""
        attributes = {
            "briotui.task.id": task_id,
            "briotui.task.goal": goal[:200],
            "briotui.task.agent": agent or "pipeline",
        }
        with telemetry.span("briotui.task", attributes) as span:
            result = await job
            telemetry.set_attributes(
                span,
                {"briotui.outcome": result.final_outcome, "briotui.session.id": result.session_id},
            )
            return result

    async def _drive(
        self,
        task_id: str,
        goal: str,
        agent: str | None,
        session: Session,
        sup: Supervisor,
        *,
        context: Sequence[tuple[str, str]] = (),
        previous: Sequence[str] = (),
        discard_unused: bool = False,
    ) -> TaskResult:
        self._driving.add(task_id)
        try:
            if agent is None:
                result = await sup.run_pipeline(task_id, goal, session, previous=previous)
            else:
                if previous:
                    goal = follow_up_goal(goal, previous)
                    context = (*context, ("previous-requests", "\n".join(previous)))
                outcome = await self.run_agent(  # the run is the task: one row, not two
                    agent,
                    goal,
                    bindings=sup.bindings(session),
                    context=context,
                    task_id=task_id,
                )
                result = TaskResult(task_id, "done", outcome.summary, session.id)
        except RunFailed as failure:
            status: TaskStatus = "cancelled" if failure.error.kind == "cancelled" else "failed"
            result = TaskResult(
                task_id, status, failure.error.message, session.id, error=failure.error.to_dict()
            )
        except BrioError as error:
            result = TaskResult(task_id, "failed", error.message, session.id, error=error.to_dict())
        except asyncio.CancelledError:  # Kernel.cancel: the run ends here, the task goes on
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            result = TaskResult(task_id, "cancelled", "cancelled", session.id)
        finally:
            self._driving.discard(task_id)  # from here on a cancel does not interrupt
        await sup.settle()
        if result.error is not None and self.state.exists(["tasks", task_id]):
            self.state.set(
                ["tasks", task_id, "outcome", "error"],
                contract.error_view(result.error),
                parents=True,
            )
        if (
            discard_unused and session.state == "open" and await asyncio.to_thread(_unused, session)
        ):  # a run that changed nothing leaves nothing to review: kept in history
            await self._commands.discard(session.id)
        if session.state == "open":
            await asyncio.to_thread(self.recorder.publish_session, session)
        self.recorder.task_finished(
            task_id,
            result.status,
            result.summary,
            None,
            session_id=session.id,
            kind=result.final_outcome,
        )
        return result

    def restore(self) -> list[str]:
        """Show the stored tasks and sessions again; returns the interrupted tasks' ids.

        Interrupted tasks (running when briotui went away) are marked cancelled, kept
        in :attr:`interrupted` and offered for :meth:`resume` or :meth:`discard_task`.
        """
        self.interrupted = self.recorder.restore()
        for task_id in self.interrupted:
            if self.state.exists(["tasks", task_id]):
                self.state.set(
                    ["tasks", task_id, "outcome"],
                    {"summary": "Interrupted when briotui quit: resume or discard it."},
                )
        return list(self.interrupted)

    async def restore_sessions(self) -> None:
        """Publish the restored open sessions whole again, off the loop: their hunks
        with who wrote them and their verification, as before the restart (call it
        after :meth:`restore`). A session that cannot be read now stays as listed."""
        views = contract.sessions(self.state.get(""))
        for session_id, view in views.items():
            if view["state"] == "open" and not view["files"]:
                with contextlib.suppress(BrioError, OSError):
                    await self._commands.publish(session_id)

    def stored_tasks(self) -> list[dict[str, Any]]:
        """The project's stored top-level tasks, oldest first.

        Each has ``interrupted``: it was running when briotui went away (or still runs
        in another briotui of this project).
        """
        return self.recorder.stored_tasks()

    def task_of_session(self, session_id: str) -> str | None:
        """The top-level task that made a session, or None."""
        return self.recorder.task_of_session(session_id)

    async def discard_task(self, task_id: str) -> None:
        """Drop a task's session (rolled back, off the loop: nothing of it reaches the
        working tree).

        Raises:
            TaskNotFound: no such stored task.
        """
        stored = await asyncio.to_thread(self.recorder.goal_of, task_id)
        if stored is None:
            raise TaskNotFound(f"No stored task {task_id!r}; `briotui tasks list` lists them.")
        session_id = stored[2]
        if session_id:
            session = await asyncio.to_thread(self.sessions().get, session_id)
            if session.state == "open":
                await asyncio.to_thread(session.rollback)
            if self.state.exists(["sessions", session_id]):
                self.state.remove(["sessions", session_id])
        if task_id in self.interrupted:
            self.interrupted.remove(task_id)
        status, result = await asyncio.to_thread(self._stored_status, task_id)
        if status in ("running", "pending", "waiting") or result == INTERRUPTED:
            # no longer offered as interrupted
            self.recorder.task_finished(
                task_id, "cancelled", "Discarded.", None, session_id=session_id or ""
            )
        if self.state.exists(["tasks", task_id]):
            self.state.set(["tasks", task_id, "outcome"], {"summary": "Discarded."})

    async def resume(
        self, task_id: str, *, provider: Provider | None = None, journal: bool = True
    ) -> str:
        """Run an interrupted (or finished) task's request again, as a new task.

        When the task has run journals (and ``journal``), the new task replays them: the
        steps it had done are done again from what was recorded (no model request), in
        a fresh session, and the step it was in goes on live from where it stopped.

        Raises:
            TaskNotFound: no such stored task.
        """
        stored = self.recorder.goal_of(task_id)
        if stored is None:
            raise TaskNotFound(f"No stored task {task_id!r}; `briotui` lists the tasks it knows.")
        goal, agent, _ = stored
        if task_id in self.interrupted:
            self.interrupted.remove(task_id)
        journaled = journal and await asyncio.to_thread(self.has_journal, task_id)
        new_id = await self.submit(
            goal,
            agent=None if agent == "pipeline" else agent,
            provider=provider,
            resume_from=task_id if journaled else None,
        )
        status, result = await asyncio.to_thread(self._stored_status, task_id)
        if status in ("running", "pending", "waiting") or result == INTERRUPTED:
            # no longer offered as interrupted: it goes on as the new task
            self.recorder.task_finished(
                task_id,
                "cancelled",
                f"Interrupted; resumed as {new_id}.",
                None,
                session_id=stored[2] or "",
            )
        return new_id

    def _stored_status(self, task_id: str) -> tuple[str, str]:
        rows = self.sessions().store.query(
            "SELECT status, result FROM tasks WHERE id = ?", (task_id,)
        )
        return (str(rows[0]["status"]), str(rows[0]["result"])) if rows else ("", "")

    def has_journal(self, task_id: str) -> bool:
        """Whether task ``task_id`` has run journals (it can be replayed and resumed)."""
        rows = self.sessions().store.query(
            "SELECT 1 FROM journal_runs WHERE top_id = ? LIMIT 1", (task_id,)
        )
        return bool(rows)

    def replayed_calls(self, task_id: str) -> int | None:
        """How many host calls a resumed task answered from its journals (None: it was
        not resumed from journals)."""
        if self._journals is None:
            return None
        return self._journals.replayed_calls.get(task_id)

    async def replay(self, task_id: str, *, agent_code: AgentCodeSource = "current") -> TaskReplay:
        """Replay every recorded agent run of ``task_id`` against its journal (no model
        request, nothing of the user's touched); what differs, if anything. ``task_id``
        may also name one agent run of a task (``t-1a2b.foreman-9f0e.1``): that run alone
        is replayed (its files are not compared).

        Raises:
            TaskNotFound: no such stored task.
            JournalNotFound: the task has no run journal.
        """
        if self._journals is not None:  # this process's runs: every call written first
            await asyncio.to_thread(self._journals.writer.flush)
        stored = await asyncio.to_thread(self.recorder.goal_of, task_id)
        store = self.sessions().store
        runs = await asyncio.to_thread(runs_of, store, task_id)
        if not runs and (one := await asyncio.to_thread(run_by_id, store, task_id)):
            return await replay_task(self, task_id, [one], session_id=None, agent_code=agent_code)
        if not runs:
            if stored is None:
                raise TaskNotFound(f"No stored task {task_id!r}; `briotui tasks list` lists them.")
            raise JournalNotFound(
                f"Task {task_id!r} has no run journal (it ran before briotui recorded "
                "journals, or none of its agents started), so it cannot be replayed.",
            )
        return await replay_task(
            self,
            task_id,
            runs,
            session_id=stored[2] if stored is not None else None,
            agent_code=agent_code,
        )

    async def wait(self, task_id: str) -> TaskResult:
        """The result of a submitted task, once it ends.

        Cancelling a waiter (e.g. a front end's worker as it shuts down) does not cancel
        the task: only :meth:`cancel` does, so a task always records how it ended.
        """
        return await asyncio.shield(self._jobs[task_id])

    async def watch_project(self, on_change: Callable[[int], None] | None = None) -> None:
        """Keep a live base while the kernel runs, so new sessions are O(changes).

        Args:
            on_change: Called on the kernel's loop with how many paths changed in the
                working tree that no session has taken in yet, each time that number
                changes (the UI's "working tree changed" notice). The kernel's one
                watcher (:meth:`SessionManager.on_change`) drives it; nobody polls.
        """
        sessions = self.sessions()
        if on_change is not None:
            loop = self.loop
            callback = on_change

            def deliver(pending: int) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                    loop.call_soon_threadsafe(callback, pending)

            sessions.on_change(deliver)
        await asyncio.to_thread(sessions.start_watching)

    # -- questions to the user -----------------------------------------------------------

    def set_answerer(self, answer: AnswerFn | None) -> None:
        """Who answers the agents' clarifying questions (the Council's ``ask-user``).

        Args:
            answer: Asks the user; returns the answer, or None for no answer. None (a
                headless run): agents get no answer and decide themselves.
        """
        self._answer = answer

    async def ask_user(self, agent: str, question: str) -> str:
        """Ask the user an agent's question; the answer, or :data:`NO_ANSWER`."""
        if self._answer is None:
            return NO_ANSWER
        answer = await self._answer(agent, question)
        return answer.strip() if answer and answer.strip() else NO_ANSWER

    # -- capabilities ------------------------------------------------------------------

    def set_approvals(self, mode: ApproveMode, prompt: PromptFn | None = None) -> None:
        """What a call outside an agent's grants gets: denied, asked, or allowed once.

        Args:
            mode: ``never`` (the default), ``ask`` or ``all``.
            prompt: Asks the user (needed for ``ask``; without it ``ask`` denies).
        """
        self.approve_mode = mode
        self.prompt = prompt
        if self._capabilities is not None:
            self._capabilities.mode = mode
            self._capabilities.prompt = prompt

    def capabilities(self) -> Capabilities:
        """The project's grants, checks and audit log (opened on first use).

        Raises:
            ConfigError: ``.brio/config.toml`` has invalid ``[agents]`` grants.
        """
        if self._capabilities is None:
            self._audit = AuditLog(self.paths.database)
            self._capabilities = Capabilities(
                self.sessions().store,
                self._audit,
                profiles_from_settings(self.config),
                mode=self.approve_mode,
                prompt=self.prompt,
                loop=self.loop,
            )
        return self._capabilities

    def grants(self) -> list[dict[str, Any]]:
        """The project's stored grants that are not revoked, oldest first."""
        rows = self.sessions().store.query(
            "SELECT id, agent, capability, pattern, lifetime, scope_id, source, parent_id,"
            " created, used FROM grants WHERE revoked IS NULL ORDER BY created"
        )
        return [dict(r) for r in rows]

    async def revoke_grant(self, grant_id: str) -> int:
        """Revoke a stored grant and every grant delegated from it; returns how many.

        Raises:
            GrantNotFound: no active grant has that id.
        """

        def work() -> int:
            known = self.sessions().store.query(
                "SELECT id FROM grants WHERE id = ? AND revoked IS NULL", (grant_id,)
            )
            if not known:
                raise GrantNotFound(
                    f"No active grant {grant_id!r}; `briotui grants list` shows them."
                )
            return self.capabilities().revoke(grant_id)

        return await asyncio.to_thread(work)

    # -- runs ------------------------------------------------------------------------

    async def _with_repo_map(
        self,
        name: str,
        goal: str,
        context: Sequence[tuple[str, str]],
        bindings: RunBindings,
    ) -> Sequence[tuple[str, str]]:
        """``context`` plus the repository map, for the agents that read it.

        The map is built off the event loop (parsing is cached by content hash) and
        shows only the files the agent's grants let it read (checked without asking:
        a file it would have to ask for is left out); a failure to build it leaves the
        context as it was, logged.
        """
        if name not in REPO_MAP_AGENTS or bindings.workspace is None:
            return context
        if any(key == "repo-map" for key, _ in context):
            return context
        scope = next((v.split() for k, v in context if k == "files"), [])
        caps = bindings.capabilities

        def readable(path: str) -> bool:  # the agent's own grants, never a prompt
            return caps is None or caps.allows(
                CapabilityRequest(
                    agent=name,
                    capability="read",
                    target=path,
                    task_id=bindings.task_id,
                    session_id=bindings.session_id,
                    ceiling=bindings.ceiling,
                )
            )

        try:
            text = await asyncio.to_thread(
                build_repo_map, bindings.workspace, goal, scope=scope, readable=readable
            )
        except (OSError, BrioError) as exc:
            log.warning("no repository map for %s: %s", name, exc)
            return context
        return (*context, ("repo-map", text)) if text else context

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
        build: bool = True,
        on_build: Callable[[BuildEvent], None] | None = None,
    ) -> RunOutcome:
        """Run agent ``name`` on ``goal`` in a fresh instance.

        Raises:
            RunFailed: the run failed (``.error`` is the typed error, ``.usage`` the cost).
            BuildError / AgentNotFound: the agent cannot be built or does not exist.
        """
        if task_id is not None and self.is_cancelled(task_id):
            raise RunFailed(
                AgentCancelled(f"{name!r} did not start: its task was cancelled.", agent=name),
                RunUsage(),
            )
        await self.load(name, build=build, on_event=on_build)
        pool = await self.pool(name, size=1)
        given = bindings or RunBindings()
        tid = task_id or given.task_id or uuid.uuid4().hex[:12]
        with telemetry.span(
            f"invoke_agent {name}",
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": name,
                "briotui.task.id": tid,
                "briotui.world": self._loaded[name].spec.world,
                "briotui.security": self._loaded[name].spec.security,
            },
        ) as span:
            given = replace(given, trace=telemetry.current_context())
            who = {"gen_ai.agent.name": name}
            telemetry.count("briotui.agents.running", 1, who)
            try:
                outcome = await self._run_agent(
                    name, goal, pool, given, tid, context, parent_task, title
                )
            except RunFailed as failure:
                telemetry.set_attributes(span, _usage_attributes(failure.usage, failure.error.kind))
                telemetry.count("briotui.agent.fuel", failure.usage.fuel, who)
                raise
            finally:
                telemetry.count("briotui.agents.running", -1, who)
            telemetry.set_attributes(span, _usage_attributes(outcome.usage, "done"))
            telemetry.count("briotui.agent.fuel", outcome.usage.fuel, who)
            return outcome

    async def _run_agent(
        self,
        name: str,
        goal: str,
        pool: AgentPool,
        given: RunBindings,
        tid: str,
        context: Sequence[tuple[str, str]],
        parent_task: str | None,
        title: str | None,
    ) -> RunOutcome:
        run_bindings = replace(  # the caller's bindings stay untouched
            given,
            task_id=tid,
            session_id=given.session_id or str(getattr(given.workspace, "id", "")),
            capabilities=given.capabilities or self.capabilities(),
            shell=given.shell or (self.shell() if isinstance(given.workspace, Session) else None),
            sql=given.sql or self.sql(),
            mesh=given.mesh or self.mesh,
            mcp=given.mcp or self.mcp(),
        )
        context = await self._with_repo_map(name, goal, context, run_bindings)
        if self.is_cancelled(tid):  # cancelled while it was loaded or mapped
            raise RunFailed(
                AgentCancelled(f"{name!r} did not start: its task was cancelled.", agent=name),
                RunUsage(),
            )
        # Everything that can fail before the run is done: from here on the instance
        # handed out either runs or is discarded (never left with its thread and memory).
        # a submitted task run as one agent (`@agent ...`): its driver records how it
        # starts and ends (after the session is published); the run adds its usage
        final = tid not in self._driving
        task = AgentTask(tid, goal, tuple(context))
        instance = await self._acquire(name, pool, task)
        try:
            if isinstance(run_bindings.workspace, Session):
                self._task_sessions.setdefault(tid, run_bindings.workspace)
            if final:
                self.recorder.task_started(
                    tid,
                    agent=name,
                    goal=goal,
                    parent=parent_task,
                    session_id=run_bindings.session_id or None,
                    title=title,
                )
        except BaseException:
            instance.discard()
            raise
        # What the session held before the run: a run lost with its worker is retried
        # once from exactly this (its half-done writes are dropped first), and resumes
        # from the lost attempt's journal (its calls replayed, its writes applied again).
        workspace = run_bindings.workspace
        before = (  # (only with workers: the embedded path does nothing more per run)
            workspace.overlay()
            if self.cluster is not None and isinstance(workspace, Session)
            else None
        )
        retried = False
        lost: RunHandle | None = None  # the journal of the attempt lost with its worker
        journals = self.journals() if self.journaling else None  # made on the loop: one
        while True:
            self._running[tid] = instance
            worker = getattr(instance, "worker", None)
            if isinstance(worker, str) and self.state.exists(["tasks", tid]):
                self.state.set(["tasks", tid, "worker"], worker)
            journal: RunHandle | None = None
            starting: asyncio.Future[RunHandle | None] | None = None
            if journals is not None and (lost is not None or journals.resuming(tid)):
                starting = asyncio.ensure_future(
                    asyncio.to_thread(
                        self._journal_start,
                        journals,
                        instance,
                        name,
                        task,
                        run_bindings.session_id,
                        lost,
                    )
                )
            elif journals is not None:  # nothing to read: no thread hop
                journal = self._journal_start(
                    journals, instance, name, task, run_bindings.session_id
                )
            try:
                if starting is not None:
                    journal = await asyncio.shield(starting)
            except BaseException:  # cancelled before it started
                if starting is not None:  # its journal, begun or not, is closed
                    with contextlib.suppress(BaseException):
                        self._journal_end(await starting, "cancelled", {})
                self._running.pop(tid, None)
                instance.discard()
                self.recorder.task_finished(
                    tid,
                    "cancelled",
                    f"{name!r} did not start: its task was cancelled.",
                    None,
                    agent=name,
                    session_id=run_bindings.session_id,
                    final=final,
                )
                raise
            # shielded: a cancelled driver stops the agent and waits for it to wind down
            # (bounded), so nothing of it still writes to the session once the driver goes on
            run = asyncio.ensure_future(instance.run(task, run_bindings))
            try:
                outcome = await asyncio.shield(run)
            except RunFailed as failure:
                status: TaskStatus = "cancelled" if failure.error.kind == "cancelled" else "failed"
                self._journal_end(journal, status, {"error": failure.error.to_dict()})
                if (
                    failure.error.kind == "worker-lost"
                    and not retried
                    and not self.is_cancelled(tid)
                ):
                    retried = True
                    lost = journal
                    log.warning("task %s: %s; retrying once", tid, failure.error.message)
                    for sub, running in list(self._running.items()):
                        if sub.startswith(tid + "."):  # what the lost run started stops
                            running.cancel()
                    if isinstance(workspace, Session) and before is not None:
                        await asyncio.to_thread(workspace.restore_overlay, before)
                    self._running.pop(tid, None)
                    instance = await self._acquire(name, pool, task)
                    continue
                self.recorder.task_finished(
                    tid,
                    status,
                    failure.error.message,
                    failure.usage,
                    agent=name,
                    session_id=run_bindings.session_id,
                    final=final,
                )
                raise
            except asyncio.CancelledError:  # its driver was cancelled (Kernel.cancel)
                instance.cancel()
                with contextlib.suppress(RunFailed, asyncio.CancelledError):
                    await asyncio.shield(run)  # a stopped instance ends within its grace
                self._journal_end(journal, "cancelled", {})
                self.recorder.task_finished(
                    tid,
                    "cancelled",
                    f"{name!r} was stopped: its task was cancelled.",
                    None,
                    agent=name,
                    session_id=run_bindings.session_id,
                    final=final,
                )
                raise
            finally:
                self._running.pop(tid, None)
            break
        self._journal_end(journal, "done", {"summary": outcome.summary, "data": outcome.data})
        self.recorder.task_finished(
            tid,
            "done",
            outcome.summary,
            outcome.usage,
            agent=name,
            session_id=run_bindings.session_id,
            final=final,
        )
        return outcome

    def cancel(self, task_id: str) -> bool:
        """Cancel ``task_id`` and its whole subtree; returns whether anything was running.

        Running agents are stopped by epoch interruption (their in-flight model requests
        and commands are cancelled with them), no agent of the subtree starts any more,
        and a submitted task's driver is cancelled too, wherever it waits (once: the
        run then ends as ``cancelled``, its session kept if it has changes).
        """
        self._cancelled.add(task_id)
        hit = False
        for tid, instance in list(self._running.items()):
            if tid == task_id or tid.startswith(task_id + "."):
                instance.cancel()
                hit = True
        job = self._jobs.get(task_id)
        if job is not None and task_id in self._driving:
            self._driving.discard(task_id)
            job.cancel()
        return hit or (job is not None and not job.done())

    def is_cancelled(self, task_id: str) -> bool:
        """Whether ``task_id`` or one of its ancestors was cancelled."""
        while task_id:
            if task_id in self._cancelled:
                return True
            task_id = task_id.rpartition(".")[0]
        return False

    async def close(self) -> None:
        """Cancel runs, close pools and stop the epoch ticker."""
        for instance in list(self._running.values()):
            instance.cancel()
        stopped = [task_id for task_id, job in self._jobs.items() if not job.done()]
        for task_id in stopped:
            self.cancel(task_id)
        if self._jobs:  # let cancelled tasks record how they ended before the store closes
            await asyncio.wait(list(self._jobs.values()), timeout=10)
        if stopped and self._sessions is not None:
            # stopped by the quit, not by the user: offered for resuming on the next start
            self._sessions.store.write(
                "UPDATE tasks SET result = ? WHERE status = 'cancelled' AND id IN"
                f" ({', '.join('?' for _ in stopped)})",
                (INTERRUPTED, *stopped),
            )
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        if self.cluster is not None:
            await self.cluster.close()
            self.cluster = None
        self.ticker.stop()
        if self._mcp is not None:
            await asyncio.to_thread(self._mcp.close)
            self._mcp = None
        if self._audit is not None:
            self._audit.close()
            self._audit = None
            self._capabilities = None
        if self._journals is not None:
            await asyncio.to_thread(self._journals.close)
            self._journals = None
        if self._sessions is not None:
            self._sessions.close()
            self._sessions = None


__all__ = ["AgentNotFound", "Kernel"]


def _usage_attributes(usage: RunUsage, outcome: str) -> dict[str, Any]:
    """An agent run's span attributes once it ended."""
    return {
        "briotui.outcome": outcome,
        "briotui.fuel": usage.fuel,
        "briotui.peak_memory_bytes": usage.peak_memory_bytes,
        "briotui.host_calls": usage.host_calls,
        "gen_ai.usage.input_tokens": usage.tokens.input_tokens,
        "gen_ai.usage.output_tokens": usage.tokens.output_tokens,
    }


def _unused(session: Session) -> bool:
    """Whether a task's new session is left with nothing to review.

    Only a session without changes: a run that failed or was cancelled after its
    Coders finished keeps their work for review (its outcome says how it ended).
    """
    return not session.diff().files
