"""Messages between agents, through the kernel: bounded inboxes, grants, request/reply.

Every agent instance gets an :class:`Endpoint` from the kernel's :class:`Mesh`. An
endpoint sends to another agent by id, asks and waits for a reply, and takes the next
message from its inbox. The same endpoint serves both sides of the kernel:

* agent worker threads (host functions are synchronous): :meth:`Endpoint.send`,
  :meth:`Endpoint.request`, :meth:`Endpoint.receive`, :meth:`Endpoint.reply`;
* asyncio code on the kernel's loop: :meth:`Endpoint.send`, :meth:`Endpoint.arequest`,
  :meth:`Endpoint.areceive`, :meth:`Endpoint.reply` (``send`` and ``reply`` never block).

Messages stay in the process. A body is passed by reference, never serialized between
host endpoints: the :class:`Envelope` holds the object the sender gave. Inboxes are
bounded (a full inbox is an error, never a wait), bodies have a size limit, and a
message goes only between agents whose grants let them talk (both sides are asked).

The fast path is a ``deque`` and a plain lock per endpoint; a waiting receiver parks
on a lock of its own (a thread) or a future (a task), and an asyncio waiter is woken
with ``call_soon_threadsafe`` only when the sender is not on that loop.

One piece: the endpoints and the mesh share the delivery, back-pressure and shutdown
rules of one message bus; most of its length is :class:`Endpoint`'s blocking and async
variants of the same four calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Collection
from time import monotonic
from typing import Any, Final, NamedTuple

from briotui.kernel.errors import (
    MeshClosed,
    MeshDenied,
    MeshError,
    MeshMessageTooLarge,
    MeshPeerNotFound,
    MeshQueueFull,
    MeshTimeout,
)

_allocate_lock = threading.Lock
_running_loop = asyncio.events._get_running_loop

Peers = Callable[[str], bool] | Collection[str]
"""Whom an endpoint may talk to: a predicate on the other agent's id, or a set of ids."""

SizeOf = Callable[[object], int]
"""Measures a message body in bytes, for the size limit."""

DEFAULT_QUEUE_SIZE: Final = 1024
"""Messages an inbox holds before a send to it fails with :class:`MeshQueueFull`."""

DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20
"""The default size limit of one message body (1 MiB)."""


def anyone(_agent_id: str) -> bool:
    """A ``peers`` grant that lets an endpoint talk to every agent on the mesh."""
    return True


def body_size(body: object) -> int:
    """The size of a message body in bytes, as it would cross into a guest.

    Strings count their UTF-8 bytes (without encoding when the text is ASCII); bytes,
    bytearrays and memoryviews count their bytes; ``None`` is empty. Any other object
    (a host-side dict, say) counts as its JSON text, the form it takes on the wire.

    Args:
        body: The body a sender gave.

    Returns:
        Its size in bytes.
    """
    if type(body) is str:
        return len(body) if body.isascii() else len(body.encode("utf-8", "surrogatepass"))
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, memoryview):
        return body.nbytes
    if body is None:
        return 0
    return len(json.dumps(body, default=str, separators=(",", ":")))


class Envelope(NamedTuple):
    """One message on the mesh, as the recipient sees it.

    Immutable, like every message once sent. A named tuple rather than a frozen
    dataclass: it is made once per message, and a frozen dataclass's constructor costs
    about four times as much (measured: it was the largest single cost of a send). The
    body is the object the sender gave (never copied): treat it as read-only.
    """

    sender: str
    """The sending agent's id."""
    to: str
    """The recipient agent's id."""
    topic: str
    """What the message is about, e.g. "plan", "review", "merge"."""
    body: Any
    """The payload as given: usually JSON text from a guest, any object from the host."""
    id: int
    """A number unique on this mesh; a request's id is its correlation id."""
    wants_reply: bool = False
    """Whether the sender waits for an answer (answer with :meth:`Endpoint.reply`)."""
    in_reply_to: int | None = None
    """On a reply: the id of the request it answers."""


_tuple_new = tuple.__new__
"""Makes an :class:`Envelope` from all seven fields without the keyword handling."""


# A waiter is a callable that wakes one parked receiver.
_Wake = Callable[[], None]


def _resolve(fut: asyncio.Future[Any], value: object) -> None:
    if not fut.done():
        fut.set_result(value)


class _Slot:
    """Where a reply to one blocking (thread) request lands."""

    __slots__ = ("lock", "target", "value")

    def __init__(self, target: str) -> None:
        self.lock = _allocate_lock()
        self.lock.acquire()
        self.target = target
        self.value: Envelope | MeshError | None = None

    def fill(self, value: Envelope | MeshError) -> None:
        self.value = value
        self.lock.release()


class _AsyncSlot:
    """Where a reply to one awaited request lands (resolved on its loop)."""

    __slots__ = ("fut", "loop", "target")

    def __init__(self, loop: asyncio.AbstractEventLoop, target: str) -> None:
        self.loop = loop
        self.fut: asyncio.Future[Envelope | MeshError | None] = loop.create_future()
        self.target = target

    def fill(self, value: Envelope | MeshError) -> None:
        if _running_loop() is self.loop:
            _resolve(self.fut, value)
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                self.loop.call_soon_threadsafe(_resolve, self.fut, value)


class Endpoint:
    """One agent instance's place on the mesh. Get one from :meth:`Mesh.register`.

    Safe to use from any thread and from the event loop at once.
    """

    __slots__ = (
        "_closed",
        "_lock",
        "_max_bytes",
        "_mesh",
        "_pending",
        "_queue",
        "_queue_size",
        "_waiters",
        "agent_id",
        "allows",
    )

    def __init__(
        self,
        mesh: Mesh,
        agent_id: str,
        allows: Callable[[str], bool],
        queue_size: int,
        max_message_bytes: int,
    ) -> None:
        self._mesh = mesh
        self.agent_id = agent_id
        """The agent instance this endpoint belongs to."""
        self.allows = allows
        """The grant: whether this agent may talk to another agent id."""
        self._queue_size = queue_size
        self._max_bytes = max_message_bytes
        self._queue: deque[Envelope] = deque()
        self._lock = _allocate_lock()
        self._waiters: deque[_Wake] = deque()
        self._pending: dict[int, _Slot | _AsyncSlot] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"<Endpoint {self.agent_id!r} queued={len(self._queue)}>"

    @property
    def closed(self) -> bool:
        """Whether the endpoint was unregistered."""
        return self._closed

    def qsize(self) -> int:
        """How many messages wait in the inbox."""
        return len(self._queue)

    # -- sending ---------------------------------------------------------------------

    def _target(self, to: str, body: object) -> Endpoint:
        if self._closed:
            raise MeshClosed(
                f"Agent {self.agent_id!r} left the mesh; it can no longer send messages."
            )
        target = self._mesh._endpoints.get(to)
        if target is None:
            raise MeshPeerNotFound(
                f"No agent {to!r} is on the mesh. It may have finished already; "
                f"check the id (agents on the mesh: {self._mesh.describe_ids()})."
            )
        if not self.allows(to) or not target.allows(self.agent_id):
            raise MeshDenied(
                f"Agent {self.agent_id!r} may not talk to {to!r}: the grants of both "
                "agents must allow it (add the peer to the agent's mesh grant)."
            )
        limit = min(self._max_bytes, target._max_bytes)
        size = self._mesh._size_of(body)
        if size > limit:
            raise MeshMessageTooLarge(
                f"The message from {self.agent_id!r} to {to!r} is {size} bytes, over the "
                f"limit of {limit} bytes; send a smaller body (or a reference to a file)."
            )
        return target

    def _put(self, envelope: Envelope) -> None:
        """Queue ``envelope`` in this (the recipient's) inbox and wake one receiver."""
        with self._lock:
            if self._closed:
                raise MeshPeerNotFound(
                    f"Agent {self.agent_id!r} left the mesh before the message arrived."
                )
            if len(self._queue) >= self._queue_size:
                raise MeshQueueFull(
                    f"The inbox of {self.agent_id!r} is full ({self._queue_size} messages): "
                    "it is not reading them. Try again later or slow down."
                )
            self._queue.append(envelope)
            wake = self._waiters.popleft() if self._waiters else None
        if wake is not None:
            wake()

    def send(self, to: str, topic: str, body: object) -> Envelope:
        """Send ``body`` to agent ``to`` without waiting for an answer.

        Never blocks; callable from any thread and from the event loop.

        Args:
            to: The recipient's agent id.
            topic: What the message is about.
            body: The payload, passed by reference (not copied).

        Returns:
            The envelope as queued.

        Raises:
            MeshPeerNotFound: no agent ``to`` on the mesh.
            MeshDenied: the two agents' grants do not let them talk.
            MeshMessageTooLarge: ``body`` is over either side's size limit.
            MeshQueueFull: the recipient's inbox is full.
            MeshClosed: this endpoint was unregistered.
        """
        target = self._target(to, body)
        envelope: Envelope = _tuple_new(
            Envelope, (self.agent_id, to, topic, body, next(self._mesh._ids), False, None)
        )
        target._put(envelope)
        return envelope

    def request(self, to: str, topic: str, body: object, timeout_s: float) -> Envelope:
        """Send a request and block this thread until the reply (or the time limit).

        For agent worker threads. On the event loop, use :meth:`arequest`.

        Args:
            to: The recipient's agent id.
            topic: What the request is about.
            body: The payload, passed by reference.
            timeout_s: How long to wait for the reply, in seconds.

        Returns:
            The reply envelope (``in_reply_to`` is the request's id).

        Raises:
            MeshTimeout: no reply within ``timeout_s``.
            MeshPeerNotFound: no agent ``to``, or it left before replying.
            MeshDenied, MeshMessageTooLarge, MeshQueueFull, MeshClosed: as for
                :meth:`send`.
            MeshError: called on a running event loop (it would freeze the loop).
        """
        if _running_loop() is not None:
            raise MeshError(
                "Endpoint.request blocks and would freeze the event loop; "
                "use 'await endpoint.arequest(...)' on the loop."
            )
        target = self._target(to, body)
        rid = next(self._mesh._ids)
        slot = _Slot(to)
        pending = self._pending
        pending[rid] = slot
        try:
            target._put(_tuple_new(Envelope, (self.agent_id, to, topic, body, rid, True, None)))
        except BaseException:
            pending.pop(rid, None)
            raise
        if not slot.lock.acquire(timeout=max(timeout_s, 0.0)):
            # dict.pop is atomic: either we take the slot back (a timeout) or a
            # replier took it first and its fill() (a release) is on its way.
            if pending.pop(rid, None) is not None:
                raise MeshTimeout(
                    f"{to!r} did not reply to {self.agent_id!r}'s {topic!r} request "
                    f"within {timeout_s:g} s."
                )
            slot.lock.acquire()
        value = slot.value
        if isinstance(value, MeshError):
            raise value
        assert value is not None
        return value

    async def arequest(self, to: str, topic: str, body: object, timeout_s: float) -> Envelope:
        """Send a request and await the reply (or the time limit), on the event loop.

        Args:
            to: The recipient's agent id.
            topic: What the request is about.
            body: The payload, passed by reference.
            timeout_s: How long to wait for the reply, in seconds.

        Returns:
            The reply envelope.

        Raises:
            MeshTimeout, MeshPeerNotFound, MeshDenied, MeshMessageTooLarge,
            MeshQueueFull, MeshClosed: as for :meth:`request`.
        """
        target = self._target(to, body)
        loop = asyncio.get_running_loop()
        rid = next(self._mesh._ids)
        slot = _AsyncSlot(loop, to)
        pending = self._pending
        pending[rid] = slot
        try:
            target._put(_tuple_new(Envelope, (self.agent_id, to, topic, body, rid, True, None)))
        except BaseException:
            pending.pop(rid, None)
            raise

        def expire() -> None:
            if pending.pop(rid, None) is not None:
                _resolve(slot.fut, None)

        timer = loop.call_later(max(timeout_s, 0.0), expire)
        try:
            value = await slot.fut
        finally:
            timer.cancel()
            pending.pop(rid, None)
        if value is None:
            raise MeshTimeout(
                f"{to!r} did not reply to {self.agent_id!r}'s {topic!r} request "
                f"within {timeout_s:g} s."
            )
        if isinstance(value, MeshError):
            raise value
        return value

    def reply(self, request: Envelope, body: object) -> Envelope:
        """Answer ``request`` (a message with ``wants_reply``) with ``body``.

        Never blocks. A request implies the right to answer it, so the grants are not
        asked again; the size limit still applies.

        Args:
            request: The request envelope this endpoint received.
            body: The answer, passed by reference.

        Returns:
            The reply envelope as delivered.

        Raises:
            MeshError: ``request`` is not a request addressed to this endpoint.
            MeshPeerNotFound: the requester stopped waiting (timed out) or left.
            MeshMessageTooLarge: ``body`` is over either side's size limit.
        """
        if not request.wants_reply or request.to != self.agent_id:
            raise MeshError(
                f"Message {request.id} is not a request to {self.agent_id!r}; "
                "only requests (from request/arequest) can be replied to."
            )
        requester = self._mesh._endpoints.get(request.sender)
        limit = self._max_bytes if requester is None else min(self._max_bytes, requester._max_bytes)
        size = self._mesh._size_of(body)
        if size > limit:
            raise MeshMessageTooLarge(
                f"The reply from {self.agent_id!r} to {request.sender!r} is {size} bytes, "
                f"over the limit of {limit} bytes."
            )
        slot = None if requester is None else requester._pending.pop(request.id, None)
        if slot is None:
            raise MeshPeerNotFound(
                f"{request.sender!r} no longer waits for a reply to request {request.id} "
                f"({request.topic!r}): it timed out or left the mesh."
            )
        envelope: Envelope = _tuple_new(
            Envelope,
            (self.agent_id, request.sender, request.topic, body, next(self._mesh._ids), False,
             request.id),
        )  # fmt: skip
        slot.fill(envelope)
        return envelope

    # -- receiving -------------------------------------------------------------------

    def _closed_error(self) -> MeshClosed:
        return MeshClosed(f"Agent {self.agent_id!r} left the mesh; its inbox is closed.")

    def receive(self, timeout_s: float = 0.0) -> Envelope | None:
        """Take the next message, blocking this thread at most ``timeout_s``.

        For agent worker threads. On the event loop, use :meth:`areceive` (a zero
        timeout never blocks and is fine anywhere).

        Args:
            timeout_s: How long to wait for a message; 0 only looks.

        Returns:
            The oldest message, or None if none arrived in time.

        Raises:
            MeshClosed: the endpoint was unregistered (and its inbox is empty).
            MeshError: asked to wait on a running event loop.
        """
        lock = self._lock
        queue = self._queue
        with lock:
            if queue:
                return queue.popleft()
            if self._closed:
                raise self._closed_error()
        if timeout_s <= 0:
            return None
        if _running_loop() is not None:
            raise MeshError(
                "Endpoint.receive with a timeout blocks and would freeze the event loop; "
                "use 'await endpoint.areceive(...)' on the loop."
            )
        deadline = monotonic() + timeout_s
        while True:
            parked = _allocate_lock()
            parked.acquire()
            wake = parked.release
            with lock:
                if queue:
                    return queue.popleft()
                if self._closed:
                    raise self._closed_error()
                self._waiters.append(wake)
            remaining = deadline - monotonic()
            if remaining > 0 and parked.acquire(timeout=remaining):
                continue  # woken: look again
            with lock:
                try:
                    self._waiters.remove(wake)
                except ValueError:
                    pass  # woken just as the time ran out: look once more
                else:
                    return queue.popleft() if queue else None
                if queue:
                    return queue.popleft()
                if self._closed:
                    raise self._closed_error()
                return None

    async def areceive(self, timeout_s: float = 0.0) -> Envelope | None:
        """Take the next message, awaiting at most ``timeout_s``, on the event loop.

        Args:
            timeout_s: How long to wait for a message; 0 only looks.

        Returns:
            The oldest message, or None if none arrived in time.

        Raises:
            MeshClosed: the endpoint was unregistered (and its inbox is empty).
        """
        lock = self._lock
        queue = self._queue
        with lock:
            if queue:
                return queue.popleft()
            if self._closed:
                raise self._closed_error()
        if timeout_s <= 0:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            fut: asyncio.Future[bool] = loop.create_future()

            def wake(fut: asyncio.Future[bool] = fut) -> None:
                if _running_loop() is loop:
                    _resolve(fut, True)
                else:
                    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                        loop.call_soon_threadsafe(_resolve, fut, True)

            with lock:
                if queue:
                    return queue.popleft()
                if self._closed:
                    raise self._closed_error()
                self._waiters.append(wake)
            timer = loop.call_at(deadline, _resolve, fut, False)
            try:
                woken = await fut
            except BaseException:
                # Cancelled: if a sender already picked us, hand its wake-up on.
                with lock:
                    try:
                        self._waiters.remove(wake)
                        passed = None
                    except ValueError:
                        passed = self._waiters.popleft() if queue and self._waiters else None
                if passed is not None:
                    passed()
                raise
            finally:
                timer.cancel()
            if woken:
                continue
            with lock:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(wake)
                if queue:
                    return queue.popleft()
                if self._closed:
                    raise self._closed_error()
                return None

    def drain(self) -> list[Envelope]:
        """Take every message waiting in the inbox at once, without blocking."""
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
        return taken

    # -- closing ---------------------------------------------------------------------

    def _close(self) -> list[Envelope]:
        with self._lock:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            waiters = list(self._waiters)
            self._waiters.clear()
        for wake in waiters:
            wake()
        gone = MeshPeerNotFound(f"Agent {self.agent_id!r} left the mesh before replying.")
        for envelope in left:
            if envelope.wants_reply:
                self._mesh._fail_request(envelope.sender, envelope.id, gone)
        for rid in list(self._pending):
            slot = self._pending.pop(rid, None)
            if slot is not None:
                slot.fill(self._closed_error())
        return left


class Mesh:
    """The registry of endpoints: who is on the mesh, and delivery between them.

    Args:
        size_of: Measures a body for the size limit (default :func:`body_size`).
    """

    def __init__(self, *, size_of: SizeOf = body_size) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._size_of = size_of

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._endpoints

    def __len__(self) -> int:
        return len(self._endpoints)

    def ids(self) -> list[str]:
        """The agent ids on the mesh, sorted."""
        return sorted(self._endpoints)

    def describe_ids(self, limit: int = 8) -> str:
        """The agent ids on the mesh as short text for error messages."""
        ids = self.ids()
        more = f", and {len(ids) - limit} more" if len(ids) > limit else ""
        return (", ".join(repr(i) for i in ids[:limit]) or "none") + more

    def get(self, agent_id: str) -> Endpoint | None:
        """The endpoint of ``agent_id``, if it is on the mesh."""
        return self._endpoints.get(agent_id)

    def register(
        self,
        agent_id: str,
        *,
        peers: Peers,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> Endpoint:
        """Put agent instance ``agent_id`` on the mesh.

        Args:
            agent_id: The agent instance's id, unique on this mesh.
            peers: Whom it may talk to: a predicate on the other id (:func:`anyone`
                for everyone) or a collection of ids. A message needs both the
                sender's and the recipient's grant.
            queue_size: How many messages its inbox holds.
            max_message_bytes: The largest body it may send or receive.

        Returns:
            The endpoint.

        Raises:
            MeshError: the id is already registered, or a limit is not positive.
        """
        if queue_size < 1 or max_message_bytes < 0:
            raise MeshError(
                f"Mesh limits for {agent_id!r} must be positive "
                f"(queue_size={queue_size}, max_message_bytes={max_message_bytes})."
            )
        allows = peers if callable(peers) else frozenset(peers).__contains__
        with self._lock:
            if agent_id in self._endpoints:
                raise MeshError(
                    f"Agent {agent_id!r} is already on the mesh; unregister it first "
                    "or give the instance its own id."
                )
            endpoint = Endpoint(self, agent_id, allows, queue_size, max_message_bytes)
            self._endpoints[agent_id] = endpoint
        return endpoint

    def unregister(self, agent_id: str) -> list[Envelope]:
        """Take ``agent_id`` off the mesh.

        Its parked receivers wake with :class:`MeshClosed`, requests queued for it or
        waiting on its reply fail at once with :class:`MeshPeerNotFound`, and its own
        pending requests fail with :class:`MeshClosed`.

        Args:
            agent_id: The agent instance's id; unknown ids are ignored.

        Returns:
            The messages left unread in its inbox.
        """
        with self._lock:
            endpoint = self._endpoints.pop(agent_id, None)
        if endpoint is None:
            return []
        left = endpoint._close()
        gone = MeshPeerNotFound(f"Agent {agent_id!r} left the mesh before replying.")
        for other in list(self._endpoints.values()):
            for rid, slot in list(other._pending.items()):
                if slot.target == agent_id and other._pending.pop(rid, None) is not None:
                    slot.fill(gone)
        return left

    def _fail_request(self, requester: str, rid: int, error: MeshError) -> None:
        endpoint = self._endpoints.get(requester)
        if endpoint is None:
            return
        slot = endpoint._pending.pop(rid, None)
        if slot is not None:
            slot.fill(error)


__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_QUEUE_SIZE",
    "Endpoint",
    "Envelope",
    "Mesh",
    "Peers",
    "SizeOf",
    "anyone",
    "body_size",
]
