"""The kernel's command API: one object per project that the TUI, the CLI and tests drive.

Everything a front end does goes through :class:`Kernel`; everything it shows comes
from the kernel's events (:attr:`Kernel.events`). The kernel never imports Textual.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from briotui.kernel.agents import AgentSpec, Discovery, discover
from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.caps.checker import Capabilities, PromptFn
from briotui.kernel.caps.model import ApproveMode
from briotui.kernel.caps.profiles import load_profiles
from briotui.kernel.errors import AgentNotFound
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.runtime.build import Builder, BuildEvent, BuildResult
from briotui.kernel.runtime.cache import BuildCache
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.engine import EngineSettings, EpochTicker, make_engine
from briotui.kernel.runtime.events import EventBus
from briotui.kernel.runtime.instance import AgentInstance, AgentTask, LoadedAgent, RunOutcome
from briotui.kernel.runtime.pool import AgentPool
from briotui.kernel.vfs import SessionManager


class Kernel:
    """The agent kernel for one project directory.

    Args:
        project: The project directory.
        cache: The build cache (default: the user's cache dir, or $BRIOTUI_CACHE_DIR).
        loop: The event loop the kernel serves (default: the running loop).
    """

    def __init__(
        self,
        project: Path | str,
        *,
        cache: BuildCache | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.paths = ProjectPaths.at(project)
        self.loop = loop or asyncio.get_event_loop()
        self.events = EventBus(self.loop)
        self.settings = EngineSettings()
        self.engine = make_engine(self.settings)
        self.ticker = EpochTicker(self.engine)
        self.builder = Builder(self.engine, self.settings, self.ticker, cache)
        self._discovery: Discovery | None = None
        self._loaded: dict[str, LoadedAgent] = {}
        self._pools: dict[str, AgentPool] = {}
        self._running: dict[str, AgentInstance] = {}
        self._sessions: SessionManager | None = None
        self._capabilities: Capabilities | None = None
        self._audit: AuditLog | None = None
        self.approve_mode: ApproveMode = "never"
        self.prompt: PromptFn | None = None

    # -- agents ----------------------------------------------------------------------

    def discovery(self, *, refresh: bool = False) -> Discovery:
        """The agents of this project (built-ins and ``.brio/agents``)."""
        if self._discovery is None or refresh:
            self._discovery = discover(self.paths)
        return self._discovery

    def agent(self, name: str) -> AgentSpec:
        """The spec of agent ``name`` (raises AgentNotFound or its manifest's BuildError)."""
        return self.discovery().get(name)

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
        specs = [found.get(n) for n in names] if names else list(found.agents.values())
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
        """The loaded (compiled, linked) agent ``name``, building it first if asked."""
        if name in self._loaded:
            return self._loaded[name]
        spec = self.agent(name)
        if build and not self.builder.is_built(spec):
            [result] = await asyncio.to_thread(self.builder.build, [spec], on_event=on_event)
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

    # -- sessions --------------------------------------------------------------------

    def sessions(self) -> SessionManager:
        """The project's sessions (opened on first use; recovers interrupted commits)."""
        if self._sessions is None:
            self._sessions = SessionManager.open(self.paths.root)
        return self._sessions

    async def watch_project(self) -> None:
        """Keep a live base while the kernel runs, so new sessions are O(changes)."""
        await asyncio.to_thread(self.sessions().start_watching)

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
                load_profiles(self.paths.config_file),
                mode=self.approve_mode,
                prompt=self.prompt,
                loop=self.loop,
            )
        return self._capabilities

    # -- runs ------------------------------------------------------------------------

    async def run_agent(
        self,
        name: str,
        goal: str,
        *,
        bindings: RunBindings | None = None,
        context: Sequence[tuple[str, str]] = (),
        task_id: str | None = None,
        build: bool = True,
        on_build: Callable[[BuildEvent], None] | None = None,
    ) -> RunOutcome:
        """Run agent ``name`` on ``goal`` in a fresh instance.

        Raises:
            RunFailed: the run failed (``.error`` is the typed error, ``.usage`` the cost).
            BuildError / AgentNotFound: the agent cannot be built or does not exist.
        """
        await self.load(name, build=build, on_event=on_build)
        pool = await self.pool(name, size=1)
        instance = await pool.acquire()
        given = bindings or RunBindings()
        tid = task_id or given.task_id or uuid.uuid4().hex[:12]
        run_bindings = replace(  # the caller's bindings stay untouched
            given,
            task_id=tid,
            session_id=given.session_id or str(getattr(given.workspace, "id", "")),
            capabilities=given.capabilities or self.capabilities(),
        )
        self._running[tid] = instance
        try:
            return await instance.run(AgentTask(tid, goal, tuple(context)), run_bindings)
        finally:
            self._running.pop(tid, None)

    def cancel(self, task_id: str) -> bool:
        """Cancel the run of ``task_id``; returns whether one was running."""
        instance = self._running.get(task_id)
        if instance is None:
            return False
        instance.cancel()
        return True

    async def close(self) -> None:
        """Cancel runs, close pools and stop the epoch ticker."""
        for instance in list(self._running.values()):
            instance.cancel()
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        self.ticker.stop()
        if self._audit is not None:
            self._audit.close()
            self._audit = None
            self._capabilities = None
        if self._sessions is not None:
            self._sessions.close()
            self._sessions = None


__all__ = ["AgentNotFound", "Kernel"]
