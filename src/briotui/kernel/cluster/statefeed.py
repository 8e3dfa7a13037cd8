"""A project's state tree published on NATS, so observers elsewhere can follow it.

A kernel's :class:`~briotui.kernel.state.StateTree` is a snapshot plus numbered RFC 6902
patches (see :mod:`briotui.kernel.state`). :class:`StatePublisher` puts that feed on
NATS under a subject prefix (``brio.<namespace>`` from the ``[cluster]`` config);
:class:`StateFollower` is the other end, a live mirror like the WebSocket
:class:`~briotui.kernel.serve.client.RemoteClient`, read-only.

Subjects (``P`` is the prefix)
    ``P.state.patch``
        Each patch as ``{"i": INSTANCE, "seq": S, "ops": [...]}``, in order, and about
        once a second (and when nothing changed) a tick ``{"i": INSTANCE, "seq": S,
        "tick": true}`` naming the last patch published. ``INSTANCE`` is the publisher's
        random id: ``seq`` counts only for the publisher that numbered it (a restarted
        kernel starts again at 1).
    ``P.state.snapshot``
        Request/reply: any request is answered with ``{"i": INSTANCE, "seq": S, "state":
        TREE, "project": NAME, "state_version": N}`` (the tree including every patch up to
        ``S``) or ``{"error": {"kind", "title", "message"}}``.
    ``P.state.event``
        The streamed conversation (``{"kind": "ModelDelta", "event": {...}}``), which is not
        state, when the publisher was given the kernel's events.

Joining late, with no gap and no duplicate
    A follower subscribes to ``P.state.patch`` first (and waits until the server has the
    subscription), then asks for a snapshot. Patches that arrive before the reply are
    kept; once the snapshot (``seq`` S) is in, those up to S are dropped and the rest
    applied in order. Every patch after S was numbered after the snapshot was taken, so
    after the subscription existed: it reaches the follower. From then on a patch
    ``seq + 1`` is applied, an older one (a repeat) ignored, and a newer one (a gap: a
    message lost while NATS reconnected), another instance, a patch that does not apply,
    or a tick ahead of the mirror starts the same join again. A reconnect of the NATS
    connection does too (:meth:`StateFollower.connection_back`); the ticks catch what a
    missed callback would not.

Sizes
    NATS refuses a message over the server's ``max_payload`` (1 MB by default). A message
    larger than that (a big patch, most snapshots of a busy project) is sent in parts,
    each with the headers ``Brio-Part: i/n`` and ``Brio-Id``, and put back together by
    the follower. A snapshot over ``max_snapshot_bytes`` (64 MiB by default) is refused
    with a :class:`~briotui.kernel.errors.StateFeedTooLarge` error reply rather than sent;
    a follower never keeps more than its own bound of parts.

The publisher never blocks the kernel: patches are serialized on the kernel's loop and
queued for one writer task; when the queue passes its bound (NATS gone for a long time)
it is emptied and followers re-join from a snapshot when the feed is back. One
publisher per prefix: two kernels publishing the same project would make followers
start over and over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Protocol

import jsonpatch

from briotui.kernel import contract
from briotui.kernel.errors import (
    BrioError,
    ObserverReadOnly,
    StateFeedError,
    StateFeedRefused,
    StateFeedTooLarge,
    StateFeedUnavailable,
)
from briotui.kernel.state import PatchSink, Snapshot, StatePatch, Subscription

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSubscription

    from briotui.kernel.runtime.events import Event

log = logging.getLogger(__name__)

PATCH_SUBJECT: Final = "state.patch"
SNAPSHOT_SUBJECT: Final = "state.snapshot"
EVENT_SUBJECT: Final = "state.event"

DEFAULT_MAX_SNAPSHOT: Final = 64 * 1024 * 1024
"""The largest snapshot (JSON bytes) a publisher sends and a follower accepts."""

DEFAULT_QUEUE_LIMIT: Final = 20_000
"""How many messages may wait for NATS before the publisher drops them (followers
re-join from a snapshot)."""

DEFAULT_TICK_S: Final = 1.0
"""How often the publisher says which patch it published last."""

PART_MARGIN: Final = 1024
"""Bytes of a message kept free for the headers of a part."""

STREAMED_EVENTS: Final = frozenset({"ModelDelta", "ModelReply", "ModelReset", "ModelFallback"})
"""The kernel events published on ``P.state.event`` (the streamed conversation)."""

_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")

Listener = Callable[[StatePatch | None], None]
"""Called after each patch is applied (None after a snapshot replaced the tree)."""


def subjects(prefix: str) -> tuple[str, str, str]:
    """The patch, snapshot and event subjects under ``prefix``.

    Raises:
        StateFeedError: ``prefix`` is not a plain NATS subject (dot-separated tokens of
            letters, digits, ``-`` and ``_``; no wildcards, no spaces).
    """
    if not _PREFIX.fullmatch(prefix):
        raise StateFeedError(
            f"{prefix[:80]!r} is not a NATS subject prefix: use dot-separated names of "
            "letters, digits, '-' and '_' (e.g. 'brio.myproject').",
            title="Bad subject prefix",
        )
    return f"{prefix}.{PATCH_SUBJECT}", f"{prefix}.{SNAPSHOT_SUBJECT}", f"{prefix}.{EVENT_SUBJECT}"


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def part_limit(nc: NatsClient) -> int:
    """The largest body one message of ``nc`` may carry, headers of a part included."""
    return max(4096, int(nc.max_payload or 1024 * 1024) - PART_MARGIN)


def parts(data: bytes, limit: int, ident: str) -> Iterator[tuple[bytes, dict[str, str] | None]]:
    """``data`` as messages of at most ``limit`` bytes: itself, or numbered parts."""
    if len(data) <= limit:
        yield data, None
        return
    count = -(-len(data) // limit)
    for index in range(count):
        piece = data[index * limit : (index + 1) * limit]
        yield piece, {"Brio-Part": f"{index + 1}/{count}", "Brio-Id": ident}


class Reassembler:
    """Puts messages sent in :func:`parts` back together, within a bound.

    Args:
        max_bytes: The largest whole message kept; a larger one is dropped (and
            :attr:`refused` counts it).
        max_open: How many messages may be half-received at once (the oldest is dropped).
    """

    def __init__(self, max_bytes: int, max_open: int = 8) -> None:
        self.max_bytes = max_bytes
        self.max_open = max_open
        self.refused = 0
        self._open: dict[str, tuple[int, list[bytes], int]] = {}

    def add(self, data: bytes, headers: dict[str, str] | None) -> bytes | None:
        """The whole message once its last part is in (None until then, or if dropped)."""
        part = (headers or {}).get("Brio-Part")
        if part is None:
            if len(data) > self.max_bytes:
                self.refused += 1
                return None
            return data
        ident = (headers or {}).get("Brio-Id", "")
        try:
            index_text, count_text = part.split("/", 1)
            index, count = int(index_text), int(count_text)
        except ValueError:
            return None
        if index == 1:
            self._open.pop(ident, None)
            while len(self._open) >= self.max_open:
                self._open.pop(next(iter(self._open)))
            self._open[ident] = (count, [], 0)
        entry = self._open.get(ident)
        if entry is None or entry[0] != count or len(entry[1]) != index - 1:
            self._open.pop(ident, None)  # a part lost or out of order: drop it all
            return None
        size = entry[2] + len(data)
        if size > self.max_bytes:
            self._open.pop(ident, None)
            self.refused += 1
            return None
        entry[1].append(data)
        self._open[ident] = (count, entry[1], size)
        if index < count:
            return None
        del self._open[ident]
        return b"".join(entry[1])


class StateSource(Protocol):
    """The kernel's state feed as the publisher reads it (a :class:`StateTree`)."""

    def subscribe(
        self, sink: PatchSink, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> Subscription: ...

    def snapshot(self) -> Snapshot: ...


class EventSource(Protocol):
    """The kernel's events (an :class:`~briotui.kernel.runtime.events.EventBus`)."""

    def subscribe(self, sink: Callable[[Event], None]) -> Callable[[], None]: ...


# -- the publishing side -----------------------------------------------------------------------


class StatePublisher:
    """Publishes a kernel's state feed on NATS and answers snapshot requests.

    Args:
        state: The kernel's state tree.
        nc: A connected NATS client (its owner closes it).
        prefix: The subject prefix (``brio.<namespace>``).
        project: The project's name, sent with each snapshot.
        events: The kernel's events: the streamed conversation is published too.
        max_snapshot_bytes: The largest snapshot sent (a larger one is refused).
        queue_limit: How many messages may wait for NATS before they are dropped.
        tick_s: How often the last published ``seq`` is announced (0: never).
    """

    def __init__(
        self,
        state: StateSource,
        nc: NatsClient,
        prefix: str,
        *,
        project: str = "",
        events: EventSource | None = None,
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        tick_s: float = DEFAULT_TICK_S,
    ) -> None:
        self.patch_subject, self.snapshot_subject, self.event_subject = subjects(prefix)
        self.state = state
        self.nc = nc
        self.prefix = prefix
        self.project = project
        self.events = events
        self.max_snapshot_bytes = max_snapshot_bytes
        self.queue_limit = queue_limit
        self.tick_s = tick_s
        self.instance = secrets.token_hex(6)
        """This publisher's id: a follower's ``seq`` counts only for it."""
        self.published = 0
        """How many patches were handed to NATS."""
        self.dropped = 0
        """How many messages were dropped (queue full, or NATS refused them)."""
        self.snapshots = 0
        """How many snapshot requests were answered with the state."""
        self.refused = 0
        """How many snapshot requests were refused (the state over the bound)."""
        self._delivered = 0
        self._queue: deque[tuple[str, bytes, dict[str, str] | None]] = deque()
        self._wake = asyncio.Event()
        self._subscription: Subscription | None = None
        self._unsubscribe_events: Callable[[], None] | None = None
        self._responder: NatsSubscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Start publishing patches and answering snapshot requests (on this loop)."""
        loop = asyncio.get_running_loop()
        self._subscription = self.state.subscribe(self._on_patch, loop=loop)
        self._delivered = self._subscription.snapshot.seq
        self._loop = loop
        if self.events is not None:
            self._unsubscribe_events = self.events.subscribe(self._on_event_anywhere)
        self._responder = await self.nc.subscribe(self.snapshot_subject, cb=self._answer)
        await self.nc.flush()
        self._tasks.append(asyncio.create_task(self._write(), name="state feed writer"))
        if self.tick_s > 0:
            self._tasks.append(asyncio.create_task(self._tick(), name="state feed tick"))

    async def close(self) -> None:
        """Stop publishing (what is queued is sent first, briefly; the kernel runs on)."""
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._unsubscribe_events is not None:
            self._unsubscribe_events()
            self._unsubscribe_events = None
        if self._responder is not None:
            with contextlib.suppress(Exception):
                await self._responder.unsubscribe()
            self._responder = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while self._queue and not self.nc.is_closed:
                    self._wake.set()
                    await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)

    # -- patches and events ----------------------------------------------------------------

    def _on_patch(self, patch: StatePatch) -> None:
        """One patch from the tree (on the loop, in order): serialize it and queue it."""
        if patch.seq <= self._delivered:
            return
        self._delivered = patch.seq
        data = _dumps({"i": self.instance, "seq": patch.seq, "ops": patch.ops})
        self._enqueue(self.patch_subject, data, f"{self.instance}:{patch.seq}")
        self.published += 1

    def _on_event_anywhere(self, event: Event) -> None:
        """An event from any thread (a bus without a loop delivers in the publishing one)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop or self._loop is None:
            self._on_event(event)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody follows
                self._loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: Event) -> None:
        kind = type(event).__name__
        if kind not in STREAMED_EVENTS:
            return
        fields = dataclasses.asdict(event)
        fields.pop("prompt", None)  # what the agent sent: large, and not shown
        data = _dumps({"kind": kind, "event": fields})
        self._enqueue(self.event_subject, data, f"{self.instance}:e{next(self._ids)}")

    def _enqueue(self, subject: str, data: bytes, ident: str) -> None:
        if len(self._queue) >= self.queue_limit:
            self.dropped += len(self._queue)
            self._queue.clear()  # followers see the gap and re-join from a snapshot
            log.warning("state feed: NATS is not keeping up; dropped queued patches")
        for piece, headers in parts(data, part_limit(self.nc), ident):
            self._queue.append((subject, piece, headers))
        self._wake.set()

    async def _write(self) -> None:
        """The one writer: hands queued messages to NATS in order."""
        warned = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                subject, data, headers = self._queue.popleft()
                try:
                    await self.nc.publish(subject, data, headers=headers)
                    warned = False
                except Exception as exc:  # NATS closed, or its buffer full while reconnecting
                    self.dropped += 1
                    if not warned:
                        warned = True
                        log.warning("state feed: NATS refused a message (%s)", exc)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            data = _dumps({"i": self.instance, "seq": self._delivered, "tick": True})
            self._queue.append((self.patch_subject, data, None))
            self._wake.set()

    # -- snapshots -------------------------------------------------------------------------

    async def _answer(self, msg: Msg) -> None:
        """A snapshot request: the state now (in parts if needed), or why not."""
        if not msg.reply:
            return
        try:
            snapshot = self.state.snapshot()
            data = _dumps(
                {
                    "i": self.instance,
                    "seq": snapshot.seq,
                    "state": snapshot.tree,
                    "project": self.project,
                    "state_version": contract.STATE_VERSION,
                }
            )
            if len(data) > self.max_snapshot_bytes:
                self.refused += 1
                raise StateFeedTooLarge(
                    f"The project's state is {len(data) // 1024} KiB, over the feed's bound of "
                    f"{self.max_snapshot_bytes // 1024} KiB; it was not sent. Attach over "
                    "WebSocket (`briotui attach URL`) instead, or clear finished tasks.",
                )
        except BrioError as exc:
            data = _dumps({"error": exc.to_dict()})
        else:
            self.snapshots += 1
        ident = f"{self.instance}:s{next(self._ids)}"
        try:
            for piece, headers in parts(data, part_limit(self.nc), ident):
                await self.nc.publish(msg.reply, piece, headers=headers)
        except Exception as exc:
            log.warning("state feed: could not answer a snapshot request (%s)", exc)


async def publish_state(
    kernel_state: StateSource,
    nc: NatsClient,
    prefix: str,
    *,
    project: str = "",
    events: EventSource | None = None,
) -> StatePublisher:
    """Publish a kernel's state feed on ``nc`` under ``prefix`` (``briotui serve --nats``).

    Args:
        kernel_state: The kernel's state tree (``kernel.state``).
        nc: A connected NATS client.
        prefix: The project's subject prefix (``brio.<namespace>``).
        project: The project's name, shown by followers.
        events: The kernel's events, to publish the streamed conversation too.

    Returns:
        The running publisher; ``await publisher.close()`` stops it.
    """
    publisher = StatePublisher(kernel_state, nc, prefix, project=project, events=events)
    await publisher.start()
    return publisher


# -- the following side ------------------------------------------------------------------------


class StateFollower:
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

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, within_s: float = 30.0
    ) -> dict[str, Any]:
        """Wait until ``predicate(tree)`` holds; the tree.

        Raises:
            TimeoutError: it did not hold within ``within_s`` seconds.
        """
        async with asyncio.timeout(within_s):
            while not predicate(self.tree):
                self._changed.clear()
                await self._changed.wait()
        return self.tree

    async def wait_seq(self, seq: int, *, within_s: float = 30.0) -> None:
        """Wait until the mirror has applied patch ``seq``."""
        await self.wait_for(lambda _tree: self.seq >= seq, within_s=within_s)


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


__all__ = [
    "DEFAULT_MAX_SNAPSHOT",
    "EVENT_SUBJECT",
    "PATCH_SUBJECT",
    "SNAPSHOT_SUBJECT",
    "EventSource",
    "Listener",
    "Reassembler",
    "StateFollower",
    "StatePublisher",
    "StateSource",
    "connect_nats",
    "open_follower",
    "part_limit",
    "parts",
    "publish_state",
    "subjects",
]
