"""The observer's end of a project's state feed on NATS: a live, read-only mirror.

:class:`StateFollower` joins the feed :mod:`briotui.kernel.cluster.statefeed` describes
(subscribe to the patches, ask for a snapshot, apply what came meanwhile, join again on a
gap, another publisher, a tick ahead of it or a reconnect) and offers what the UI's
:class:`~briotui.kernel.serve.remote.RemoteKernel` reads of a client. :func:`connect_nats`
opens a connection that fails clearly at once (a wrong token, no server) and then
reconnects on its own; :func:`open_follower` puts both together for ``briotui attach
--nats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import jsonpatch

from briotui.kernel.cluster.statefeed import DEFAULT_MAX_SNAPSHOT, Reassembler, subjects
from briotui.kernel.errors import (
    BrioError,
    ObserverReadOnly,
    StateFeedError,
    StateFeedRefused,
    StateFeedTooLarge,
    StateFeedUnavailable,
)
from briotui.kernel.serve.mirror import MirrorWaits
from briotui.kernel.state import StatePatch

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSubscription

log = logging.getLogger(__name__)

Listener = Callable[[StatePatch | None], None]
"""Called after each patch is applied (None after a snapshot replaced the tree)."""


class StateFollower(MirrorWaits):
    """A live, read-only mirror of a project's state followed over NATS.

    It offers what the UI's remote kernel reads of a WebSocket
    :class:`~briotui.kernel.serve.client.RemoteClient` (``tree``, ``seq``, ``hello``,
    ``listeners``, ``event_listeners``, ``closed``, ``joined``, ``wait_for``); its
    :meth:`command` refuses everything, since an observer cannot submit or decide.

    Args:
        nc: A connected NATS client (see :func:`open_follower` for one that reconnects
            and tells the follower).
        prefix: The project's subject prefix.
        within_s: How long a snapshot request may take.
        max_snapshot_bytes: The largest snapshot accepted.
        buffer_limit: How many patches are kept while a snapshot is awaited.
    """

    def __init__(
        self,
        nc: NatsClient,
        prefix: str,
        *,
        within_s: float = 5.0,
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT,
        buffer_limit: int = 10_000,
    ) -> None:
        self.patch_subject, self.snapshot_subject, self.event_subject = subjects(prefix)
        self.nc = nc
        self.prefix = prefix
        self.within_s = within_s
        self.max_snapshot_bytes = max_snapshot_bytes
        self.buffer_limit = buffer_limit
        self.tree: dict[str, Any] = {}
        self.seq = -1
        """The ``seq`` the mirror is at (-1 before the first snapshot)."""
        self.instance = ""
        """The id of the publisher the mirror follows."""
        self.hello: dict[str, Any] = {}
        """What the last snapshot said of the project (``project``, ``state_version``)."""
        self.client_id = f"observer-{secrets.token_hex(3)}"
        self.snapshots = 0
        """How many snapshots were applied (1, plus one per re-join)."""
        self.resyncs = 0
        """How often the mirror was out of step (a gap, another publisher, a reconnect)
        and joined again from a snapshot."""
        self.listeners: list[Listener] = []
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with each streamed kernel event: its class name and its fields."""
        self.closed = asyncio.Event()
        """Set while the mirror is not following (NATS down, no publisher answering)."""
        self.closed.set()
        self.joined = asyncio.Event()
        """Set while the mirror follows the feed."""
        self._buffer: list[tuple[str, int, list[dict[str, Any]]]] = []
        self._syncing = False
        self._sync_task: asyncio.Task[None] | None = None
        self._subs: list[NatsSubscription] = []
        self._patches = Reassembler(max_snapshot_bytes)
        self._changed = asyncio.Event()
        self._closing = False

    # -- joining ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe and join: the snapshot, then the patches after it.

        Raises:
            StateFeedUnavailable: no kernel answered a snapshot request in time.
            StateFeedTooLarge: the publisher refused the snapshot as too large.
        """
        self._subs.append(await self.nc.subscribe(self.patch_subject, cb=self._on_message))
        self._subs.append(await self.nc.subscribe(self.event_subject, cb=self._on_event))
        await self.nc.flush()  # the server has the subscriptions before the snapshot is taken
        self._syncing = True
        await self._join()

    async def close(self) -> None:
        """Stop following (the NATS connection is its owner's to close)."""
        self._closing = True
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        self.joined.clear()
        self.closed.set()

    def connection_lost(self) -> None:
        """The NATS connection dropped: not following until it is back."""
        self.joined.clear()
        self.closed.set()

    def connection_back(self) -> None:
        """The NATS connection is back: join again (messages were lost meanwhile)."""
        self._resync("the NATS connection came back")

    async def _join(self) -> None:
        """Ask for a snapshot and apply the patches kept meanwhile (``_syncing`` is set).

        Raises:
            StateFeedUnavailable / StateFeedTooLarge / StateFeedError: as :meth:`start`.
        """
        while True:
            reply = await self._request_snapshot()
            self.tree = reply["state"]
            self.seq = int(reply["seq"])
            self.instance = str(reply["i"])
            self.hello = {
                "project": str(reply.get("project", "")),
                "state_version": reply.get("state_version"),
                "instance": self.instance,
            }
            self.snapshots += 1
            kept, self._buffer = self._buffer, []
            in_step = True
            for instance, seq, ops in kept:
                if instance != self.instance or seq <= self.seq:
                    continue
                if seq != self.seq + 1 or not self._apply(seq, ops, notify=False):
                    in_step = False
                    break
            if in_step:
                self._syncing = False
                self._notify(None)
                self.closed.clear()
                self.joined.set()
                return
            self.resyncs += 1  # a patch was lost between the snapshot and now: again

    async def _request_snapshot(self) -> dict[str, Any]:
        inbox = self.nc.new_inbox()
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        parts_in = Reassembler(self.max_snapshot_bytes, max_open=1)

        async def on_reply(msg: Msg) -> None:
            if reply.done():
                return
            if not msg.data and (msg.headers or {}).get("Status") == "503":
                reply.set_exception(self._no_publisher())
                return
            whole = parts_in.add(msg.data, msg.headers)
            if whole is not None:
                reply.set_result(whole)
            elif parts_in.refused:
                reply.set_exception(self._too_large())

        sub = await self.nc.subscribe(inbox, cb=on_reply)
        try:
            await self.nc.publish(self.snapshot_subject, b"{}", reply=inbox)
            try:
                async with asyncio.timeout(self.within_s):
                    data = await reply
            except TimeoutError:
                raise self._no_publisher() from None
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        try:
            message = json.loads(data)
        except ValueError:
            raise StateFeedError("The kernel's snapshot reply is not JSON.") from None
        if not isinstance(message, dict):
            raise StateFeedError("The kernel's snapshot reply is not a JSON object.")
        if "error" in message:
            error = message["error"] or {}
            cls = (
                StateFeedTooLarge if error.get("kind") == StateFeedTooLarge.kind else StateFeedError
            )
            raise cls(str(error.get("message", "")), title=str(error.get("title") or "") or None)
        if not isinstance(message.get("state"), dict) or not isinstance(message.get("seq"), int):
            raise StateFeedError("The kernel's snapshot reply lacks its state or its seq.")
        return message

    def _no_publisher(self) -> StateFeedUnavailable:
        return StateFeedUnavailable(
            f"No kernel answers on {self.snapshot_subject} within {self.within_s:g} s. Is "
            "`briotui serve --nats` running for this project, with the same [cluster] "
            "namespace?"
        )

    def _too_large(self) -> StateFeedTooLarge:
        return StateFeedTooLarge(
            f"The kernel's snapshot is over this observer's bound of "
            f"{self.max_snapshot_bytes // 1024} KiB; attach over WebSocket instead."
        )

    def _resync(self, why: str) -> None:
        """Join again from a snapshot, in the background (patches are kept meanwhile)."""
        if self._closing:
            return
        if self._syncing and self._sync_task is not None and not self._sync_task.done():
            return
        log.info("state feed %s: joining again (%s)", self.prefix, why)
        self.resyncs += 1
        self._syncing = True
        self.joined.clear()
        self._sync_task = asyncio.get_running_loop().create_task(
            self._rejoin(), name="state feed rejoin"
        )

    async def _rejoin(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                await self._join()
                return
            except BrioError as exc:
                log.info("state feed %s: cannot join yet (%s)", self.prefix, exc.message)
                self.closed.set()
            except Exception as exc:  # NATS reconnecting: try again shortly
                log.info("state feed %s: cannot join yet (%s)", self.prefix, exc)
                self.closed.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # -- messages --------------------------------------------------------------------------

    async def _on_message(self, msg: Msg) -> None:
        data = self._patches.add(msg.data, msg.headers)
        if data is None:
            return
        try:
            message = json.loads(data)
            instance, seq = str(message["i"]), int(message["seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("state feed %s: a message that does not parse was ignored", self.prefix)
            return
        if message.get("tick"):
            if not self._syncing and (instance != self.instance or seq > self.seq):
                self._resync(f"the kernel is at {seq}, the mirror at {self.seq}")
            return
        ops = message.get("ops")
        if not isinstance(ops, list):
            return
        if self._syncing:
            if len(self._buffer) >= self.buffer_limit:
                self._buffer.clear()  # the join will see a gap and start over
            self._buffer.append((instance, seq, ops))
            return
        if instance != self.instance:
            self._buffer.append((instance, seq, ops))
            self._resync("another kernel instance publishes")
        elif seq <= self.seq:
            return  # already in the mirror
        elif seq != self.seq + 1:
            self._buffer.append((instance, seq, ops))
            self._resync(f"patch {seq} came after {self.seq}")
        elif not self._apply(seq, ops, notify=True):
            self._resync(f"patch {seq} does not apply")

    def _apply(self, seq: int, ops: list[dict[str, Any]], *, notify: bool) -> bool:
        try:
            jsonpatch.apply_patch(self.tree, ops, in_place=True)
        except Exception:  # any patch that does not apply: the join from a snapshot mends it
            return False
        self.seq = seq
        if notify:
            self._notify(StatePatch(seq, ops))
        return True

    async def _on_event(self, msg: Msg) -> None:
        try:
            message = json.loads(msg.data)
            kind, fields = str(message["kind"]), dict(message["event"])
        except (ValueError, KeyError, TypeError):
            return
        for listener in list(self.event_listeners):
            try:
                listener(kind, fields)
            except Exception:
                log.exception("an event listener failed")

    def _notify(self, patch: StatePatch | None) -> None:
        self._changed.set()
        for listener in list(self.listeners):
            try:
                listener(patch)
            except Exception:
                log.exception("a mirror listener failed")

    # -- what an attached client offers ------------------------------------------------------

    async def command(self, name: str, within_s: float | None = None, **args: Any) -> Any:
        """Refused: an observer only watches.

        Raises:
            ObserverReadOnly: always, naming what the command would have done.
        """
        raise self.refusal(name)

    @staticmethod
    def refusal(name: str) -> ObserverReadOnly:
        """The error for command ``name``: an observer cannot run it, and what to do."""
        return ObserverReadOnly(
            f"This TUI follows the project over NATS as a read-only observer, so it cannot "
            f"{_VERBS.get(name, 'run ' + repr(name))}. Attach to the kernel itself "
            "(`briotui attach URL`, the URL `briotui serve` printed) to do that."
        )


_VERBS: Final = {
    "submit": "submit a request",
    "cancel": "cancel a task",
    "decide": "accept or reject changes",
    "commit": "commit a session",
    "rollback": "roll back a session",
    "discard": "discard a session",
    "revise": "ask for a revision",
    "resolve": "resolve a conflict",
    "retest": "run the tests",
    "answer": "answer a prompt",
    "session": "read a session's diff (only the state is published on NATS)",
    "sessions": "list the sessions (only the state is published on NATS)",
    "test_run": "read a test run (only the state is published on NATS)",
    "transcript": "read a stored transcript (only the state is published on NATS)",
    "verify_commit": "check a commit",
}


# -- connecting --------------------------------------------------------------------------------


def _nats_errors(exc: BaseException, url: str) -> BrioError:
    """A user-facing error for a failed NATS connect."""
    text = str(exc)
    if "Authorization" in text or "authorization" in text or "Authentication" in text:
        return StateFeedRefused(
            f"The NATS server at {_where(url)} refused the token. Check --token-file (or the "
            "[cluster] token) against the server's."
        )
    return StateFeedUnavailable(
        f"Cannot reach NATS at {_where(url)} ({text or type(exc).__name__}). Is the server "
        "running, and the URL right (nats://HOST:4222)?"
    )


def _where(url: str) -> str:
    """``host:port`` of a NATS URL (never its credentials)."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].split("/", 1)[0]


async def connect_nats(
    url: str,
    *,
    token: str | None = None,
    name: str = "briotui",
    within_s: float = 5.0,
    on_lost: Callable[[], None] | None = None,
    on_back: Callable[[], None] | None = None,
) -> NatsClient:
    """A NATS connection that reconnects on its own, or a clear error at once.

    The first connection is tried once (a wrong token or an unreachable server is an
    error now, not endless retries); once connected, the client reconnects forever.
    nats-py's own error reports (with tracebacks) go to the debug log.

    Raises:
        StateFeedRefused: the server refused the token.
        StateFeedUnavailable: the server cannot be reached.
    """
    import nats

    if not url.startswith(("nats://", "tls://")):
        raise StateFeedUnavailable(
            f"{_where(url)[:80]!r} is not a NATS URL; give nats://HOST:4222 (or tls://...).",
            title="Not a NATS URL",
        )

    async def quiet(exc: Exception) -> None:
        log.debug("nats: %s", exc)

    async def lost() -> None:
        if on_lost is not None:
            on_lost()

    async def back() -> None:
        if on_back is not None:
            on_back()

    seen: list[Exception] = []

    async def note(exc: Exception) -> None:
        seen.append(exc)

    try:
        probe = await nats.connect(
            url,
            token=token,
            name=name,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # nats-py: 0 would retry an unreachable server forever
            reconnect_time_wait=0.1,
            connect_timeout=within_s,
            error_cb=note,
        )
    except Exception as exc:  # nats-py raises its own errors and OSErrors alike
        raise _nats_errors(seen[-1] if seen else exc, url) from None
    await probe.close()
    try:
        nc: NatsClient = await nats.connect(
            url,
            token=token,
            name=name,
            connect_timeout=within_s,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=quiet,
            disconnected_cb=lost,
            reconnected_cb=back,
        )
    except Exception as exc:
        raise _nats_errors(exc, url) from None
    return nc


async def open_follower(
    url: str, prefix: str, *, token: str | None = None, within_s: float = 5.0
) -> StateFollower:
    """Connect to NATS and follow the project published under ``prefix``.

    The follower owns its connection: :meth:`StateFollower.close` closes it too.

    Raises:
        StateFeedRefused / StateFeedUnavailable: see :func:`connect_nats` and
            :meth:`StateFollower.start`.
    """
    holder: list[StateFollower] = []
    nc = await connect_nats(
        url,
        token=token,
        name="briotui-observer",
        within_s=within_s,
        on_lost=lambda: holder[0].connection_lost() if holder else None,
        on_back=lambda: holder[0].connection_back() if holder else None,
    )
    follower = _OwningFollower(nc, prefix, within_s=within_s)
    holder.append(follower)
    try:
        await follower.start()
    except BaseException:
        await nc.close()
        raise
    return follower


class _OwningFollower(StateFollower):
    """A follower that closes its NATS connection when it closes."""

    async def close(self) -> None:
        await super().close()
        with contextlib.suppress(Exception):
            await self.nc.close()


__all__ = ["Listener", "StateFollower", "connect_nats", "open_follower"]
