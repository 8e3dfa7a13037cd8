"""A client of a served kernel: a mirror of its state tree and its commands.

:class:`RemoteClient` connects to ``briotui serve``'s URL, keeps :attr:`~RemoteClient.tree`
equal to the kernel's state (the snapshot, then each patch applied in order) and sends
commands, returning their values or raising the kernel's error as
:class:`~briotui.kernel.errors.RemoteCommandFailed`. With ``rejoin=True`` a dropped
connection is rejoined with ``since`` (missed patches replayed, or a fresh snapshot).
``briotui attach``, the tests and the benchmarks use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import jsonpatch
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from briotui.kernel.errors import (
    RemoteClosed,
    RemoteCommandFailed,
    RemoteError,
    RemoteProtocolError,
    RemoteRefused,
)
from briotui.kernel.serve.mirror import MirrorWaits
from briotui.kernel.serve.protocol import CLIENT_MAX_MESSAGE, dumps
from briotui.kernel.state import StatePatch

log = logging.getLogger(__name__)

Listener = Callable[[StatePatch | None], None]
"""Called after each patch is applied (None after a snapshot replaced the tree)."""


def with_query(url: str, **params: str | int) -> str:
    """``url`` with ``params`` set in its query string (other parameters kept)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


class RemoteClient(MirrorWaits):
    """A live mirror of a served kernel's state, and its command channel.

    Args:
        url: The URL ``briotui serve`` printed (with its token).
        name: How this client is named in the server's audit log.
        origin: An ``Origin`` header to send (browsers send one; tests use it).
        ssl_context: TLS settings for a ``wss://`` URL (default: the system's).
        rejoin: Rejoin with ``since`` when the connection drops.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "",
        origin: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        rejoin: bool = False,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise RemoteError(
                f"{url[:80]!r} is not a briotui serve URL; use the ws://... URL it printed.",
                title="Not a kernel URL",
            )
        self.url = url
        self.name = name
        self.origin = origin
        self.ssl_context = ssl_context
        self.rejoin = rejoin
        self.tree: dict[str, Any] = {}
        self.seq = -1
        """The ``seq`` the mirror is at (-1 before the first snapshot)."""
        self.client_id = ""
        self.hello: dict[str, Any] = {}
        """The server's ``hello`` (its protocol, the project's name, whether it is git)."""
        self.snapshots = 0
        """How many snapshots this client received (1 per join, unless resumed)."""
        self.resyncs = 0
        """How often the stream was out of step (a gap, a repeat, a patch that does not
        apply) and the mirror had to start over (never, with a correct server)."""
        self.listeners: list[Listener] = []
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with each forwarded kernel event: its class name and its fields."""
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = asyncio.Event()
        """Set while the connection is closed (cleared when it is joined again)."""
        self.joined = asyncio.Event()
        """Set while connected and joined (cleared when the connection closes)."""
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._changed = asyncio.Event()
        self._closing = False
        self._joined = False

    # -- connection ----------------------------------------------------------------------

    async def connect(self, *, since: int | None = None, within_s: float = 10.0) -> None:
        """Connect and wait for the state (a snapshot, or ``since``'s replayed patches).

        Raises:
            RemoteRefused: wrong token, or a refused origin.
            RemoteClosed: the server cannot be reached or closed the connection.
        """
        params: dict[str, str | int] = {}
        if self.name:
            params["client"] = self.name
        if since is not None:
            params["since"] = since
            params["instance"] = str(self.hello.get("instance", ""))
        headers = {"Origin": self.origin} if self.origin else None
        url = with_query(self.url, **params) if params else self.url
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                max_size=CLIENT_MAX_MESSAGE,
                compression=None,
                open_timeout=within_s,
                ssl=self.ssl_context if url.startswith("wss://") else None,
                ping_interval=20,
                ping_timeout=60,
                close_timeout=2,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
            raise RemoteRefused(
                f"The kernel refused the connection (HTTP {status}). {body}"
            ) from None
        except (TimeoutError, OSError, WebSocketException) as exc:
            raise RemoteClosed(
                f"Cannot reach the kernel at {urlsplit(self.url).netloc} ({exc}). Is "
                "`briotui serve` running?"
            ) from None
        self._ws = ws
        self._joined = False
        self.closed.clear()
        self.close_code = None
        self.close_reason = ""
        try:
            async with asyncio.timeout(within_s):
                while self.seq < 0 or not self.client_id or not self._joined:
                    self._handle(await ws.recv())
        except (ConnectionClosed, TimeoutError) as exc:
            await ws.close()
            raise RemoteClosed(f"The kernel closed the connection while joining ({exc}).") from None
        self._reader = asyncio.create_task(self._read(ws), name=f"remote {self.client_id}")
        self.joined.set()

    async def close(self) -> None:
        """Close the connection (pending commands fail with RemoteClosed)."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fail_pending("The connection was closed.")

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._handle(message)
        except ConnectionClosed:
            pass
        except RemoteProtocolError as exc:  # a gap or a broken patch: start over
            log.warning("mirror out of step (%s); rejoining for a snapshot", exc.message)
            self.resyncs += 1
            await ws.close()
            if self.rejoin and not self._closing:
                self.seq = -1
        self.close_code = ws.close_code
        self.close_reason = ws.close_reason or ""
        self._fail_pending(f"The connection closed ({self.close_code} {self.close_reason}).")
        self.joined.clear()
        self.closed.set()
        if self.rejoin and not self._closing:
            await self._rejoin()

    async def _rejoin(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                await self.connect(since=self.seq if self.seq >= 0 else None)
                return
            except RemoteRefused:
                return
            except RemoteClosed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _fail_pending(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RemoteClosed(why))
        self._pending.clear()

    # -- messages ------------------------------------------------------------------------

    def _handle(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            raise RemoteProtocolError("The kernel sent a message that is not JSON.") from None
        kind = message.get("type")
        if kind == "patch":
            seq = int(message["seq"])
            if seq != self.seq + 1:
                raise RemoteProtocolError(f"Patch {seq} arrived after {self.seq}: out of step.")
            try:
                jsonpatch.apply_patch(self.tree, message["ops"], in_place=True)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise RemoteProtocolError(f"Patch {seq} does not apply ({exc}).") from None
            self.seq = seq
            self._notify(StatePatch(seq, message["ops"]))
        elif kind == "snapshot":
            self.tree = message["state"]
            self.seq = int(message["seq"])
            self.snapshots += 1
            self._joined = True
            self._notify(None)
        elif kind == "resume":
            self._joined = True
        elif kind == "event":
            for listener in list(self.event_listeners):
                try:
                    listener(str(message.get("kind", "")), dict(message.get("event") or {}))
                except Exception:
                    log.exception("an event listener failed")
        elif kind == "hello":
            self.hello = dict(message)
            self.client_id = str(message.get("client", ""))
        elif kind == "result":
            future = self._pending.pop(message.get("id"), None)
            if future is not None and not future.done():
                if message.get("ok"):
                    future.set_result(message.get("value"))
                else:
                    future.set_exception(RemoteCommandFailed.of(message.get("error") or {}))

    def _notify(self, patch: StatePatch | None) -> None:
        self._changed.set()
        for listener in list(self.listeners):
            try:
                listener(patch)
            except Exception:
                log.exception("a mirror listener failed")

    # -- commands and waiting ------------------------------------------------------------

    async def command(self, name: str, within_s: float | None = None, **args: Any) -> Any:
        """Run a command on the kernel; its value.

        Raises:
            RemoteCommandFailed: the kernel refused or failed it (its error's kind,
                title and message).
            RemoteClosed: the connection closed before the result came.
        """
        return await self.send_raw(
            {"type": "command", "name": name, "args": args}, within_s=within_s
        )

    async def send_raw(self, message: Mapping[str, Any], *, within_s: float | None = None) -> Any:
        """Send one message with a fresh ``id`` and wait for its result (tests use it to
        send what :meth:`command` would not)."""
        ws = self._ws
        if ws is None:
            raise RemoteClosed("Not connected; call connect() first.")
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            await ws.send(dumps({**message, "id": ident}))
        except ConnectionClosed:
            self._pending.pop(ident, None)
            raise RemoteClosed("The connection closed before the command was sent.") from None
        async with asyncio.timeout(within_s):
            return await future


__all__ = ["Listener", "RemoteClient", "with_query"]
