"""The kernel's state as one JSON tree, published to front ends as numbered RFC 6902 patches.

Everything a front end shows (agents, tasks, sessions, usage) lives in one JSON-able
tree owned by :class:`StateTree`. Each mutation is applied to the tree and published as
a :class:`StatePatch`: RFC 6902 operations with a sequence number that grows by one per
patch. Patches are generated from the mutation itself, never by diffing trees.

A front end that joins late calls :meth:`StateTree.subscribe`: it gets a
:class:`Snapshot` (a deep copy and its ``seq``) and, atomically with it, every patch
after that ``seq``. Applying the patches in order to the snapshot (``jsonpatch``, or
any RFC 6902 implementation) always yields the current tree. The tree is serialized
once per sequence number (pickle: the values are plain JSON, checked on the way in),
under the lock; each subscriber unpickles its own copy outside it.

Mutations are thread-safe (agent worker threads report progress directly). High-rate
figures (progress, usage) can be set with ``coalesce=True``: repeated sets of the same
path are merged and published at most once per flush interval, by the kernel's loop.

:class:`~briotui.kernel.tasktree.TaskTree` (in its own module) is the typed layer over
``/tasks``; this module knows nothing of what the tree holds.

One piece: the tree, its patch numbering, coalescing and late-join subscriptions share
one lock and one sequence; splitting them would expose that lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from briotui.kernel.errors import StateError, StatePathError

log = logging.getLogger(__name__)

Json = Any
"""A JSON-able value: dict (str keys), list, str, int, float, bool or None."""

Op = dict[str, Any]
"""One RFC 6902 operation, e.g. ``{"op": "replace", "path": "/a/b", "value": 1}``."""

Path = str | Sequence[str | int]
"""A JSON Pointer (``"/tasks/t1/status"``) or its tokens (``["tasks", "t1", "status"]``)."""

DEFAULT_FLUSH_INTERVAL_S: Final = 0.05
"""How long coalesced sets wait before they are published (20 patches/s at most)."""


@dataclass(frozen=True, slots=True)
class StatePatch:
    """One published change: RFC 6902 operations and their sequence number.

    The operations are shared by every subscriber: read them, do not change them.
    """

    seq: int
    """1 for the first patch, then one more per patch, with no gaps."""
    ops: list[Op]
    """The operations, applied in order."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A deep copy of the tree and the sequence number of the last patch it includes."""

    seq: int
    tree: dict[str, Json]


PatchSink = Callable[[StatePatch], None]
"""Receives patches in ``seq`` order."""


@dataclass(frozen=True)
class Subscription:
    """A subscriber's place in the patch stream."""

    snapshot: Snapshot
    """The tree as it was just before the first patch this subscriber receives."""
    close: Callable[[], None] = field(repr=False)
    """Stop receiving patches."""


# -- JSON values and pointers --------------------------------------------------------------

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _clone(value: object, where: str = "") -> Json:
    """A deep copy of a JSON-able value (tuples become lists); refuses anything else."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        mapping: dict[Any, Any] = value  # type: ignore[assignment]
        out: dict[str, Json] = {}
        for key, item in mapping.items():
            if type(key) is not str:
                raise StateError(
                    f"State keys must be strings; got {key!r} at {where or '/'}. "
                    "Convert ids to str before storing them."
                )
            out[key] = _clone(item, f"{where}/{key}")
        return out
    if kind is list or kind is tuple:
        items: Sequence[Any] = value  # type: ignore[assignment]
        return [_clone(item, f"{where}/{i}") for i, item in enumerate(items)]
    raise StateError(
        f"State values must be JSON (dict, list, str, int, float, bool, None); got "
        f"{kind.__name__} at {where or '/'}. Store a plain representation instead."
    )


def _copy_tree(tree: dict[str, Json]) -> dict[str, Json]:
    copied: dict[str, Json] = json.loads(json.dumps(tree))
    return copied


def _escape(token: str | int) -> str:
    text = str(token)
    if "~" in text or "/" in text:
        text = text.replace("~", "~0").replace("/", "~1")
    return text


def pointer(tokens: Sequence[str | int]) -> str:
    """The JSON Pointer (RFC 6901) of a token path: ``["a", "b/c"]`` -> ``"/a/b~1c"``."""
    return "".join("/" + _escape(t) for t in tokens)


def tokens_of(path: Path) -> list[str | int]:
    """The tokens of ``path``: a JSON Pointer is split and unescaped, a sequence copied.

    Raises:
        StatePathError: a string path that does not start with ``/`` (and is not empty).
    """
    if isinstance(path, str):
        if not path:
            return []
        if path[0] != "/":
            raise StatePathError(
                f"State path {path!r} must be a JSON Pointer starting with '/', "
                "e.g. '/tasks/t1/status', or a list of keys."
            )
        return [
            t.replace("~1", "/").replace("~0", "~") if "~" in t else t for t in path[1:].split("/")
        ]
    return list(path)


def _index(container: list[Json], token: str | int, path: str, *, append: bool) -> int:
    if token == "-" and append:
        return len(container)
    try:
        index = token if type(token) is int else int(token)
    except ValueError:
        raise StatePathError(f"{path}: {token!r} is not a list index.") from None
    limit = len(container) if append else len(container) - 1
    if not 0 <= index <= limit:
        raise StatePathError(
            f"{path}: index {index} is outside the list (length {len(container)})."
        )
    return index


# -- the tree --------------------------------------------------------------------------------


class StateTree:
    """One JSON tree of kernel state, published as numbered RFC 6902 patches.

    Args:
        initial: The starting tree (copied); default ``{agents, tasks, sessions, usage}``.
        loop: The kernel's loop. With it, coalesced sets are flushed by a timer on the
            loop; without it, call :meth:`flush` yourself.
        flush_interval_s: How long coalesced sets wait before they are published.
    """

    def __init__(
        self,
        initial: Mapping[str, Json] | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
    ) -> None:
        base = (
            {"agents": {}, "tasks": {}, "sessions": {}, "usage": {}} if initial is None else initial
        )
        self._tree: dict[str, Json] = _clone(dict(base))
        self._lock = threading.RLock()
        self._seq = 0
        self._ops: list[Op] = []
        self._depth = 0
        self._pending: dict[str, Op] = {}
        self._sinks: list[PatchSink] = []
        self._delivering = False
        self._loop = loop
        self._flush_interval_s = flush_interval_s
        self._flush_scheduled = False
        self._frozen: tuple[int, bytes] | None = None
        """The tree serialized at a ``seq`` (late joiners at that ``seq`` share it)."""

    @property
    def seq(self) -> int:
        """The sequence number of the last published patch (0 before any)."""
        return self._seq

    # -- reading -----------------------------------------------------------------------

    def get(self, path: Path = "", default: Json = None) -> Json:
        """A deep copy of the value at ``path`` (``default`` if there is none).

        Args:
            path: Where to read; ``""`` is the whole tree.
            default: What to return when the path does not exist.
        """
        tokens = tokens_of(path)
        with self._lock:
            node: Json = self._tree
            for token in tokens:
                if type(node) is dict:
                    if token not in node:
                        return default
                    node = node[token]
                elif type(node) is list:
                    try:
                        index = token if type(token) is int else int(token)
                    except ValueError:
                        return default
                    if not 0 <= index < len(node):
                        return default
                    node = node[index]
                else:
                    return default
            return _clone(node)

    def exists(self, path: Path) -> bool:
        """Whether ``path`` exists in the tree."""
        missing = object()
        return self.get(path, missing) is not missing

    def snapshot(self) -> Snapshot:
        """A deep copy of the tree and its ``seq`` (pending coalesced sets flushed first)."""
        with self._lock:
            self._check_settled("snapshot()")
            self._flush_locked()
            seq, frozen = self._freeze_locked()
        return Snapshot(seq, pickle.loads(frozen))

    def _freeze_locked(self) -> tuple[int, bytes]:
        """The tree serialized at the current ``seq`` (cached until the next patch)."""
        cached = self._frozen
        if cached is None or cached[0] != self._seq or self._depth:
            cached = (self._seq, pickle.dumps(self._tree, protocol=pickle.HIGHEST_PROTOCOL))
            self._frozen = None if self._depth else cached
        return cached

    # -- subscribing -------------------------------------------------------------------

    def subscribe(
        self, sink: PatchSink, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> Subscription:
        """Start receiving patches, with a snapshot taken atomically.

        The sink receives every patch with ``seq > subscription.snapshot.seq``, in
        order, with no gaps. Without ``loop`` it is called in the mutating thread,
        under the tree's lock: keep it quick and never mutate the tree from it. With
        ``loop`` it is called on that loop (``call_soon_threadsafe``, which keeps the
        order).

        Args:
            sink: Receives each :class:`StatePatch`.
            loop: Deliver on this event loop instead of the mutating thread.

        Returns:
            The snapshot and a ``close`` to unsubscribe.
        """
        if loop is not None:
            target = loop

            def deliver(patch: StatePatch) -> None:
                target.call_soon_threadsafe(sink, patch)

            wrapped: PatchSink = deliver
        else:
            wrapped = sink
        with self._lock:
            self._check_settled("subscribe()")
            self._flush_locked()
            seq, frozen = self._freeze_locked()
            self._sinks = [*self._sinks, wrapped]
        snap = Snapshot(seq, pickle.loads(frozen))

        def close() -> None:
            with self._lock:
                self._sinks = [s for s in self._sinks if s is not wrapped]

        return Subscription(snap, close)

    def _publish(self, ops: list[Op]) -> None:
        """Number ``ops`` as the next patch and hand it to every sink (lock held)."""
        self._seq += 1
        patch = StatePatch(self._seq, ops)
        self._delivering = True
        try:
            for sink in self._sinks:
                try:
                    sink(patch)
                except RuntimeError as exc:
                    if "closed" in str(exc):  # its loop is gone: drop it
                        self._sinks = [s for s in self._sinks if s is not sink]
                    else:
                        log.exception("state subscriber %r failed on patch %d", sink, patch.seq)
                except Exception:  # a broken subscriber must not break the kernel
                    log.exception("state subscriber %r failed on patch %d", sink, patch.seq)
        finally:
            self._delivering = False

    # -- mutating ----------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the mutations inside the block into one patch.

        Other threads' mutations wait until the block ends. If the block raises, the
        mutations already applied are still published (the tree keeps them).
        """
        with self._lock:
            self._check_writable()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._end_locked()

    def _check_writable(self) -> None:
        if self._delivering:
            raise StateError(
                "A state subscriber tried to change the state while a patch was being "
                "delivered; subscribe with loop=... and change it from the loop."
            )

    def _check_settled(self, what: str) -> None:
        if self._depth or self._delivering:
            raise StateError(
                f"{what} inside a batch or a patch delivery would see changes that are not "
                "published yet; call it outside the batch (or from the loop)."
            )

    def _end_locked(self) -> None:
        """Publish the ops collected so far (after any pending coalesced sets)."""
        if self._ops:
            ops = self._ops
            self._ops = []
            if self._pending:
                ops = [*self._pending.values(), *ops]
                self._pending.clear()
            self._publish(ops)

    def _parent(
        self, tokens: list[str | int], path: str, *, parents: bool
    ) -> tuple[dict[str, Json] | list[Json], str | int]:
        if not tokens:
            raise StatePathError("The root of the state tree cannot be replaced or removed.")
        node: Json = self._tree
        for depth, token in enumerate(tokens[:-1]):
            if type(node) is dict:
                key = str(token)
                child = node.get(key)
                if child is None and key not in node:
                    if not parents:
                        raise StatePathError(
                            f"{path}: {pointer(tokens[: depth + 1])} does not exist "
                            "(set the parent first, or pass parents=True)."
                        )
                    node[key] = {}
                    self._ops.append(
                        {"op": "add", "path": pointer(tokens[: depth + 1]), "value": {}}
                    )
                    child = node[key]
                node = child
            elif type(node) is list:
                node = node[_index(node, token, path, append=False)]
            else:
                raise StatePathError(
                    f"{path}: {pointer(tokens[: depth + 1])} is a {type(node).__name__}, "
                    "not an object or a list."
                )
        if type(node) is not dict and type(node) is not list:
            raise StatePathError(
                f"{path}: {pointer(tokens[:-1])} is a {type(node).__name__}, "
                "not an object or a list."
            )
        return node, tokens[-1]

    def set(
        self, path: Path, value: Json, *, coalesce: bool = False, parents: bool = False
    ) -> None:
        """Set the value at ``path`` (an ``add`` or ``replace`` operation).

        Args:
            path: Where; a list element by its index (``"-"`` appends).
            value: A JSON-able value; it is copied.
            coalesce: Merge with other coalesced sets of the same path and publish at the
                next flush (for progress and usage updates).
            parents: Create missing parent objects instead of failing.

        Raises:
            StatePathError: the parent does not exist, or the path does not fit.
            StateError: ``value`` is not JSON-able.
        """
        tokens = tokens_of(path)
        where = pointer(tokens)
        tree_value = _clone(value, where)
        with self._lock:
            self._check_writable()
            if coalesce and self._depth == 0 and not parents:
                self._set_coalesced(tokens, where, tree_value)
                return
            try:
                parent, last = self._parent(tokens, where, parents=parents)
                if type(parent) is dict:
                    key = str(last)
                    op = "replace" if key in parent else "add"
                    parent[key] = tree_value
                else:
                    assert isinstance(parent, list)
                    index = _index(parent, last, where, append=True)
                    if index == len(parent):
                        op = "add"
                        parent.append(tree_value)
                    else:
                        op = "replace"
                        parent[index] = tree_value
                self._ops.append({"op": op, "path": where, "value": _clone(tree_value)})
            finally:
                if self._depth == 0:
                    self._end_locked()

    def _set_coalesced(self, tokens: list[str | int], where: str, tree_value: Json) -> None:
        parent, last = self._parent(tokens, where, parents=False)
        if type(parent) is dict:
            parent[str(last)] = tree_value
            op_name = "add"  # valid whether or not the member existed by flush time
        else:
            assert isinstance(parent, list)
            index = _index(parent, last, where, append=False)
            parent[index] = tree_value
            op_name = "replace"
        pending = self._pending
        if pending:
            # A newer value of `where` supersedes earlier sets of it and of its children.
            pending.pop(where, None)
            prefix = where + "/"
            for stale in [p for p in pending if p.startswith(prefix)]:
                del pending[stale]
        pending[where] = {"op": op_name, "path": where, "value": _clone(tree_value)}
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        loop = self._loop
        if loop is None or self._flush_scheduled:
            return
        self._flush_scheduled = True
        try:
            loop.call_soon_threadsafe(loop.call_later, self._flush_interval_s, self._timed_flush)
        except RuntimeError:  # the loop is closed: flush() by hand from now on
            self._flush_scheduled = False

    def _timed_flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            self._flush_locked()

    def flush(self) -> None:
        """Publish pending coalesced sets now (the loop's timer does this on its own)."""
        with self._lock:
            self._check_writable()
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending and self._depth == 0 and not self._delivering:
            ops = list(self._pending.values())
            self._pending.clear()
            self._publish(ops)

    def remove(self, path: Path) -> Json:
        """Remove the value at ``path`` (a ``remove`` operation).

        Returns:
            The removed value.

        Raises:
            StatePathError: nothing is at ``path``.
        """
        tokens = tokens_of(path)
        where = pointer(tokens)
        with self._lock:
            self._check_writable()
            parent, last = self._parent(tokens, where, parents=False)
            if type(parent) is dict:
                key = str(last)
                if key not in parent:
                    raise StatePathError(f"{where} does not exist; nothing to remove.")
                removed = parent.pop(key)
            else:
                assert isinstance(parent, list)
                removed = parent.pop(_index(parent, last, where, append=False))
            self._ops.append({"op": "remove", "path": where})
            if self._depth == 0:
                self._end_locked()
            return _clone(removed)

    def add_to_list(self, path: Path, value: Json, *, index: int | None = None) -> int:
        """Insert ``value`` into the list at ``path`` (append unless ``index`` is given).

        Returns:
            The index the value now has.

        Raises:
            StatePathError: ``path`` is not a list, or ``index`` is outside it.
        """
        tokens = tokens_of(path)
        return self._insert([*tokens, "-" if index is None else index], value)

    def _insert(self, tokens: list[str | int], value: Json) -> int:
        where = pointer(tokens)
        tree_value = _clone(value, where)
        with self._lock:
            self._check_writable()
            parent, last = self._parent(tokens, where, parents=False)
            if type(parent) is not list:
                raise StatePathError(f"{pointer(tokens[:-1])} is not a list.")
            at = _index(parent, last, where, append=True)
            parent.insert(at, tree_value)
            self._ops.append({"op": "add", "path": where, "value": _clone(tree_value)})
            if self._depth == 0:
                self._end_locked()
            return at

    def merge(self, path: Path, values: Mapping[str, Json]) -> None:
        """Set several members of the object at ``path`` in one patch.

        Raises:
            StatePathError: ``path`` is not an object.
        """
        base = tokens_of(path)
        with self.batch():
            for key, value in values.items():
                self.set([*base, key], value)

    def update(
        self,
        path: Path,
        change: Callable[[Json], Json],
        *,
        default: Json = None,
        coalesce: bool = False,
        parents: bool = False,
    ) -> Json:
        """Read, change and set the value at ``path`` atomically (no other writer between).

        Args:
            path: Where.
            change: Gets a copy of the current value (``default`` if missing) and returns
                the new one. It runs under the tree's lock: keep it quick.
            default: The current value when there is none.
            coalesce: As for :meth:`set`.
            parents: As for :meth:`set`.

        Returns:
            The new value.
        """
        tokens = tokens_of(path)
        with self._lock:
            new = change(self.get(tokens, default))
            self.set(tokens, new, coalesce=coalesce, parents=parents)
            return new

    def add_number(
        self, path: Path, delta: float, *, coalesce: bool = False, parents: bool = False
    ) -> float:
        """Add ``delta`` to the number at ``path`` (missing counts as 0), atomically.

        Returns:
            The new value.

        Raises:
            StatePathError: the value at ``path`` is not a number.
        """
        tokens = tokens_of(path)

        def add(current: Json) -> Json:
            if type(current) not in (int, float):
                raise StatePathError(f"{pointer(tokens)} holds {current!r}, not a number.")
            return current + delta

        new: float = self.update(tokens, add, default=0, coalesce=coalesce, parents=parents)
        return new


__all__ = [
    "DEFAULT_FLUSH_INTERVAL_S",
    "Json",
    "Op",
    "PatchSink",
    "Path",
    "Snapshot",
    "StatePatch",
    "StateTree",
    "Subscription",
    "pointer",
    "tokens_of",
]
