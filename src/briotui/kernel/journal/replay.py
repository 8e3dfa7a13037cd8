"""Reading a run journal back, and answering an agent's host calls from it.

:class:`Replay` is a host dispatch (:attr:`CallContext.dispatch`). For each call the
agent makes it takes the journal's next entry, checks that it is the same call (the
interface, the function and the digest of the arguments) and returns the recorded
result instead of carrying the call out. Which calls are still carried out:

- :data:`EXECUTE`: calls whose effect the run's session (or the user's view) needs
  again: file writes, deletes and renames are applied to the session the replay is
  bound to (a throwaway one for ``briotui replay``, the fresh session of a resumed
  task), log lines and progress are published. The agent still gets the *recorded*
  result, so what it sees is exactly what it saw. A call that failed then (a write
  that was denied) is not carried out again.
- With ``mode="resume"`` also :data:`RESUME_EXECUTE` (the project's commands: the
  resumed session must be verified again by the kernel seeing its tests pass there)
  and :data:`RESUME_DRIVE`: the ``tasks`` calls that run subtasks, carried out for real
  with their *live* result, because the subtasks they start are runs of the resumed
  task (each replayed from its own journal in turn).
- Loading the agent's code (``agent-code.modules``, the shared Python runtime reading
  it) is no call of the run's: a journal has none (see :mod:`.record`), and a replay
  neither expects nor counts one. If the replaying instance loads its code in the run,
  the load is served live with ``agent_code="current"`` (so a changed agent can be
  replayed against old journals) and from the code the run recorded (its ``code`` blob)
  with ``"recorded"``; :func:`.replayer.replay_run` gives a ``recorded`` replay an
  instance that has loaded no code yet, so that its load goes through here.

Everything else (model replies, reads, clock readings, tool results, SQL, messages) is
answered from the journal: nothing real is touched.

When the agent asks for something else than the journal has at that point (or for more
than it has), a strict replay stops the run with a :class:`Divergence`; a resume goes
live from that call on, recording into the new run's journal, and so does it at the end
of the journal (where the interrupted run stopped).

Known limits of a resume: what the replayed part did outside the session is not done
again (its SQL statements ran then, into the same database; its MCP tools' effects
happened), which is right; but messages between agents (``mesh``) are answered from the
journal, so a peer that goes live before its sender does would wait for a message the
replayed sender does not send again (no shipped agent uses the mesh).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import wasmtime

from briotui.kernel.errors import AgentCancelled, BrioError, ReplayDiverged
from briotui.kernel.journal.record import RAISED, UNJOURNALED, Raised, RunJournal
from briotui.kernel.runtime import hostcodec
from briotui.kernel.runtime.context import CallContext, HostDispatch
from briotui.kernel.runtime.values import Err
from briotui.kernel.store import Store
from briotui.kernel.vfs.blobs import BlobStore

EXECUTE = frozenset(
    {
        "workspace-write.write",
        "workspace-write.delete",
        "workspace-write.rename",
        "log.emit",
        "tasks.progress",
        "tasks.milestone",
    }
)
"""Calls a replay still carries out (their effect is needed); the agent gets the
recorded result."""

RESUME_EXECUTE = frozenset({"shell.run"})
"""Calls a resume carries out again too (the agent still gets the recorded result)."""

RESUME_DRIVE = frozenset(
    {
        "tasks.spawn-subtask",
        "tasks.await-subtasks",
        "tasks.merge-subtasks",
        "tasks.run-subtask",
    }
)
"""Calls a resume carries out with their live result: they run the task's subtasks."""

AGENT_CODE = "agent-code.modules"

ReplayMode = Literal["strict", "resume"]
AgentCodeSource = Literal["current", "recorded"]


@dataclass(frozen=True)
class RecordedCall:
    """One host call of a recorded run."""

    seq: int
    call: str
    digest: str
    result: str | None
    blob: str | None


@dataclass(frozen=True)
class RecordedRun:
    """A recorded agent run: who ran what, and every host call it made.

    Attributes:
        run_id: The run's task id.
        top_id: Its top-level task.
        run_key: Its place in the task (see :func:`~.record.run_key`).
        ordinal: Which run with that key.
        agent: The agent.
        runtime: The component it ran on (``kind:digest``).
        code: Its code's digest.
        task: The task input: ``{"id", "goal", "context"}``.
        session_id: The session it worked in.
        status: ``running`` (it never ended: interrupted), ``done``, ``failed``...
        outcome: ``{"summary", "data"}`` or ``{"error": {...}}``.
        calls: Its host calls, in order.
    """

    run_id: str
    top_id: str
    run_key: str
    ordinal: int
    agent: str
    runtime: str
    code: str
    task: dict[str, Any]
    session_id: str
    status: str
    outcome: dict[str, Any]
    calls: tuple[RecordedCall, ...]


@dataclass(frozen=True)
class Divergence:
    """Where a replayed run stopped doing what the recorded one did.

    Attributes:
        run_id: The recorded run.
        agent: Its agent.
        seq: The call number (1-based) where it diverged.
        expected: What the journal has there ("" past its end).
        got: What the agent asked for ("" when it ended instead).
        detail: A sentence for the user.
    """

    run_id: str
    agent: str
    seq: int
    expected: str
    got: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "run": self.run_id,
            "agent": self.agent,
            "seq": self.seq,
            "expected": self.expected,
            "got": self.got,
            "detail": self.detail,
        }


def _run(row: Any, calls: tuple[RecordedCall, ...]) -> RecordedRun:
    outcome = json.loads(row["outcome"]) if row["outcome"] else {}
    return RecordedRun(
        run_id=row["run_id"],
        top_id=row["top_id"],
        run_key=row["run_key"],
        ordinal=int(row["ordinal"]),
        agent=row["agent"],
        runtime=row["runtime"],
        code=row["code"],
        task=json.loads(row["task"]),
        session_id=row["session_id"],
        status=row["status"],
        outcome=outcome if isinstance(outcome, dict) else {},
        calls=calls,
    )


_RUN_COLUMNS = (
    "run_id, top_id, run_key, ordinal, agent, runtime, code, task, session_id, status, outcome"
)


def _calls(store: Store, run_id: str) -> tuple[RecordedCall, ...]:
    rows = store.query(
        "SELECT seq, call, digest, result, blob FROM journal_calls WHERE run_id = ? ORDER BY seq",
        (run_id,),
    )
    calls: list[RecordedCall] = []
    seq = 0
    for r in rows:  # a gap (a crash between two batches) ends what can be replayed
        if r["seq"] != seq + 1:
            break
        seq += 1
        if r["call"] == AGENT_CODE:  # an older journal's code load: no call of the run's
            continue
        calls.append(RecordedCall(len(calls) + 1, r["call"], r["digest"], r["result"], r["blob"]))
    return tuple(calls)


def recorded_code(blobs: BlobStore, code: str) -> tuple[str, list[dict[str, Any]]] | None:
    """The code a run recorded (its ``code`` blob): its digest ("" if an older journal
    does not say) and what ``agent-code.modules`` returns for it; None if there is none
    (a component of its own, an interrupted run that never loaded it, a missing blob)."""
    if not code:
        return None
    try:
        data = json.loads(blobs.get(code).decode("utf-8"))
    except (BrioError, OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("modules"), list):
        modules = [
            {
                "name": str(m["name"]),
                "path": str(m["path"]),
                "source": str(m["source"]),
                "is_package": bool(m["is_package"]),
                "code": "",  # the runtime compiles the sources
            }
            for m in data["modules"]
        ]
        return str(data.get("digest", "")), modules
    if isinstance(data, list):  # an older journal kept the call's result itself
        decoded = hostcodec.decode(data)
        return ("", decoded) if isinstance(decoded, list) else None
    return None


def runs_of(store: Store, top_id: str) -> list[RecordedRun]:
    """Every recorded run of task ``top_id``, in the order they started."""
    rows = store.query(
        f"SELECT {_RUN_COLUMNS} FROM journal_runs WHERE top_id = ? ORDER BY started, rowid",
        (top_id,),
    )
    return [_run(r, _calls(store, r["run_id"])) for r in rows]


def find_run(store: Store, top_id: str, key: str, ordinal: int) -> RecordedRun | None:
    """The recorded run of task ``top_id`` at ``key`` (its ``ordinal``-th), if any."""
    rows = store.query(
        f"SELECT {_RUN_COLUMNS} FROM journal_runs WHERE top_id = ? AND run_key = ? AND ordinal = ?",
        (top_id, key, ordinal),
    )
    return _run(rows[0], _calls(store, rows[0]["run_id"])) if rows else None


def run_by_id(store: Store, run_id: str) -> RecordedRun | None:
    """The recorded run ``run_id`` (one agent run of a task), if any."""
    rows = store.query(f"SELECT {_RUN_COLUMNS} FROM journal_runs WHERE run_id = ?", (run_id,))
    return _run(rows[0], _calls(store, run_id)) if rows else None


def journaled_tasks(store: Store) -> set[str]:
    """The top-level tasks that have a journal."""
    return {r[0] for r in store.query("SELECT DISTINCT top_id FROM journal_runs")}


class Replay:
    """A host dispatch answering a run's calls from its journal (see the module).

    Args:
        run: The recorded run.
        blobs: Where its large results are.
        mode: ``strict`` (stop at a divergence) or ``resume`` (go live there, and at the
            end of the journal).
        agent_code: Where the agent's code comes from.
        record: For a resume: the new run's journal (every call goes into it, replayed
            or live).
        inner: The dispatch that was there before (live calls go through it).
        aliases: For a resume: the ``(live, recorded)`` ids shared by its runs.
        code: The recorded code, if the caller read it already (:func:`recorded_code`).
    """

    def __init__(
        self,
        run: RecordedRun,
        blobs: BlobStore,
        *,
        mode: ReplayMode = "strict",
        agent_code: AgentCodeSource = "current",
        record: RunJournal | None = None,
        inner: HostDispatch | None = None,
        aliases: list[tuple[str, str]] | None = None,
        code: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.run = run
        self.blobs = blobs
        self.mode = mode
        self.agent_code = agent_code
        self.journal = record
        self.inner = inner
        self._live: HostDispatch | None = record.dispatch(inner) if record is not None else inner
        self.aliases = aliases if aliases is not None else []
        """``(live, recorded)`` ids (tasks, runs, sessions) of a resume: a live id in a
        call's arguments stands for the recorded one when the digests are compared.
        Shared by the runs of one resumed task, which add theirs as they start."""
        self._digests: dict[tuple[str, str, Any], str] = {}
        self.index = 0
        """How many recorded calls were used."""
        self.live = False
        """Whether the run went live (a resume past its journal or a divergence)."""
        self.replayed = 0
        self.divergence: Divergence | None = None
        self.stopped = run.status in ("running", "cancelled")
        """The recorded run was interrupted or cancelled: its journal ends where it was
        stopped, and a strict replay stops there too (no divergence)."""
        self.reached_stop = False
        self._code: tuple[str, list[dict[str, Any]]] | bool | None = (
            code if code is not None else False
        )
        """The recorded code (see :func:`recorded_code`), once read (False: not yet)."""
        self.served_recorded = False
        """Whether the instance loaded the recorded code (served from the journal)."""

    def recorded(self) -> tuple[str, list[dict[str, Any]]] | None:
        """The code the run recorded (read once), or None."""
        if self._code is False:
            self._code = recorded_code(self.blobs, self.run.code)
        return self._code if isinstance(self._code, tuple) else None

    def _carry_out(
        self, ctx: CallContext, iface: str, name: str, impl: Callable[..., Any], args: Any
    ) -> Any:
        if self.inner is not None:
            return self.inner(ctx, iface, name, impl, args)
        return impl(ctx, *args)

    def _go_live(
        self, ctx: CallContext, iface: str, name: str, impl: Callable[..., Any], args: Any
    ) -> Any:
        self.live = True
        if self._live is not None:
            return self._live(ctx, iface, name, impl, args)
        return impl(ctx, *args)

    def _value(self, call: RecordedCall) -> Any:
        text = call.result
        if text is None:
            text = self.blobs.get(call.blob or "").decode("utf-8")
        data = json.loads(text)
        if isinstance(data, dict) and len(data) == 1:
            if RAISED in data:
                raise ReplayedFailure(str(data[RAISED]))
            if UNJOURNALED in data:
                raise ReplayedFailure(f"the recorded result has no JSON form: {data[UNJOURNALED]}")
        return hostcodec.decode(data)

    def diverge(
        self, ctx: CallContext | None, seq: int, expected: str, got: str, detail: str
    ) -> None:
        """Note the first divergence; in a strict replay, stop the run."""
        if self.divergence is None:
            self.divergence = Divergence(
                self.run.run_id, self.run.agent, seq, expected, got, detail
            )
        if ctx is not None and self.mode == "strict":
            if ctx.fatal is None:
                ctx.fatal = ReplayDiverged(detail, agent=self.run.agent)
            raise wasmtime.WasmtimeError("brio: replay diverged")

    def __call__(
        self, ctx: CallContext, iface: str, name: str, impl: Callable[..., Any], args: Any
    ) -> Any:
        if self.live:
            return self._go_live(ctx, iface, name, impl, args)
        label = f"{iface}.{name}"
        if label == AGENT_CODE:  # the instance loading its code: no call of the run's
            return self._load_code(ctx, iface, name, impl, args)
        calls = self.run.calls
        seq = self.index + 1
        if self.index >= len(calls):
            if self.mode == "resume":
                return self._go_live(ctx, iface, name, impl, args)
            if self.stopped:  # the recorded run was stopped here: so is this one
                self.reached_stop = True
                if ctx.fatal is None:
                    ctx.fatal = AgentCancelled(
                        "Replayed up to where the recorded run was stopped.",
                        agent=self.run.agent,
                    )
                raise wasmtime.WasmtimeError("brio: replayed up to where the run stopped")
            self.diverge(
                ctx,
                seq,
                "",
                label,
                f"The recorded run made {len(calls)} host calls; this one makes more: "
                f"call {seq} is {label}{_args_hint(args)}.",
            )
        recorded = calls[self.index]
        digest = self._digest(iface, name, args)
        if recorded.call != label or recorded.digest != digest:
            if self.mode == "resume":
                return self._go_live(ctx, iface, name, impl, args)
            what = (
                f"{label} with other arguments{_args_hint(args)}"
                if recorded.call == label
                else f"{label}{_args_hint(args)}"
            )
            self.diverge(
                ctx,
                seq,
                recorded.call,
                label,
                f"At call {seq} the recorded run called {recorded.call}; this one calls {what}.",
            )
        self.index += 1
        self.replayed += 1
        try:
            result = self._value(recorded)
        except ReplayedFailure as failed:
            if self.journal is not None:
                self.journal.append(iface, name, args, Raised(str(failed)))
            raise
        if isinstance(result, Err):
            pass  # it failed then (denied, not found...): it had no effect to apply again
        elif label in EXECUTE or (self.mode == "resume" and label in RESUME_EXECUTE):
            self._carry_out(ctx, iface, name, impl, args)
        elif self.mode == "resume" and label in RESUME_DRIVE:
            result = self._carry_out(ctx, iface, name, impl, args)
        if self.journal is not None:
            self.journal.append(iface, name, args, result)
        return result

    def _load_code(
        self, ctx: CallContext, iface: str, name: str, impl: Callable[..., Any], args: Any
    ) -> Any:
        """Serve the instance's code: the recorded code for a strict replay with
        ``agent_code="recorded"`` (when the run recorded it), else the current one."""
        if self.agent_code == "recorded" and self.mode == "strict":
            code = self.recorded()
            if code is not None:
                digest, modules = code
                ctx.host_calls -= 1  # as the live call does: the runtime reading its code
                ctx.code_digest = digest
                self.served_recorded = True
                return modules
        result = self._carry_out(ctx, iface, name, impl, args)
        if self.journal is not None:  # a resume's run: its journal names what it loaded
            self.journal.loaded(ctx)
        return result

    def _digest(self, iface: str, name: str, args: Any) -> str:
        """The call's digest (the aliases of a resume applied), remembered for the same
        small arguments (the clock's none, a path read again)."""
        if self.aliases:
            aliases = sorted(self.aliases, key=lambda pair: -len(pair[0]))
            return hostcodec.digest(iface, name, args, aliases=aliases)
        try:
            key = (iface, name, args)
            known = self._digests.get(key)
        except TypeError:  # unhashable arguments (a list, a record)
            return hostcodec.digest(iface, name, args)
        if known is None:
            known = self._digests[key] = hostcodec.digest(iface, name, args)
        return known

    def finish(self) -> None:
        """After a strict replay's run ended: a recorded call it never made diverges."""
        calls = self.run.calls
        if self.stopped:
            return  # it never ended: nothing to compare its end with
        if self.divergence is None and not self.live and self.index < len(calls):
            missing = calls[self.index]
            self.diverge(
                None,
                missing.seq,
                missing.call,
                "",
                f"The recorded run went on with call {missing.seq} ({missing.call}); this "
                f"one ended after {self.index} calls.",
            )


class ReplayedFailure(Exception):
    """A recorded call that failed in the kernel fails the same way when replayed."""


def _args_hint(args: Any) -> str:
    """A short readable form of a call's arguments, for a divergence report."""
    try:
        text = json.dumps(hostcodec.encode(args), ensure_ascii=False)
    except TypeError:
        return ""
    if len(text) > 160:
        text = text[:157] + "..."
    return f" {text}"
