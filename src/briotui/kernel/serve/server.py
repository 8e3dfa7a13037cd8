"""The WebSocket server of a served kernel: state fan-out, rejoin, commands, security.

:class:`KernelServer` runs on the kernel's own event loop. It subscribes once to the
kernel's :class:`~briotui.kernel.state.StateTree` and serializes each patch once; each
connected client has its own queue and writer task, so the kernel only appends to
queues and never waits for a socket. A client whose queue passes its bound is dropped
(closed with :data:`~briotui.kernel.serve.protocol.CLOSE_SLOW` and a reason) and may
rejoin. Recent patches are kept in a bounded replay buffer for clients that rejoin
with ``since``.

Every connection is checked before the WebSocket handshake completes: the bearer token
(query ``token`` or ``Authorization: Bearer``, compared in constant time) and, when a
browser sends one, the ``Origin`` (only the server's own host). Commands are parsed by
:mod:`briotui.kernel.serve.protocol`, run against the kernel, answered with a typed
result and written to the audit log with the client's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import ipaddress
import json
import logging
import re
import secrets
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from briotui.kernel import contract
from briotui.kernel.errors import BrioError, RemoteError, RemoteProtocolError
from briotui.kernel.llm.types import Provider
from briotui.kernel.runtime.events import Event
from briotui.kernel.serve.prompts import PromptBoard
from briotui.kernel.serve.protocol import (
    CLOSE_SLOW,
    DEFAULT_MAX_MESSAGE,
    DEFAULT_QUEUE_LIMIT,
    DEFAULT_REPLAY,
    PROTOCOL,
    QUERIES,
    STREAMED_EVENTS,
    Command,
    dumps,
    message_id,
    parse_command,
    result_error,
    result_ok,
)
from briotui.kernel.serve.token import token_matches
from briotui.kernel.serve.wire import diff_json
from briotui.kernel.state import StatePatch, Subscription

if TYPE_CHECKING:
    from briotui.kernel.kernel import Kernel

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 16
"""How many commands of one client may run at once (more get an error reply)."""

COMMAND_GRACE_S = 10.0
"""How long closing the server waits for the commands still running."""

_CLIENT_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Client:
    """One connected client: its socket, its outgoing queue and its place in the stream."""

    def __init__(self, client_id: str, ws: ServerConnection) -> None:
        self.id = client_id
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.next_seq = 0
        """The first patch this client still needs (earlier ones are in what it got)."""
        self.dropped = False
        self.in_flight: set[asyncio.Task[None]] = set()
        self.reads: set[asyncio.Task[None]] = set()
        """Its queries in flight (dropped when it leaves; its commands run to the end)."""
        self.writer: asyncio.Task[None] | None = None


class KernelServer:
    """Serves one kernel's state and commands over WebSocket.

    Args:
        kernel: The kernel (its loop is the one this server runs on).
        token: The bearer token every connection must present.
        host: Where to listen (loopback by default).
        port: The port (0 picks a free one; see :attr:`port`).
        ssl_context: TLS for ``wss://`` (None: plain ``ws://``).
        provider: The model provider submitted requests use (None: the kernel's default).
        max_message: The largest message a client may send, in bytes.
        queue_limit: How many messages may wait for one client before it is dropped.
        replay: How many recent patches are kept for clients rejoining with ``since``.
        prompts: Publish capability prompts and agents' questions under ``/prompts``
            for clients to answer (``approve ask``); False leaves the kernel's prompt
            and answerer as they are.
    """

    def __init__(
        self,
        kernel: Kernel,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        provider: Provider | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        replay: int = DEFAULT_REPLAY,
        prompts: bool = True,
    ) -> None:
        self.kernel = kernel
        self.token = token
        self.host = host
        self._port = port
        self.ssl_context = ssl_context
        self.provider = provider
        self.max_message = max_message
        self.queue_limit = queue_limit
        self.board = PromptBoard(kernel.state)
        self.instance = secrets.token_hex(6)
        """This server's id: ``since`` counts only for the server that numbered it."""
        self._publish_prompts = prompts
        self._replay: deque[tuple[int, str]] = deque(maxlen=max(1, replay))
        self._delivered = 0
        """The ``seq`` of the last patch the server's subscription received."""
        self.clients: dict[str, _Client] = {}
        self._subscription: Subscription | None = None
        self._unsubscribe_events: Callable[[], None] | None = None
        self._server: Server | None = None
        self.dropped: list[tuple[str, str]] = []
        """Clients dropped for being slow: ``(client id, reason)``, oldest first."""
        self._closers: set[asyncio.Task[None]] = set()
        self._commands: set[asyncio.Task[None]] = set()
        """Commands in flight, of every client: finished (and audited) even when their
        client leaves, waited for (bounded) when the server closes."""
        self._handlers: dict[str, Callable[[Command, str], Awaitable[Any]]] = {
            "submit": self._submit,
            "cancel": self._cancel,
            "decide": self._decide,
            "commit": self._commit,
            "rollback": self._rollback,
            "discard": self._discard,
            "revise": self._revise,
            "resolve": self._resolve,
            "retest": self._retest,
            "answer": self._answer,
            "verify_commit": self._verify_commit,
            "session": self._session,
            "sessions": self._sessions,
            "task_of_session": self._task_of_session,
            "transcript": self._transcript,
            "test_run": self._test_run,
        }

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (known once started)."""
        return self._port

    @property
    def url(self) -> str:
        """The URL to attach with, token included."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/?token={quote(self.token, safe='')}"

    async def start(self) -> None:
        """Subscribe to the kernel's state and start listening."""
        if self._publish_prompts:
            self.kernel.set_approvals("ask", self.board.ask_capability)
            self.kernel.set_answerer(self.board.ask_question)
        if self.provider is not None and not self.kernel.state.get(["provider", "name"]):
            # attached clients show which provider answers from the start
            self.kernel.state.set(["provider"], contract.provider_view(self.provider.name))
        self._subscription = self.kernel.state.subscribe(self._on_patch, loop=self.kernel.loop)
        self._unsubscribe_events = self.kernel.events.subscribe(self._on_event)
        self._delivered = self._subscription.snapshot.seq
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            ssl=self.ssl_context,
            process_request=self._check_request,
            max_size=self.max_message,
            compression=None,
            ping_interval=20,
            ping_timeout=60,
            close_timeout=2,
        )
        sockets = list(self._server.sockets)
        if sockets:
            self._port = int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Close every connection and stop listening (the kernel keeps running)."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._unsubscribe_events is not None:
            self._unsubscribe_events()
            self._unsubscribe_events = None
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        if self._commands:  # what clients started ends (and is audited) before the kernel
            _done, pending = await asyncio.wait(list(self._commands), timeout=COMMAND_GRACE_S)
            for task in pending:
                task.cancel()
        for task in list(self._closers):
            task.cancel()

    # -- admission -----------------------------------------------------------------------

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a handshake without the token, or from a browser page of another host."""
        query = parse_qs(urlsplit(request.path).query)
        given: str | None = query["token"][0] if query.get("token") else None
        auth = request.headers.get("Authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if not token_matches(given, self.token):
            log.warning("refused a connection from %s: wrong token", connection.remote_address)
            return _refuse(
                connection,
                http.HTTPStatus.UNAUTHORIZED,
                "Wrong or missing token: attach with the URL `briotui serve` printed.",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin):
            log.warning(
                "refused a connection from %s: origin %r", connection.remote_address, origin
            )
            return _refuse(
                connection,
                http.HTTPStatus.FORBIDDEN,
                "A web page of another host may not attach to this kernel.",
            )
        return None

    def _origin_allowed(self, origin: str) -> bool:
        """A browser's page may attach only when it comes from the host served on.

        The ``Host`` header is not trusted for this (a rebound DNS name sends its own).
        """
        origin_host = (urlsplit(origin).hostname or "").lower()
        if not origin_host:
            return False
        served = self.host.lower().strip("[]")
        if origin_host == served:
            return True
        return is_loopback(origin_host) and is_loopback(served)

    # -- connections ---------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        """One client: send the state, then read its commands until it goes."""
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        name = _CLIENT_NAME.sub("", (query.get("client") or [""])[0])[:32] or "client"
        client = _Client(f"{name}-{secrets.token_hex(3)}", ws)
        since = _int_or_none(query["since"][0] if query.get("since") else None)
        if (query.get("instance") or [""])[0] != self.instance:
            since = None  # numbered by another server (or a restart): start from a snapshot
        self._join(client, since)
        client.writer = asyncio.create_task(self._write(client), name=f"serve {client.id}")
        log.info("client %s joined from %s", client.id, ws.remote_address)
        try:
            async for message in ws:
                if client.dropped:
                    break
                self._receive(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._leave(client)
            for task in list(client.reads):  # nobody waits for the answer any more
                task.cancel()
            log.info("client %s left", client.id)

    def _join(self, client: _Client, since: int | None) -> None:
        """Queue the hello and the snapshot (or the replayed patches); start following.

        Runs without awaiting, so no patch is delivered between the snapshot and the
        client's registration.
        """
        hello = {
            "type": "hello",
            "protocol": PROTOCOL,
            "client": client.id,
            "state_version": contract.STATE_VERSION,
            "instance": self.instance,
            "project": self.kernel.paths.root.name,
            "git": (self.kernel.paths.root / ".git").exists(),
        }
        client.queue.put_nowait(dumps(hello))
        if since is not None and self._can_replay(since):
            client.queue.put_nowait(dumps({"type": "resume", "seq": since}))
            for seq, text in self._replay:
                if seq > since:
                    client.queue.put_nowait(text)
            client.next_seq = max(since, self._delivered) + 1
        else:
            snapshot = self.kernel.state.snapshot()
            client.queue.put_nowait(
                dumps({"type": "snapshot", "seq": snapshot.seq, "state": snapshot.tree})
            )
            client.next_seq = snapshot.seq + 1
        self.clients[client.id] = client

    def _can_replay(self, since: int) -> bool:
        """Whether every patch after ``since`` is still in the buffer (or still to come)."""
        if since < 0 or since > self._delivered:
            return False
        if since == self._delivered:
            return True
        return bool(self._replay) and self._replay[0][0] <= since + 1

    def _leave(self, client: _Client) -> None:
        if self.clients.get(client.id) is client:
            del self.clients[client.id]
        if client.writer is not None:
            client.writer.cancel()

    async def _write(self, client: _Client) -> None:
        """Send the client's queue in order; the only place that awaits its socket."""
        try:
            while True:
                text = await client.queue.get()
                await client.ws.send(text)
        except ConnectionClosed:
            pass

    def _on_patch(self, patch: StatePatch) -> None:
        """Serialize a patch once and queue it for every client (on the kernel's loop)."""
        text = dumps({"type": "patch", "seq": patch.seq, "ops": patch.ops})
        self._replay.append((patch.seq, text))
        self._delivered = patch.seq
        for client in list(self.clients.values()):
            if patch.seq >= client.next_seq:
                self._push(client, text)

    def _on_event(self, event: Event) -> None:
        """Forward the streamed conversation (model deltas and replies) to every client."""
        kind = type(event).__name__
        if kind not in STREAMED_EVENTS:
            return
        fields = dataclasses.asdict(event)
        fields.pop("prompt", None)  # what the agent sent: large, and not shown
        text = dumps({"type": "event", "kind": kind, "event": fields})
        for client in list(self.clients.values()):
            self._push(client, text)

    def _push(self, client: _Client, text: str) -> None:
        if client.dropped:
            return
        if client.queue.qsize() >= self.queue_limit:
            self._drop(
                client,
                f"too slow: more than {self.queue_limit} messages waited; rejoin with since= "
                "or for a fresh snapshot",
            )
            return
        client.queue.put_nowait(text)

    def _drop(self, client: _Client, reason: str) -> None:
        """Disconnect a slow client without waiting for it."""
        client.dropped = True
        self.dropped.append((client.id, reason))
        log.warning("dropping client %s: %s", client.id, reason)
        self._leave(client)
        task = asyncio.get_running_loop().create_task(self._close_slow(client, reason))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close_slow(self, client: _Client, reason: str) -> None:
        try:
            await asyncio.wait_for(client.ws.close(CLOSE_SLOW, reason[:120]), 2)
        except (TimeoutError, ConnectionClosed, OSError):
            pass
        finally:
            if client.ws.transport is not None:
                client.ws.transport.abort()

    # -- commands ------------------------------------------------------------------------

    def _receive(self, client: _Client, message: str | bytes) -> None:
        """Parse one message; run a command as a task of its own, answer any error."""
        try:
            command = parse_command(message)
        except RemoteProtocolError as error:
            ident = None
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                ident = message_id(json.loads(message))
            self._reply(client, result_error(ident, error))
            return
        if len(client.in_flight) >= MAX_IN_FLIGHT:
            busy = RemoteProtocolError(
                f"More than {MAX_IN_FLIGHT} commands of this client are running; wait for "
                "their results."
            )
            self._reply(client, result_error(command.id, busy))
            return
        task = asyncio.create_task(self._run(client, command), name=f"{client.id} {command.name}")
        client.in_flight.add(task)
        task.add_done_callback(client.in_flight.discard)
        # a command is not cancelled when its client leaves: what it did in the kernel
        # (a decision, a commit) must still get its audit row
        running = client.reads if command.name in QUERIES else self._commands
        running.add(task)
        task.add_done_callback(running.discard)

    def _reply(self, client: _Client, text: str) -> None:
        if self.clients.get(client.id) is client:
            self._push(client, text)

    async def _run(self, client: _Client, command: Command) -> None:
        target = _target_of(command)
        if command.name in QUERIES:  # reads: answered, not audited
            try:
                value = await self._handlers[command.name](command, client.id)
            except BrioError as error:
                self._reply(client, result_error(command.id, error))
            except Exception:
                log.exception("query %s of %s failed", command.name, client.id)
                failed = RemoteError(f"The kernel failed answering {command.name!r}.")
                self._reply(client, result_error(command.id, failed))
            else:
                self._reply(client, result_ok(command.id, value))
            return
        try:
            value = await self._handlers[command.name](command, client.id)
        except BrioError as error:
            await self._audit(client.id, command.name, target, ok=False, reason=error.message)
            self._reply(client, result_error(command.id, error))
            return
        except Exception:
            log.exception("command %s of %s failed", command.name, client.id)
            failed = RemoteError(
                f"The kernel failed running {command.name!r}; the serve log has the details.",
                title="Command failed",
            )
            await self._audit(client.id, command.name, target, ok=False, reason=failed.message)
            self._reply(client, result_error(command.id, failed))
            return
        await self._audit(client.id, command.name, target, ok=True)
        await asyncio.sleep(0)  # let the patches the command published go out first
        self._reply(client, result_ok(command.id, value))

    async def _audit(
        self, client: str, name: str, target: str, *, ok: bool, reason: str = ""
    ) -> None:
        try:
            audit = self.kernel.capabilities().audit
            await asyncio.to_thread(
                audit.record_command, client, name, target, ok=ok, reason=reason
            )
        except Exception:  # the audit log must not turn a result into a failure
            log.exception("could not audit %s of %s", name, client)

    async def _submit(self, command: Command, client: str) -> Any:
        args = command.args
        task = await self.kernel.submit(
            args["goal"],
            agent=args.get("agent"),
            provider=self.provider,
            session_id=args.get("session"),  # a follow-up continues that open session
        )
        return {"task": task}

    async def _cancel(self, command: Command, client: str) -> Any:
        return {"cancelled": self.kernel.cancel(command.args["task"])}

    async def _decide(self, command: Command, client: str) -> Any:
        args = command.args
        decided = await self.kernel.decide(
            args["session"],
            args.get("hunks"),
            args["decision"],
            reason=args.get("reason", ""),
            path=args.get("path"),
        )
        return {"hunks": list(decided)}

    async def _commit(self, command: Command, client: str) -> Any:
        args = command.args
        result = await self.kernel.commit(
            args["session"],
            git=bool(args.get("git", False)),
            message=args.get("message"),
            force=bool(args.get("force", False)),
            expected_ids=args.get("expected"),  # the hunks the client saw verified
        )
        return dataclasses.asdict(result)

    async def _rollback(self, command: Command, client: str) -> Any:
        args = command.args
        result = await self.kernel.rollback(args["session"], force=bool(args.get("force", False)))
        return dataclasses.asdict(result)

    async def _discard(self, command: Command, client: str) -> Any:
        await self.kernel.discard_session(command.args["session"])
        return {}

    async def _revise(self, command: Command, client: str) -> Any:
        args = command.args
        task = await self.kernel.revise(
            args["session"], args.get("instruction", ""), provider=self.provider
        )
        return {"task": task}

    async def _resolve(self, command: Command, client: str) -> Any:
        args = command.args
        if args["choice"] not in ("ours", "theirs", "both", "text"):
            raise RemoteProtocolError(
                f"'resolve' takes choice ours, theirs, both or text, not {args['choice']!r}."
            )
        done = await self.kernel.resolve_conflict(
            args["session"],
            args["path"],
            args["choice"],
            region=args.get("region"),
            text=str(args.get("text", "")).encode(),
            by=f"client:{client}",
        )
        return done.to_dict()

    async def _retest(self, command: Command, client: str) -> Any:
        return dataclasses.asdict(await self.kernel.retest_session(command.args["session"]))

    async def _answer(self, command: Command, client: str) -> Any:
        self.board.answer(command.args["prompt"], command.args["answer"], f"client:{client}")
        return {}

    # -- queries (read on demand; the state tree has the rest) ---------------------------

    async def _verify_commit(self, command: Command, client: str) -> Any:
        check = await self.kernel.verify_commit(command.args["session"])
        return dataclasses.asdict(check)

    async def _session(self, command: Command, client: str) -> Any:
        def read() -> dict[str, Any]:
            session = self.kernel.sessions().get(command.args["session"])
            return {
                "id": session.id,
                "task": session.task,
                "state": session.state,
                "files": diff_json(session.diff()),
                "decisions": {k: list(v) for k, v in session.decisions().items()},
            }

        return await asyncio.to_thread(read)

    async def _sessions(self, command: Command, client: str) -> Any:
        infos = await asyncio.to_thread(self.kernel.sessions().list)
        return [dataclasses.asdict(info) for info in infos]

    async def _task_of_session(self, command: Command, client: str) -> Any:
        return await asyncio.to_thread(self.kernel.task_of_session, command.args["session"])

    async def _transcript(self, command: Command, client: str) -> Any:
        return await asyncio.to_thread(self.kernel.transcript, command.args["task"])

    async def _test_run(self, command: Command, client: str) -> Any:
        return await asyncio.to_thread(self.kernel.test_run, command.args["session"])


def _refuse(connection: ServerConnection, status: http.HTTPStatus, text: str) -> Response:
    return connection.respond(status, text + "\n")


def _int_or_none(text: str | None) -> int | None:
    if text is None or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def _target_of(command: Command) -> str:
    """What a command names, for its audit row."""
    args = command.args
    parts = [
        str(args[key])[:200]
        for key in ("session", "task", "prompt", "decision", "answer", "agent")
        if args.get(key) is not None
    ]
    if command.name == "decide" and args.get("hunks"):
        parts.append(",".join(args["hunks"])[:500])
    if command.name == "submit":
        parts.append(str(args["goal"])[:200])
    return " ".join(parts)


__all__ = ["MAX_IN_FLIGHT", "KernelServer", "is_loopback"]
