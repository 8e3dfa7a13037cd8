"""A project's state tree published on NATS, so observers elsewhere can follow it.

A kernel's :class:`~briotui.kernel.state.StateTree` is a snapshot plus numbered RFC 6902
patches (see :mod:`briotui.kernel.state`). :class:`StatePublisher` puts that feed on
NATS under a subject prefix (``brio.<namespace>`` from the ``[cluster]`` config);
:class:`~briotui.kernel.cluster.follower.StateFollower` is the other end, a live
mirror like the WebSocket :class:`~briotui.kernel.serve.client.RemoteClient`, read-only.

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
    connection does too (``StateFollower.connection_back``); the ticks catch what a
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

from briotui.kernel import contract
from briotui.kernel.errors import BrioError, StateFeedError, StateFeedTooLarge
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


__all__ = [
    "DEFAULT_MAX_SNAPSHOT",
    "EVENT_SUBJECT",
    "PATCH_SUBJECT",
    "SNAPSHOT_SUBJECT",
    "EventSource",
    "Reassembler",
    "StatePublisher",
    "StateSource",
    "part_limit",
    "parts",
    "publish_state",
    "subjects",
]
