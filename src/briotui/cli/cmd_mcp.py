"""``briotui mcp``: serve the kernel over MCP (stdio), for other coding assistants.

Another assistant (any MCP client) can hand work to briotui's sandboxed pipeline: submit
a request, wait for it, read the session's diff with hunk ids, the Reviewer's findings
and whether the tests passed, accept or reject hunks, and commit: only the sessions of
the requests it submitted through this server (the user's other sessions, say one being
reviewed in the TUI, are not an MCP client's to read or decide). Nothing reaches the
user's files unless a hunk is accepted and committed; committing from an MCP client is
off unless the user's own config says ``[mcp] clients_may_commit = true`` (a project
cannot turn it on): otherwise the session stays for the user to commit in the TUI.
Agents' capability prompts cannot be answered here (stdio carries the protocol), so a
call outside the agents' grants is denied, as with ``briotui run``.

Built on the official ``mcp`` SDK's server (:class:`~mcp.server.mcpserver.MCPServer`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from briotui.kernel.errors import BrioError, ConfigError, SessionNotFound
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.types import Provider
from briotui.kernel.settings import Settings, load_settings
from briotui.kernel.text import sanitize
from briotui.kernel.vfs import Session

WAIT_LIMIT_S = 3600.0
"""The longest one ``wait`` call blocks."""


def register(sub: Any) -> None:
    """Add the ``mcp`` subcommand."""
    mcp = sub.add_parser(
        "mcp",
        help="serve briotui over MCP (stdio) for other coding assistants",
        description=(
            "Serve this project's kernel over the Model Context Protocol on stdin/stdout: "
            "tools to submit a request, wait for it, read a session's diff and findings, "
            "accept or reject hunks, and commit (only when your config sets [mcp] "
            "clients_may_commit = true)."
        ),
    )
    mcp.add_argument(
        "--provider",
        metavar="SPEC",
        help="the model provider: scripted:FILE, NAME or NAME/MODEL (default: the config)",
    )
    mcp.set_defaults(handler=handle)


def clients_may_commit(settings: Settings) -> bool:
    """Whether the user's own config lets MCP clients commit (never the project's)."""
    table = settings.user.get("mcp")
    return isinstance(table, dict) and table.get("clients_may_commit") is True


class Service:
    """The kernel behind the MCP tools (opened on the server's event loop)."""

    def __init__(self, project: str, settings: Settings, provider: Provider) -> None:
        self.project = project
        self.settings = settings
        self.provider = provider
        self.kernel: Kernel | None = None
        self.tasks: dict[str, str] = {}
        """The tasks submitted through this server, and their sessions."""

    def open(self) -> Kernel:
        if self.kernel is None:
            self.kernel = Kernel(self.project, config=self.settings)
        return self.kernel

    async def close(self) -> None:
        if self.kernel is not None:
            await self.kernel.close()
            self.kernel = None
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()

    async def submit(self, request: str, agent: str | None) -> dict[str, Any]:
        kernel = self.open()
        await kernel.build_agents()
        task_id = await kernel.submit(request, agent=agent or None, provider=self.provider)
        session = kernel.session_of(task_id)
        self.tasks[task_id] = session.id if session else ""
        return {"task_id": task_id, "session_id": self.tasks[task_id]}

    def own_session(self, session_id: str) -> Session:
        """The session ``session_id`` (or a unique prefix) if a request submitted through
        this server made it.

        Raises:
            SessionNotFound: no such session, or not one of this server's.
        """
        session = self.open().sessions().get(session_id)
        if session.id not in self.tasks.values():
            raise SessionNotFound(
                f"Session {session.id} was not started through this MCP server: a client "
                "reads and decides only the sessions of the requests it submitted (submit "
                "returns their session_id). The user reviews their other sessions in "
                "briotui.",
                title="Not this client's session",
            )
        return session

    async def wait(self, task_id: str, timeout_s: float) -> dict[str, Any]:
        kernel = self.open()
        if task_id not in self.tasks:
            raise ConfigError(
                f"No task {task_id!r} was submitted through this server. Use the task_id "
                "that submit returned.",
                title="Unknown task",
            )
        job = asyncio.ensure_future(kernel.wait(task_id))
        try:
            result = await asyncio.wait_for(asyncio.shield(job), min(timeout_s, WAIT_LIMIT_S))
        except TimeoutError:
            return {"task_id": task_id, "status": "running"}
        return {**result.to_dict(), "status": "ended", "outcome": result.final_outcome}

    async def diff(self, session_id: str) -> dict[str, Any]:
        kernel = self.open()

        def work() -> dict[str, Any]:
            session = self.own_session(session_id)
            diff = session.diff()
            decisions = session.decisions()
            return {
                "session_id": session.id,
                "state": session.state,
                "hunks": [
                    {
                        "id": h.id,
                        "path": sanitize(h.path),
                        "kind": h.kind,
                        "header": sanitize(h.header()),
                        "lines": [sanitize(line) for line in h.lines],
                        "decision": decisions.get(h.id, ("pending", ""))[0],
                    }
                    for h in diff.hunks()
                ],
            }

        out = await asyncio.to_thread(work)
        review = kernel.review_of(out["session_id"]) or {}
        out["findings"] = review.get("findings", [])
        out["verdict"] = review.get("verdict", "")
        out["verified"] = kernel.is_verified(out["session_id"])
        return out

    async def decide(
        self,
        session_id: str,
        decision: Literal["accepted", "rejected"],
        hunk_ids: list[str] | None,
        reason: str,
    ) -> dict[str, Any]:
        kernel = self.open()
        session = await asyncio.to_thread(self.own_session, session_id)
        decided = await kernel.decide(session.id, hunk_ids or None, decision, reason=reason)
        return {"session_id": session.id, "decision": decision, "hunks": decided}

    async def commit(self, session_id: str, message: str | None) -> dict[str, Any]:
        if not clients_may_commit(self.settings):
            raise ConfigError(
                "Committing from an MCP client is off: the session stays for the user, who "
                "reviews and commits it in the TUI (or with `briotui sessions commit`). To "
                "let MCP clients commit, set [mcp] clients_may_commit = true in your own "
                "config.",
                title="Commit left to the user",
            )
        kernel = self.open()
        session = await asyncio.to_thread(self.own_session, session_id)
        git = kernel.sessions().is_git
        result = await kernel.commit(session.id, git=git, message=message, provenance="briotui mcp")
        return {
            "session_id": session.id,
            "written": result.written,
            "deleted": result.deleted,
            "git_commit": result.git_commit,
        }


def build_server(service: Service) -> Any:
    """The MCP server with briotui's tools (the SDK's ``MCPServer``)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            await service.close()

    server = MCPServer(
        "briotui",
        instructions=(
            "briotui runs coding requests in sandboxed sessions: submit, wait, read the "
            "diff and findings, accept or reject hunks, then commit (if allowed)."
        ),
        lifespan=lifespan,
    )

    async def guarded(work: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await work
        except BrioError as exc:
            raise ToolError(f"{exc.title}: {exc.message}") from None
        return result

    @server.tool()
    async def submit(request: str, agent: str = "") -> dict[str, Any]:
        """Start a coding request in a new sandboxed session (the whole pipeline, or one
        agent such as "coder"). Returns task_id and session_id; nothing is applied."""
        return await guarded(service.submit(request, agent or None))

    @server.tool()
    async def wait(task_id: str, timeout_s: float = 600) -> dict[str, Any]:
        """Wait for a submitted task to end (status "running" if it is still going
        after timeout_s). Returns its outcome and session."""
        return await guarded(service.wait(task_id, timeout_s))

    @server.tool()
    async def diff(session_id: str) -> dict[str, Any]:
        """A session's hunks (id, path, lines, decision), the Reviewer's findings and
        whether the project's tests passed in it."""
        return await guarded(service.diff(session_id))

    @server.tool()
    async def accept(
        session_id: str, hunk_ids: list[str] | None = None, reason: str = ""
    ) -> dict[str, Any]:
        """Accept hunks of a session (all when hunk_ids is empty)."""
        return await guarded(service.decide(session_id, "accepted", hunk_ids, reason))

    @server.tool()
    async def reject(
        session_id: str, hunk_ids: list[str] | None = None, reason: str = ""
    ) -> dict[str, Any]:
        """Reject hunks of a session (all when hunk_ids is empty), with a reason."""
        return await guarded(service.decide(session_id, "rejected", hunk_ids, reason))

    @server.tool()
    async def commit(session_id: str, message: str = "") -> dict[str, Any]:
        """Apply a session's accepted hunks to the user's files and git-commit them,
        only if the user allowed MCP clients to commit and the tests passed."""
        return await guarded(service.commit(session_id, message or None))

    return server


def handle(args: argparse.Namespace) -> int:
    """Handle ``mcp``: serve until the client closes stdin."""
    from briotui.cli.cmd_run import parse_provider

    settings = load_settings(args.project)
    provider = parse_provider(args.provider, settings)
    server = build_server(Service(args.project, settings, provider))
    server.run("stdio")
    return 0
