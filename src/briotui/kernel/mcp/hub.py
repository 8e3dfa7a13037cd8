"""The kernel's connections to MCP servers, through the official ``mcp`` SDK's client.

The SDK is asynchronous (anyio) and a connection must be opened and closed in one task,
while agents call tools from their worker threads. So :class:`McpHub` runs one event
loop of its own, on a daemon thread started with the first call; each server's
connection is one task on it that opens the transport and the
:class:`~mcp.ClientSession`, then waits until the hub stops. A worker thread submits a
call to that loop and waits for it (polling its run's stop flag).

Stdio servers start lazily, inside the same sandbox as the shell commands
(:func:`briotui.kernel.shell.runner.confine`): a scrubbed environment (only the
variables named in ``env`` pass), no network unless ``network = true``, the project
read-only, bubblewrap when present. Without bubblewrap a server keeps running beside the
user's files with far weaker confinement, so it is started only when the user's own
config says so (``[shell] unsandboxed = "allow"``); otherwise it is refused with a
:class:`~briotui.kernel.errors.McpUnavailable` that says what to install or set.
Their stderr goes to a private file whose tail explains a crash. A server that crashes
or hangs gives a typed :class:`~briotui.kernel.errors.McpError`; the next call starts it
again.

Results are sanitized (no escape sequences, no invisible characters) and cut to
``max_result_bytes`` before anything sees them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from briotui.kernel.errors import (
    McpError,
    McpRefused,
    McpTimeout,
    McpToolNotFound,
    McpUnavailable,
)
from briotui.kernel.mcp.config import McpSettings, ServerConfig
from briotui.kernel.text import sanitize

if TYPE_CHECKING:
    from briotui.kernel.shell.runner import UnsandboxedMode

log = logging.getLogger(__name__)

T = TypeVar("T")

_POLL_S = 0.05
_CRASH_GRACE_S = 1.0
"""After a failed call, how long to wait for the server's exit to tell a crash apart."""
_STDERR_TAIL = 800


@dataclass(frozen=True)
class ToolInfo:
    """One tool of one server.

    Attributes:
        server: The server's name.
        name: The tool's name on its server.
        description: What it does (sanitized, cut).
        parameters: The JSON Schema of its arguments, as JSON text.
    """

    server: str
    name: str
    description: str
    parameters: str

    @property
    def qualified(self) -> str:
        """``server/tool``."""
        return f"{self.server}/{self.name}"


@dataclass(frozen=True)
class ServerStatus:
    """How one server is doing, for ``briotui doctor``.

    Attributes:
        name: The server's name.
        transport: ``stdio`` or ``http``.
        ok: Whether it started and listed its tools.
        detail: Its tools' count, or what went wrong.
    """

    name: str
    transport: str
    ok: bool
    detail: str

    def line(self) -> str:
        """One line for ``doctor``."""
        return f"MCP server {self.name} ({self.transport}): " + (
            self.detail if self.ok else f"FAILED: {self.detail}"
        )


def _clean(value: Any) -> Any:
    """``value`` with every string sanitized (structured results are JSON values)."""
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {sanitize(str(k)): _clean(v) for k, v in value.items()}
    return value


def result_json(result: Any, limit: int) -> tuple[str, bool]:
    """A ``CallToolResult`` as the JSON text agents get, and whether it is an error.

    Text blocks are joined; other blocks are named (``[image image/png]``). Everything
    is sanitized; the JSON is cut to ``limit`` bytes (structured content is dropped
    first, then the text is cut).
    """
    parts: list[str] = []
    for block in getattr(result, "content", []) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(getattr(block, "text", "")))
        else:
            parts.append(f"[{kind} {getattr(block, 'mime_type', '') or ''}]".replace(" ]", "]"))
    text = sanitize("\n".join(parts))
    structured = _clean(getattr(result, "structured_content", None))
    out = {"text": text, "structured": structured}
    encoded = json.dumps(out, ensure_ascii=False)
    if len(encoded.encode()) > limit:
        out = {"text": text, "structured": None, "truncated": True}
        while len(json.dumps(out, ensure_ascii=False).encode()) > limit and out["text"]:
            cut = max(0, len(str(out["text"])) - max(64, len(str(out["text"])) // 4))
            out["text"] = str(out["text"])[:cut]
        encoded = json.dumps(out, ensure_ascii=False)
    return encoded, bool(getattr(result, "is_error", False))


class _Connection:
    """One server's connection: a task on the hub's loop that holds the session."""

    def __init__(
        self,
        config: ServerConfig,
        root: Path,
        sandbox: bool | None,
        unsandboxed: UnsandboxedMode = "ask",
    ) -> None:
        self.config = config
        self.root = root
        self.sandbox = sandbox
        self.unsandboxed = unsandboxed
        self.session: Any = None
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.failure: McpError | None = None
        self.tools: dict[str, ToolInfo] | None = None
        self.stderr: IO[str] | None = None

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def stderr_tail(self) -> str:
        if self.stderr is None:
            return ""
        try:
            self.stderr.flush()
            self.stderr.seek(0)
            text = self.stderr.read()
        except (OSError, ValueError):
            return ""
        return sanitize(text[-_STDERR_TAIL:].strip())

    def crashed(self, what: str) -> McpUnavailable:
        tail = self.stderr_tail()
        return McpUnavailable(
            f"The MCP server {self.config.name!r} {what}."
            + (f" Its last output: {tail.rstrip('.')}." if tail else "")
            + " Check it with `briotui doctor`; it is started again on the next call.",
            title="MCP server crashed" if "exited" in what else None,
        )

    async def run(self) -> None:
        private: Path | None = None
        try:
            from mcp import ClientSession

            async with contextlib.AsyncExitStack() as stack:
                if self.config.url:
                    from mcp.client.streamable_http import streamable_http_client

                    read, write = await stack.enter_async_context(
                        streamable_http_client(self.config.url)
                    )
                else:
                    params, private = self._stdio_params()
                    from mcp.client.stdio import stdio_client

                    self.stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed with the hub)
                    read, write = await stack.enter_async_context(
                        stdio_client(params, errlog=self.stderr)
                    )
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self.session = session
                self.ready.set()
                await self.stop.wait()
        except asyncio.CancelledError:
            raise
        except McpError as exc:
            self.failure = exc
        except BaseException as exc:  # the transport's errors come in many types
            log.info("MCP server %s ended: %r", self.config.name, exc)
            self.failure = self.crashed(
                "exited or closed its connection"
                if self.session is not None
                else f"could not be started ({_reason(exc)})"
            )
        finally:
            self.session = None
            if self.failure is None and not self.stop.is_set():
                self.failure = self.crashed("exited")
            self.ready.set()
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)

    def _stdio_params(self) -> tuple[Any, Path]:
        from mcp import StdioServerParameters

        from briotui.kernel.shell.runner import confine

        program, *args = self.config.command
        exe = shutil.which(program) if "/" not in program else program
        if exe is not None and not os.path.isabs(exe):
            exe = str((self.root / exe).resolve())
        if exe is None or not os.access(exe, os.X_OK):
            raise McpUnavailable(
                f"The MCP server {self.config.name!r} names the program {program!r}, which "
                f"is not installed (in {self.config.source}). Install it or fix `command`.",
                title="MCP server cannot start",
            )
        passed = {n: os.environ[n] for n in self.config.env if n in os.environ}
        confined = confine(
            exe,
            args,
            cwd=self.root,
            network=self.config.network,
            extra_env=passed,
            sandbox=self.sandbox,
        )
        if not confined.sandboxed and self.unsandboxed != "allow":
            shutil.rmtree(confined.private, ignore_errors=True)
            raise McpUnavailable(
                f"The MCP server {self.config.name!r} (in {self.config.source}) would run "
                "without an OS sandbox: bubblewrap is not available here, and a server "
                "keeps running beside your files with the project's agents calling it. "
                "Install bubblewrap (e.g. `apt-get install bubblewrap`), or, to start MCP "
                'servers unsandboxed anyway, set `unsandboxed = "allow"` under [shell] in '
                "your own config (`briotui doctor` shows where it is).",
                title="MCP server not sandboxed",
            )
        # the SDK merges its own defaults (HOME, PATH, USER...) under these: every one
        # of them is set here, so nothing of the kernel's environment leaks through
        params = StdioServerParameters(
            command=confined.argv[0],
            args=confined.argv[1:],
            env={**confined.env, **{n: v for n, v in passed.items()}},
            cwd=str(self.root),
        )
        return params, confined.private


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"[:300]


class McpHub:
    """Connections to the configured MCP servers, for every agent of one kernel.

    Args:
        settings: The ``[mcp]`` settings.
        root: The project root (a stdio server's working directory, read-only).
        sandbox: True to require bubblewrap, False never, None when present (the
            user's ``[shell] sandbox``).
        unsandboxed: The user's ``[shell] unsandboxed``: only ``"allow"`` starts a
            stdio server without bubblewrap (it cannot be asked about per call).
    """

    def __init__(
        self,
        settings: McpSettings,
        root: Path,
        *,
        sandbox: bool | None = None,
        unsandboxed: UnsandboxedMode = "ask",
    ) -> None:
        self.settings = settings
        self.root = root
        self.sandbox = sandbox
        self.unsandboxed: UnsandboxedMode = unsandboxed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[str, _Connection] = {}
        self._spent: dict[str, int] = {}

    # -- the loop ------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="briotui-mcp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _wait(
        self,
        coro: Coroutine[Any, Any, T],
        timeout: float,
        should_stop: Callable[[], bool] | None,
        what: str,
    ) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        deadline = timeout + 2.0
        waited = 0.0
        while True:
            try:
                return future.result(timeout=_POLL_S)
            except concurrent.futures.TimeoutError:
                waited += _POLL_S
                if should_stop is not None and should_stop():
                    future.cancel()
                    raise McpTimeout(f"{what} was stopped: the agent's run ended.") from None
                if waited > deadline:
                    future.cancel()
                    raise McpTimeout(f"{what} took longer than {timeout:g} s.") from None

    # -- servers -------------------------------------------------------------------

    def config(self, server: str) -> ServerConfig:
        """The server's settings.

        Raises:
            McpToolNotFound: no server of that name is configured.
        """
        config = self.settings.servers.get(server)
        if config is None:
            names = ", ".join(sorted(self.settings.servers)) or "none"
            raise McpToolNotFound(
                f"No MCP server {server!r} is configured (configured: {names}). Name a "
                "tool as server/tool from list-tools."
            )
        return config

    async def _connection(self, server: str) -> _Connection:
        config = self.config(server)
        conn = self._connections.get(server)
        if conn is None or (not conn.alive and conn.ready.is_set()):
            if conn is not None and conn.stderr is not None:
                conn.stderr.close()  # its crash was told; a new start gets a new file
            conn = _Connection(config, self.root, self.sandbox, self.unsandboxed)
            self._connections[server] = conn
            conn.task = asyncio.get_running_loop().create_task(conn.run())
        try:
            await asyncio.wait_for(conn.ready.wait(), config.timeout_s)
        except TimeoutError:
            conn.stop.set()
            if conn.task is not None:
                conn.task.cancel()
            raise McpTimeout(
                f"The MCP server {server!r} did not start within {config.timeout_s:g} s "
                f"(timeout_s in {config.source}). Check it with `briotui doctor`."
            ) from None
        if conn.session is None:
            raise conn.failure or conn.crashed("is not running")
        return conn

    async def _tools(self, server: str) -> dict[str, ToolInfo]:
        conn = await self._connection(server)
        if conn.tools is None:
            listed = await asyncio.wait_for(conn.session.list_tools(), conn.config.timeout_s)
            conn.tools = {
                t.name: ToolInfo(
                    server,
                    t.name,
                    sanitize(t.description or "")[:2000],
                    json.dumps(t.input_schema),
                )
                for t in listed.tools
            }
        return conn.tools

    def list_tools(
        self, *, should_stop: Callable[[], bool] | None = None
    ) -> tuple[list[ToolInfo], list[McpError]]:
        """Every configured server's tools (servers started as needed), and the
        failures of the servers that could not list theirs."""
        tools: list[ToolInfo] = []
        failures: list[McpError] = []
        for server, config in sorted(self.settings.servers.items()):
            try:
                found = self._wait(
                    self._guard(server, self._tools(server), config),
                    config.timeout_s,
                    should_stop,
                    f"Listing the tools of MCP server {server!r}",
                )
                tools += found.values()
            except McpError as exc:
                failures.append(exc)
        return tools, failures

    def describe(
        self, server: str, tool: str, *, should_stop: Callable[[], bool] | None = None
    ) -> ToolInfo:
        """One tool's description.

        Raises:
            McpToolNotFound: no such server or tool.
            McpUnavailable / McpTimeout: the server cannot be reached.
        """
        config = self.config(server)
        tools = self._wait(
            self._guard(server, self._tools(server), config),
            config.timeout_s,
            should_stop,
            f"Listing the tools of MCP server {server!r}",
        )
        info = tools.get(tool)
        if info is None:
            raise McpToolNotFound(
                f"The MCP server {server!r} has no tool {tool!r} (it has: "
                f"{', '.join(sorted(tools)) or 'none'})."
            )
        return info

    def spend(self, task_id: str) -> None:
        """Count one call against the task's budget.

        Raises:
            McpRefused: the task has used its budget (``[mcp] budget``).
        """
        with self._lock:
            used = self._spent.get(task_id, 0)
            if used >= self.settings.budget:
                raise McpRefused(
                    f"This task has made its {self.settings.budget} MCP tool calls "
                    "([mcp] budget); finish with what you have."
                )
            self._spent[task_id] = used + 1

    def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> str:
        """Call a tool; returns its result as sanitized, size-limited JSON text.

        Raises:
            McpError: the tool reported an error (the message is its text).
            McpUnavailable: the server crashed or cannot start.
            McpTimeout: it did not answer in time.
            McpToolNotFound: no such server.
        """
        config = self.config(server)

        async def go() -> Any:
            conn = await self._connection(server)
            return await conn.session.call_tool(
                tool, arguments, read_timeout_seconds=config.timeout_s
            )

        result = self._wait(
            self._guard(server, go(), config),
            config.timeout_s,
            should_stop,
            f"The MCP call {server}/{tool}",
        )
        text, failed = result_json(result, self.settings.max_result_bytes)
        if failed:
            message = json.loads(text).get("text", "") or "no details"
            raise McpError(f"The MCP tool {server}/{tool} reported an error: {message}")
        return text

    async def _guard(self, server: str, coro: Coroutine[Any, Any, T], config: ServerConfig) -> T:
        """Run ``coro`` against ``server`` with its time limit; a failure becomes a
        typed error (a crash when the server's connection ended meanwhile)."""
        try:
            return await asyncio.wait_for(coro, config.timeout_s)
        except McpError:
            raise
        except TimeoutError:
            raise McpTimeout(
                f"The MCP server {server!r} did not answer within {config.timeout_s:g} s "
                f"(timeout_s in {config.source})."
            ) from None
        except Exception as exc:
            conn = self._connections.get(server)
            if conn is not None and conn.task is not None and "closed" in str(exc).lower():
                # the server's end of the connection is gone: it exited (crashed)
                conn.stop.set()
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(conn.task), _CRASH_GRACE_S)
                conn.failure = None
                raise conn.crashed("exited during the call") from None
            raise McpError(
                f"The MCP server {server!r} failed the request: {_reason(exc)}"
            ) from None

    # -- doctor, close -------------------------------------------------------------

    def status(self) -> list[ServerStatus]:
        """Start every server and list its tools: one status each (for ``doctor``)."""
        out: list[ServerStatus] = []
        for server, config in sorted(self.settings.servers.items()):
            transport = "http" if config.url else "stdio"
            try:
                tools = self._wait(
                    self._guard(server, self._tools(server), config),
                    config.timeout_s,
                    None,
                    f"Starting MCP server {server!r}",
                )
                out.append(ServerStatus(server, transport, True, f"{len(tools)} tools"))
            except McpError as exc:
                out.append(ServerStatus(server, transport, False, exc.message))
        return out

    def close(self) -> None:
        """Stop every server and the hub's loop (idempotent)."""
        loop = self._loop
        if loop is None:
            return

        async def stop_all() -> None:
            conns = list(self._connections.values())
            for conn in conns:
                conn.stop.set()
            tasks = [c.task for c in conns if c.task is not None]
            if tasks:
                _done, pending = await asyncio.wait(tasks, timeout=5)
                for task in pending:
                    task.cancel()
            for conn in conns:
                if conn.stderr is not None:
                    conn.stderr.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop_all(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._loop = None
            self._thread = None
            self._connections.clear()
