"""The kernel's services behind the shell and sql imports: one object per kernel.

:class:`ShellService` runs an allowed command over a session (materialized into a
work directory under ``.brio/sessions/work``, changes copied back) with the project's
command policy, in bubblewrap where it works; without an OS sandbox it runs a command
only as the user's own ``[shell] unsandboxed`` setting says (``ask``: the caller must
have asked the user first, see :meth:`ShellService.needs_confirmation`);
:class:`SqlService` opens each agent instance's private SQL connection to
``.brio/agents.db``, fenced to its own table prefix. The capability checks happen in
the host functions before either is called.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from briotui.kernel.errors import CommandRefused, CommandTimeout
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.shelltool import (
    INSTALL_HINT,
    CommandPolicy,
    SandboxStatus,
    SessionRun,
    ShellSettings,
    load_user_shell_settings,
    run_in_session,
    sandbox_status,
)
from briotui.kernel.sqlpolicy import AgentSql
from briotui.kernel.vfs import Session
from briotui.kernel.vfs.materialize import Materialized


class ShellService:
    """Runs agents' allowed commands in their sessions.

    Args:
        paths: The project's paths.
        shell: The ``[shell]`` table (see :meth:`briotui.kernel.settings.Settings.shell`,
            which applies the trust gate), or None for the defaults.
        max_output_bytes: Upper bound on a command's captured output.
        settings: The user's sandbox settings (see
            :meth:`briotui.kernel.settings.Settings.shell_settings`; never the project's);
            read from the user config if None.
    """

    def __init__(
        self,
        paths: ProjectPaths,
        *,
        shell: Mapping[str, object] | None = None,
        max_output_bytes: int = 256 * 1024,
        settings: ShellSettings | None = None,
    ) -> None:
        self.paths = paths
        self.policy = CommandPolicy.from_config(shell)
        self.max_output_bytes = max_output_bytes
        self.settings = settings if settings is not None else load_user_shell_settings()
        self.status: SandboxStatus = sandbox_status(self.settings)
        self._dirs: dict[str, Materialized] = {}
        self._lock = threading.Lock()

    def workdir(self, session: Session) -> Path:
        """Where ``session`` is materialized for commands."""
        return self.paths.sessions / "work" / session.id

    def needs_confirmation(self) -> bool:
        """Whether each command must be confirmed by the user first (unsandboxed, "ask")."""
        return not self.status.sandboxed and self.settings.unsandboxed == "ask"

    def _readonly(self) -> list[Path]:
        venv = self.paths.root / ".venv"
        return [venv] if (venv / "pyvenv.cfg").is_file() else []

    def run(
        self,
        session: Session,
        argv: Sequence[str],
        *,
        cwd: str,
        timeout_s: float,
        confirmed: bool = False,
        should_stop: Callable[[], bool] | None = None,
    ) -> SessionRun:
        """Run ``argv`` over ``session``; its file changes come back into the session.

        Args:
            session: The session to run over.
            argv: The command, already checked against the policy and capabilities.
            cwd: Working directory relative to the session root.
            timeout_s: Wall-clock limit.
            confirmed: The user said yes to running it without a sandbox (needed when
                :meth:`needs_confirmation`).
            should_stop: Whether the agent's run was stopped; the command is then
                killed and its changes dropped (CommandStopped).

        Raises:
            CommandRefused: No OS sandbox here and the user's setting refuses it
                (``deny``, or ``ask`` without ``confirmed``); says how to fix it.
            CommandTimeout: it ran out of time (its work directory is dropped).
            CommandError: it could not be started.
        """
        if not self.status.sandboxed:
            mode = self.settings.unsandboxed
            if mode == "deny" or (mode == "ask" and not confirmed):
                why = (
                    'your setting refuses them ([shell] unsandboxed = "deny")'
                    if mode == "deny"
                    else "nobody confirmed this one"
                )
                raise CommandRefused(
                    f"No OS sandbox is available here ({self.status.detail}) and {why}. "
                    + INSTALL_HINT,
                    argv=list(argv),
                )
        with self._lock:
            materialized = self._dirs.get(session.id)
            if materialized is None:
                materialized = Materialized(session, self.workdir(session))
                self._dirs[session.id] = materialized
        try:
            return run_in_session(
                session,
                list(argv),
                workdir=self.workdir(session),
                cwd=cwd,
                timeout_s=timeout_s,
                max_output_bytes=self.max_output_bytes,
                sandbox=self.status.sandboxed,
                materialized=materialized,  # kept: the next run syncs only what changed
                readonly=self._readonly(),
                should_stop=should_stop,
            )
        except CommandTimeout:
            with self._lock:
                self._dirs.pop(session.id, None)
            materialized.remove()
            raise


class SqlService:
    """Opens agent instances' private SQL connections."""

    def __init__(self, paths: ProjectPaths, *, max_seconds: float = 10.0) -> None:
        self.path = paths.brio / "agents.db"
        self.max_seconds = max_seconds
        """Wall-clock budget of one statement (stopped, or abandoned, past it)."""

    def open(self) -> AgentSql:
        """A connection with a fresh prefix for one agent instance."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return AgentSql.open(
            self.path,
            "a" + secrets.token_hex(4),
            max_rows=10_000,
            max_result_bytes=4 * 1024 * 1024,
            max_steps=50_000_000,
            max_seconds=self.max_seconds,
        )
