"""Recording a run journal: every host call of an agent run, in order, into the store.

A WebAssembly agent is deterministic given what its imports return, so the results of
its host calls (model replies, file reads, clock readings, command results) are all a
replay needs. Each run gets a :class:`RunJournal`; its dispatch (on
:attr:`CallContext.dispatch`, wrapping whatever dispatch was there) carries the call out
and appends ``(seq, iface, name, args, result)`` to an in-memory list. That append is
all the agent's thread pays for an ordinary call.

Expensive results must survive a crash: after a call to an interface in
:data:`DURABLE_IFACES` (a model reply, a tool, a command, a subtask, the user's answer)
the agent's thread writes everything pending and commits it before the agent sees the
result, so a SIGKILL right after loses nothing a resume would have to pay for again.
That work is hidden behind the call itself (a model reply takes seconds).

Everything else (digests, JSON, the SQLite writes) is done by the
:class:`JournalWriter`'s thread, in batches, and *not while the run is busy* unless it
has to: Python threads share one interpreter lock, so encoding beside a running agent
would slow its calls down as much as encoding on its own thread. The writer takes a
run's pending calls when the run ends, when :data:`BACKLOG` of them piled up, or when the
oldest has waited :data:`MAX_AGE_S`. What a crash loses of them is cheap to redo: a
resume replays the journal up to its last durable call and goes on live from there.

Results whose JSON is over :data:`BLOB_BOUND` bytes (a large file read) go to the blob
store by content hash, so a journal row stays small and the same content is kept once.

Loading the agent's code is not one of its calls. An agent on its world's shared
Python runtime reads its code through ``agent-code``, either before its run (a warm
pool's instance) or at its start (a cold one, or one whose code changed since): so
whether that call happens in a run depends on the pool, never on the agent, and it is
left out of the call sequence (a replay neither expects nor matches it). What the
instance loaded is its context's ``code_digest``, set whenever it loads; the journal
notes it when the run begins and after an ``agent-code`` call in the run
(:meth:`RunJournal.loaded`), and keeps that version's sources (:func:`code_text`) in
the blob store, once per version, as the run's ``code``: the code a replay with
``--agent-code recorded`` loads.

What the agent sees from WASI (``wasi:clocks``, ``wasi:random``) does not go through
the host-call seam, so it is not journaled; see :mod:`briotui.kernel.journal` for why a
replay stays exact anyway and what is detected when it does not.
"""

from __future__ import annotations

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
from briotui.kernel.runtime.pyruntime import AgentCode
from briotui.kernel.runtime.values import Err, Ok
from briotui.kernel.store import Store
from briotui.kernel.vfs.blobs import BlobStore
from briotui.kernel.vfs.failpoints import failpoint

log = logging.getLogger(__name__)

BLOB_BOUND = 64 * 1024
"""A result whose JSON is longer than this is kept in the blob store, by content hash."""

AGENT_CODE_IFACE = "agent-code"
"""The shared runtime reading its agent's code: not journaled as a call (see the
module docstring); the version it loaded is the run's code."""

CodeLookup = Callable[[str], AgentCode | None]
"""The version of an agent's code an instance loaded, by its digest (the code server's)."""

FLUSH_INTERVAL_S = 0.05
"""How often the writer thread looks at the runs' pending calls."""

BACKLOG = 32_768
"""The writer takes a running run's pending calls once this many piled up...

(as many as a run makes in about a quarter of a second of nothing but clock readings;
a real agent makes that many in no run at all)"""

BACKLOG_BYTES = 64 * 1024 * 1024
"""... or once their results (reads, replies) hold about this many bytes..."""

MAX_AGE_S = 2.0
"""... or once the oldest of them has waited this long."""

ROWS_PER_INSERT = 150
"""Calls written by one INSERT statement (6 parameters each, under SQLite's 999)."""

_DIGESTS_KEPT = 4096

DURABLE_IFACES = frozenset({"llm", "tools", "shell", "tasks", "mesh", "sql"})
"""Interfaces whose results are committed before the agent sees them: costly or
impossible to get again (a model reply, a tool's effect, a command's run, a subtask,
the user's answer, a peer's message), or with an effect outside the session that a
resume must not make twice (the agent's SQL tables)."""

NOT_DURABLE = frozenset({"progress", "milestone"})
"""Functions of those interfaces that are cheap and change nothing (``tasks``' notes)."""

RAISED = "$raise"
"""The key of a recorded call that raised (the kernel failed serving it)."""

UNJOURNALED = "$unjournaled"
"""The key of a recorded result that has no JSON form (it cannot be replayed)."""

_ID_SUFFIX = re.compile(r"-[0-9a-f]{4}$")

Pending = tuple[str, str, tuple[Any, ...], Any]
"""One recorded call not written yet: interface, function, arguments, result. Its
sequence number is its place: the calls written before it, plus one."""


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


def code_text(code: AgentCode) -> bytes:
    """A version of an agent's code as the journal keeps it (one blob per version)."""
    data = {
        "digest": code.digest,
        "modules": [
            {"name": m.name, "path": m.path, "source": m.source, "is_package": m.is_package}
            for m in code.modules
        ],
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def result_text(value: Any) -> str:
    """A recorded result as the JSON text the journal keeps."""
    kind = type(value)
    if kind is int or kind is bool or value is None:  # the common small results, fast
        return json.dumps(value)
    if kind is str:
        return json.dumps(value, ensure_ascii=False)
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
        calls: How many calls were taken from ``pending`` (the last one's number).
    """

    def __init__(self, run_id: str, writer: JournalWriter) -> None:
        self.run_id = run_id
        self.writer = writer
        self.pending: list[Pending] = []
        self.lock = threading.Lock()
        self.calls = 0
        self.ended: tuple[str, dict[str, Any]] | None = None
        """How the run ended (status, outcome), once it did; the writer records it."""
        self.closed = False
        """Its end was written: nothing more of it is (a call of a run lost with its
        worker that comes back late must not land in the journal of its retry, which
        has the same run id)."""
        self.waiting_since: float | None = None
        """When the writer first saw calls pending (for :data:`MAX_AGE_S`)."""
        self.scanned = 0
        self.pending_bytes = 0
        """What the writer's thread estimated the pending results hold (for
        :data:`BACKLOG_BYTES`), over the first ``scanned`` of them."""
        self.code: AgentCode | None = None
        """The version of the agent's code the run's instance loaded (None: not known,
        or a component of its own, whose identity is given when the run begins)."""
        self.code_written = ""
        """The digest of the code whose blob the run's row names."""

    def loaded(self, ctx: CallContext) -> None:
        """Note the code the run's instance loaded (its ``code_digest``): called when the
        run begins (a warm instance loaded it before) and after it loads it in the run."""
        digest = ctx.code_digest
        if not digest or (self.code is not None and self.code.digest == digest):
            return
        lookup = self.writer.code_lookup
        code = lookup(digest) if lookup is not None else None
        if code is not None:
            self.code = code

    def append(self, iface: str, name: str, args: tuple[Any, ...], result: Any) -> None:
        """Record one call (a replayed one, during a resume); written like the others."""
        self.pending.append((iface, name, args, result))
        if iface in DURABLE_IFACES and name not in NOT_DURABLE:
            self.writer.drain(self, durable=True)

    def dispatch(self, inner: HostDispatch | None = None) -> HostDispatch:
        """A host dispatch that carries each call out (through ``inner`` if given) and
        records it. The agent's thread only appends; see the module docstring."""
        append = self.pending.append
        durable = DURABLE_IFACES
        cheap = NOT_DURABLE
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
                if iface != AGENT_CODE_IFACE:
                    append((iface, name, args, Raised(str(exc))))
                raise
            if iface in durable:  # the calls that wait, and so can be cut off
                if ctx.cancelled.is_set():  # cut off by a cancel: the agent never sees it
                    return result
                append((iface, name, args, result))
                if name not in cheap:
                    drain(journal, durable=True)
                return result
            if iface == AGENT_CODE_IFACE:  # loading the code, not a call of the agent's
                journal.loaded(ctx)
                return result
            append((iface, name, args, result))
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
        self._work = threading.Lock()
        """Held by whoever takes ended runs and pending calls (the thread, a flush)."""
        self._digests: dict[tuple[str, str, tuple[Any, ...]], str] = {}
        self._code_blobs: dict[str, str] = {}
        """The blob of each version of agents' code written (by digest)."""
        self.code_lookup: CodeLookup | None = None
        """Where a run's journal finds the code its instance loaded, by digest."""
        self.busy_s = 0.0
        """Time spent encoding and writing calls (for ``briotui bench``)."""
        self.written = 0
        """Calls written."""

    # -- a run's journal -----------------------------------------------------------

    def begin(self, journal: RunJournal, row: dict[str, Any]) -> None:
        """Start writing ``journal``: its run's row (``row``: the journal_runs columns).

        A run id seen before (a run retried after its worker was lost) starts a new
        journal: the calls of the earlier attempt are dropped with its row.
        """
        self.store.write("DELETE FROM journal_calls WHERE run_id = ?", (journal.run_id,))
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
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="brio-journal-writer", daemon=True
                )
                self._thread.start()

    def end(self, journal: RunJournal, status: str, outcome: dict[str, Any]) -> None:
        """The run of ``journal`` ended: its writer thread writes what is left of it and
        how it ended (the caller, on the event loop, does not wait for that)."""
        with self._cond:
            journal.ended = (status, outcome)
            self._cond.notify_all()

    def _finish(self, journal: RunJournal) -> None:
        assert journal.ended is not None
        status, outcome = journal.ended
        self.drain(journal)
        self.store.write(
            "UPDATE journal_runs SET status = ?, outcome = ?, calls = ?, ended = ?"
            " WHERE run_id = ?",
            (status, json.dumps(outcome), journal.calls, time.time(), journal.run_id),
        )
        journal.closed = True

    def drain(self, journal: RunJournal, *, durable: bool = False) -> None:
        """Write the calls ``journal`` recorded since; with ``durable``, commit them (and
        everything queued before) before returning."""
        with journal.lock:
            if journal.closed:  # a late call of an ended run: dropped
                journal.pending.clear()
                return
            n = len(journal.pending)
            journal.waiting_since = None
            journal.scanned = journal.pending_bytes = 0
            code = journal.code
            if n or (code is not None and code.digest != journal.code_written):
                started = time.perf_counter()
                batch = journal.pending[:n]
                del journal.pending[:n]
                try:
                    self._write(journal, batch)
                except Exception:  # a journal must never break the run it records
                    log.exception("the journal of %s could not be written", journal.run_id)
                self.busy_s += time.perf_counter() - started
                self.written += n
        if durable:
            try:
                self.store.flush()
            except Exception:
                log.exception("the journal of %s could not be committed", journal.run_id)
            failpoint("journal-durable")  # tests: SIGKILL right after a costly result

    def _write(self, journal: RunJournal, batch: list[Pending]) -> None:
        run_id = journal.run_id
        values: list[Any] = []
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for iface, name, args, result in batch:
            journal.calls += 1
            seq = journal.calls
            text = result_text(result)
            blob: str | None = None
            stored: str | None = text
            if len(text) > BLOB_BOUND:
                blob = self.blobs.put(text.encode("utf-8"), durable=False)
                stored = None
            values += (run_id, seq, f"{iface}.{name}", self._digest(iface, name, args))
            values += (stored, blob)
        code = journal.code
        if code is not None and code.digest != journal.code_written:  # the code it loaded
            bid = self._code_blobs.get(code.digest)
            if bid is None:
                bid = self._code_blobs[code.digest] = self.blobs.put(code_text(code), durable=False)
            statements.append(("UPDATE journal_runs SET code = ? WHERE run_id = ?", (bid, run_id)))
            journal.code_written = code.digest
        width = 6 * ROWS_PER_INSERT
        for at in range(0, len(values), width):
            chunk = values[at : at + width]
            statements.append(
                (
                    "INSERT OR REPLACE INTO journal_calls (run_id, seq, call, digest, result,"
                    " blob) VALUES " + ",".join(["(?, ?, ?, ?, ?, ?)"] * (len(chunk) // 6)),
                    tuple(chunk),
                )
            )
        self.store.write_many(statements)

    def _digest(self, iface: str, name: str, args: tuple[Any, ...]) -> str:
        """:func:`hostcodec.digest`, remembered for the same small arguments (the clock's
        none, a path read again)."""
        try:
            key = (iface, name, args)
            known = self._digests.get(key)
        except TypeError:  # unhashable arguments (a list, a record)
            return hostcodec.digest(iface, name, args)
        if known is None:
            known = hostcodec.digest(iface, name, args)
            if len(self._digests) >= _DIGESTS_KEPT:
                self._digests.clear()
            self._digests[key] = known
        return known

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._closed:
                    # idle (no run being journaled): sleep until one begins or the end
                    self._cond.wait(FLUSH_INTERVAL_S if self._active else None)
                closed = self._closed
                journals = list(self._active)
            now = time.monotonic()
            with self._work:
                for journal in journals:
                    if journal.ended is not None:
                        self._take(journal)
                    elif journal.pending:
                        if journal.waiting_since is None:
                            journal.waiting_since = now
                        if (
                            len(journal.pending) >= BACKLOG
                            or self._pending_bytes(journal) >= BACKLOG_BYTES
                            or now - journal.waiting_since >= MAX_AGE_S
                        ):
                            self.drain(journal)
            if closed:
                return

    @staticmethod
    def _pending_bytes(journal: RunJournal) -> int:
        """About how many bytes the pending results hold (counting the new ones)."""
        pending = journal.pending
        end = len(pending)
        size = journal.pending_bytes
        for _, _, _, result in pending[journal.scanned : end]:
            value = result.value if isinstance(result, Ok | Err) else result
            size += len(value) if isinstance(value, str | bytes) else 64
        journal.scanned, journal.pending_bytes = end, size
        return size

    def _take(self, journal: RunJournal) -> None:
        """Finish an ended run's journal, once (holding ``_work``)."""
        with self._cond:
            if journal not in self._active:
                return
            self._active.discard(journal)
        self._finish(journal)

    def flush(self) -> None:
        """Write every journal's pending calls (and the ends of ended runs) now, and
        commit them."""
        with self._work:
            with self._cond:
                journals = list(self._active)
            for journal in journals:
                if journal.ended is not None:
                    self._take(journal)
                else:
                    self.drain(journal)
        self.store.flush()

    def close(self) -> None:
        """Write what is pending and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()
