"""Recording a run journal: every host call of an agent run, in order, into the store.

A WebAssembly agent is deterministic given what its imports return, so the results of
its host calls (model replies, file reads, clock readings, command results) are all a
replay needs. Each run gets a :class:`RunJournal`; its dispatch (on
:attr:`CallContext.dispatch`, wrapping whatever dispatch was there) carries the call out
and appends ``(seq, iface, name, args, result)`` to an in-memory list. That append is
all the agent's thread pays for an ordinary call: digests, JSON encoding and the SQLite
writes happen on the :class:`JournalWriter`'s thread in batches (every
:data:`FLUSH_INTERVAL_S`).

Expensive results must survive a crash: after a call to an interface in
:data:`DURABLE_IFACES` (a model reply, a tool, a command, a subtask, the user's answer)
the agent's thread writes everything pending and commits it before the agent sees the
result, so a SIGKILL right after loses nothing a resume would have to pay for again.

Results whose JSON is over :data:`BLOB_BOUND` bytes (a large file read, the agent's own
code) go to the blob store by content hash, so a journal row stays small and the same
content is kept once.

What the agent sees from WASI (``wasi:clocks``, ``wasi:random``) does not go through
the host-call seam, so it is not journaled; see :mod:`briotui.kernel.journal` for why a
replay stays exact anyway and what is detected when it does not.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from briotui.kernel.runtime import hostcodec
from briotui.kernel.runtime.context import CallContext, HostDispatch
from briotui.kernel.store import Store
from briotui.kernel.vfs.blobs import BlobStore

log = logging.getLogger(__name__)

BLOB_BOUND = 64 * 1024
"""A result whose JSON is longer than this is kept in the blob store, by content hash."""

FLUSH_INTERVAL_S = 0.05
"""How often the writer thread writes the ordinary calls recorded since."""

DURABLE_IFACES = frozenset({"llm", "tools", "shell", "tasks", "mesh"})
"""Interfaces whose results are committed before the agent sees them: costly or
impossible to get again (a model reply, a tool's effect, a command's run, a subtask,
the user's answer, a peer's message)."""

RAISED = "$raise"
"""The key of a recorded call that raised (the kernel failed serving it)."""

UNJOURNALED = "$unjournaled"
"""The key of a recorded result that has no JSON form (it cannot be replayed)."""

_ID_SUFFIX = re.compile(r"-[0-9a-f]{4}$")

Pending = tuple[int, str, str, tuple[Any, ...], Any]
"""One recorded call not written yet: seq, interface, function, arguments, result."""


class Raised:
    """A host call that raised instead of returning (recorded so a replay raises too)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def top_of(run_id: str) -> str:
    """The top-level task an agent run belongs to: ``t-1a2b.foreman-9f0e.1`` -> ``t-1a2b``."""
    return run_id.split(".", 1)[0]


def run_key(run_id: str) -> str:
    """A run's place in its task with the ids' random parts left out.

    ``t-1a2b.foreman-9f0e.1`` -> ``foreman.1``: the same step of another run of the same
    request (a resume) has the same key, whatever ids it was given.
    """
    parts = run_id.split(".")[1:]
    return ".".join(_ID_SUFFIX.sub("", p) for p in parts)


def result_text(value: Any) -> str:
    """A recorded result as the JSON text the journal keeps."""
    if isinstance(value, Raised):
        data: Any = {RAISED: value.message}
    else:
        try:
            data = hostcodec.encode(value)
        except TypeError as exc:
            data = {UNJOURNALED: str(exc)}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


class RunJournal:
    """The journal of one agent run being recorded.

    Attributes:
        run_id: The run's task id.
        pending: Calls recorded and not written yet (appended by the agent's thread).
        lock: Held while pending calls are taken and written (by either thread).
    """

    def __init__(self, run_id: str, writer: JournalWriter, first_seq: int = 1) -> None:
        self.run_id = run_id
        self.writer = writer
        self.pending: list[Pending] = []
        self.lock = threading.Lock()
        self._seq = itertools.count(first_seq)
        self.calls = first_seq - 1
        """How many calls were recorded (the last seq)."""

    def next_seq(self) -> int:
        """The next call's sequence number."""
        seq = next(self._seq)
        self.calls = seq
        return seq

    def append(self, iface: str, name: str, args: tuple[Any, ...], result: Any) -> None:
        """Record one call (a replayed one, during a resume); written like the others."""
        self.pending.append((self.next_seq(), iface, name, args, result))
        if iface in DURABLE_IFACES:
            self.writer.drain(self, durable=True)

    def dispatch(self, inner: HostDispatch | None = None) -> HostDispatch:
        """A host dispatch that carries each call out (through ``inner`` if given) and
        records it. The agent's thread only appends; see the module docstring."""
        pending = self.pending
        counter = self._seq
        durable = DURABLE_IFACES
        drain = self.writer.drain
        journal = self

        def record(
            ctx: CallContext, iface: str, name: str, impl: Callable[..., Any], args: tuple[Any, ...]
        ) -> Any:
            try:
                result = impl(ctx, *args) if inner is None else inner(ctx, iface, name, impl, args)
            except wasmtime.WasmtimeError:
                raise  # the run stops here: nothing to replay after it
            except Exception as exc:
                seq = next(counter)
                journal.calls = seq
                pending.append((seq, iface, name, args, Raised(str(exc))))
                raise
            if ctx.cancelled.is_set():  # cut off by a cancel: the agent never sees it
                return result
            seq = next(counter)
            journal.calls = seq
            pending.append((seq, iface, name, args, result))
            if iface in durable:
                drain(journal, durable=True)
            return result

        return record


class JournalWriter:
    """Writes recorded calls to the store off the agents' threads, in batches.

    Args:
        store: The project database.
        blobs: Where large results go.
    """

    def __init__(self, store: Store, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs
        self._active: set[RunJournal] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- a run's journal -----------------------------------------------------------

    def begin(self, journal: RunJournal, row: dict[str, Any]) -> None:
        """Start writing ``journal``: its run's row (``row``: the journal_runs columns)."""
        self.store.write(
            "INSERT OR REPLACE INTO journal_runs (run_id, top_id, run_key, ordinal, agent,"
            " runtime, code, task, session_id, status, started)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
            (
                journal.run_id,
                row["top_id"],
                row["run_key"],
                row["ordinal"],
                row["agent"],
                row.get("runtime", ""),
                row.get("code", ""),
                json.dumps(row["task"]),
                row.get("session_id", ""),
                time.time(),
            ),
        )
        with self._cond:
            self._active.add(journal)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="brio-journal-writer", daemon=True
                )
                self._thread.start()

    def end(self, journal: RunJournal, status: str, outcome: dict[str, Any]) -> None:
        """Write what is left of ``journal`` and how its run ended."""
        with self._cond:
            self._active.discard(journal)
        self.drain(journal)
        self.store.write(
            "UPDATE journal_runs SET status = ?, outcome = ?, calls = ?, ended = ?"
            " WHERE run_id = ?",
            (status, json.dumps(outcome), journal.calls, time.time(), journal.run_id),
        )

    def drain(self, journal: RunJournal, *, durable: bool = False) -> None:
        """Write the calls ``journal`` recorded since; with ``durable``, commit them (and
        everything queued before) before returning."""
        with journal.lock:
            n = len(journal.pending)
            if n:
                batch = journal.pending[:n]
                del journal.pending[:n]
                try:
                    self.store.write_many([self._row(journal.run_id, p) for p in batch])
                except Exception:  # a journal must never break the run it records
                    log.exception("the journal of %s could not be written", journal.run_id)
        if durable:
            try:
                self.store.flush()
            except Exception:
                log.exception("the journal of %s could not be committed", journal.run_id)

    def _row(self, run_id: str, call: Pending) -> tuple[str, tuple[Any, ...]]:
        seq, iface, name, args, result = call
        digest = hostcodec.digest(iface, name, args)
        text = result_text(result)
        blob: str | None = None
        stored: str | None = text
        if len(text) > BLOB_BOUND:
            blob = self.blobs.put(text.encode("utf-8"), durable=False)
            stored = None
        return (
            "INSERT OR REPLACE INTO journal_calls (run_id, seq, call, digest, result, blob)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, seq, f"{iface}.{name}", digest, stored, blob),
        )

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(FLUSH_INTERVAL_S)
                if self._closed:
                    return
                journals = list(self._active)
            for journal in journals:
                if journal.pending:
                    self.drain(journal)

    def flush(self) -> None:
        """Write every active journal's pending calls now (and commit them)."""
        with self._cond:
            journals = list(self._active)
        for journal in journals:
            self.drain(journal)
        self.store.flush()

    def close(self) -> None:
        """Write what is pending and stop the thread."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
