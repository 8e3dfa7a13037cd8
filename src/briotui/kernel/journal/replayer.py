"""Replaying a recorded task: each of its agent runs again, against its journal.

``briotui replay TASK`` runs every recorded run of the task again, in the order they
started, each in a fresh instance of its agent whose host calls are answered from the
run's journal (:class:`~.replay.Replay`, strict); with ``--agent-code recorded`` an
agent on the shared runtime gets an instance of its own that loads, in the run, the code
the run recorded (a warm pool's instance loaded the current code already). No model is
asked (the runs get no provider at all), nothing of the user's is touched: the runs'
file writes go to one throwaway session made for the replay (discarded afterwards),
their commands, tools, messages and subtasks are answered from the journal.

It checks, run by run, that the agent makes the same calls in the same order with the
same arguments, that it ends the way it ended then (its summary and data, or its
error), and at the end that the throwaway session holds, for every file the task's own
session changed, the same content. The first difference is reported with where it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from briotui.kernel.errors import BrioError
from briotui.kernel.journal.replay import (
    AgentCodeSource,
    Divergence,
    RecordedRun,
    Replay,
    recorded_code,
)
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.instance import AgentTask, LoadedAgent, RunFailed, RunOutcome
from briotui.kernel.runtime.pool import AgentPool
from briotui.kernel.vfs import Session, SessionManager


class ReplayHost(Protocol):
    """What a replay needs from the kernel."""

    async def load(self, name: str, *, build: bool = False) -> LoadedAgent:
        """The loaded agent ``name``."""
        ...

    async def pool(self, name: str, size: int = 2) -> AgentPool:
        """The warm pool of agent ``name``."""
        ...

    def sessions(self) -> SessionManager:
        """The project's sessions."""
        ...

    def code_identity(self, name: str) -> tuple[str, str]:
        """What the loaded agent ``name`` runs on and its code's digest."""
        ...


@dataclass
class RunReport:
    """How one run replayed."""

    run_id: str
    agent: str
    calls: int
    replayed: int
    interrupted: bool
    identical: bool

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "run": self.run_id,
            "agent": self.agent,
            "calls": self.calls,
            "replayed": self.replayed,
            "interrupted": self.interrupted,
            "identical": self.identical,
        }


@dataclass
class TaskReplay:
    """What replaying a task found.

    Attributes:
        task_id: The task.
        runs: Each replayed run, in order (up to the first divergence).
        divergence: The first difference, or None: identical.
        session_differs: The files whose content differs from the task's session.
        seconds: How long the replay took.
    """

    task_id: str
    runs: list[RunReport] = field(default_factory=list)
    divergence: Divergence | None = None
    session_differs: list[str] = field(default_factory=list)
    session_checked: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """What the user should know to read the result (code changed since, a session
    that could not be compared)."""

    @property
    def calls(self) -> int:
        """Host calls answered from the journals."""
        return sum(r.replayed for r in self.runs)

    @property
    def identical(self) -> bool:
        """Whether everything replayed as recorded."""
        return self.divergence is None and not self.session_differs

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "status": "identical" if self.identical else "diverged",
            "task": self.task_id,
            "runs": [r.to_dict() for r in self.runs],
            "host_calls": self.calls,
            "divergence": None if self.divergence is None else self.divergence.to_dict(),
            "session": {
                "checked": self.session_checked,
                "differs": self.session_differs,
            },
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
            "calls_per_second": round(self.calls / self.seconds) if self.seconds > 0 else 0,
        }


def _outcome_of(outcome: RunOutcome | None, failure: RunFailed | None) -> dict[str, Any]:
    if outcome is not None:
        return {"summary": outcome.summary, "data": outcome.data}
    assert failure is not None
    return {"error": failure.error.to_dict()}


def _compare_outcome(run: RecordedRun, got: dict[str, Any]) -> str:
    """ "" when ``got`` ends the way ``run`` ended, else what differs."""
    want = run.outcome
    if "error" in want or "error" in got:
        wk = want.get("error", {}).get("kind") if "error" in want else None
        gk = got.get("error", {}).get("kind") if "error" in got else None
        if wk != gk:
            was = f"failed ({wk})" if wk else "ended well"
            now = f"fails ({gk}: {got['error'].get('message', '')[:200]})" if gk else "ends well"
            return f"The recorded run {was}; this one {now}."
        return ""
    for key in ("summary", "data"):
        if want.get(key) != got.get(key):
            return (
                f"The run ends with another {key}: recorded {str(want.get(key))[:160]!r}, "
                f"got {str(got.get(key))[:160]!r}."
            )
    return ""


async def replay_run(
    host: ReplayHost,
    run: RecordedRun,
    session: Session | None,
    *,
    agent_code: AgentCodeSource,
    blobs: Any,
    notes: list[str] | None = None,
) -> tuple[RunReport, Divergence | None]:
    """Replay one recorded run in a fresh instance of its agent (see the module)."""
    loaded = await host.load(run.agent, build=True)
    pool = await host.pool(run.agent, size=1)
    on_runtime = loaded.code_version is not None
    code = recorded_code(blobs, run.code) if on_runtime and agent_code == "recorded" else None
    if code is not None:
        # an instance that loads its code in the run, through the replay: the recorded
        # code, whatever a warm instance of the pool loaded
        instance = await pool.fresh()
    else:
        instance = await pool.acquire()
    replay = Replay(
        run, blobs, mode="strict", agent_code=agent_code, inner=instance.ctx.dispatch, code=code
    )
    instance.ctx.dispatch = replay
    task = AgentTask(
        str(run.task.get("id", run.run_id)),
        str(run.task.get("goal", "")),
        tuple((str(k), str(v)) for k, v in run.task.get("context", [])),
    )
    bindings = RunBindings(
        task_id=run.run_id,
        session_id=session.id if session is not None else "",
        workspace=session,
    )
    outcome: RunOutcome | None = None
    failure: RunFailed | None = None
    try:
        outcome = await instance.run(task, bindings)
    except RunFailed as failed:
        failure = failed
    if notes is not None:
        _note_code(host, run, replay, agent_code, instance.ctx.code_digest, notes)
    interrupted = replay.stopped  # interrupted or cancelled: replayed up to where it stopped
    replay.finish()
    if replay.divergence is None and not interrupted:
        differs = _compare_outcome(run, _outcome_of(outcome, failure))
        if differs:
            replay.diverge(None, len(run.calls) + 1, "(the run's end)", "(the run's end)", differs)
    report = RunReport(
        run_id=run.run_id,
        agent=run.agent,
        calls=len(run.calls),
        replayed=replay.replayed,
        interrupted=interrupted,
        identical=replay.divergence is None,
    )
    return report, replay.divergence


def _note_code(
    host: ReplayHost,
    run: RecordedRun,
    replay: Replay,
    agent_code: AgentCodeSource,
    loaded: str,
    notes: list[str],
) -> None:
    """Say (once per agent) when the agent's code or runtime is not what was recorded
    (``loaded``: the digest of the code the replaying instance loaded, if on the shared
    runtime)."""
    said = f"{run.agent}:"
    if any(n.startswith(said) for n in notes):
        return
    runtime, code = host.code_identity(run.agent)
    on_runtime = run.runtime.startswith("runtime:")
    recorded = replay.recorded() if on_runtime else None
    was = recorded[0] if recorded is not None else run.code
    now = loaded if on_runtime else code
    if agent_code == "recorded" and on_runtime and not replay.served_recorded:
        if recorded is None:
            notes.append(
                f"{run.agent}: the code the task ran is not in its journal (the run was "
                "stopped before it was written, or its blob is gone); the replay runs the "
                "current code."
            )
            return
        agent_code = "current"  # it loaded the current code: say so if it differs
    if agent_code == "current":
        if was and now and now != was:
            notes.append(
                f"{run.agent}: its code changed since the task ran (recorded "
                f"{was[:12]}, now {now[:12]}); the replay runs the current code."
            )
    elif run.runtime and not on_runtime:
        notes.append(
            f"{run.agent}: it runs on a component of its own, whose code is built in: the "
            "replay runs its current build (--agent-code recorded applies to agents on the "
            "shared Python runtime)."
        )
    elif run.runtime and runtime and runtime != run.runtime:
        notes.append(
            f"{run.agent}: the runtime changed since the task ran (recorded "
            f"{run.runtime[:20]}, now {runtime[:20]}); the recorded code may not load on it."
        )


def _session_differences(original: Session, replayed: Session) -> list[str]:
    """The files ``original`` changed whose content ``replayed`` does not have."""
    paths = sorted(set(original.overlay()) | set(replayed.overlay()))
    differs: list[str] = []
    for path in paths:
        try:
            want: bytes | None = original.read(path)
        except (FileNotFoundError, IsADirectoryError, BrioError):
            want = None
        try:
            got: bytes | None = replayed.read(path)
        except (FileNotFoundError, IsADirectoryError, BrioError):
            got = None
        if want != got:
            differs.append(path)
    return differs


async def replay_task(
    host: ReplayHost,
    task_id: str,
    runs: Sequence[RecordedRun],
    *,
    session_id: str | None,
    agent_code: AgentCodeSource = "current",
) -> TaskReplay:
    """Replay every run of ``task_id`` (see the module); stops at the first divergence."""
    started = time.perf_counter()
    sessions = host.sessions()
    report = TaskReplay(task_id)
    scratch = await asyncio.to_thread(
        sessions.create, label=f"replay of {task_id}", task=f"replay of {task_id}"
    )
    # Which recorded sessions wrote each path: the Coders of a pipeline write into branch
    # sessions that the kernel merges (its merge is not an agent's call, so a replay does
    # not redo it). Their writes all land in the one throwaway session here, so a file
    # that branches wrote is only comparable when a single session wrote it.
    writers: dict[str, set[str]] = {}
    try:
        for run in runs:
            before = scratch.overlay()
            run_report, divergence = await replay_run(
                host, run, scratch, agent_code=agent_code, blobs=sessions.blobs, notes=report.notes
            )
            after = scratch.overlay()
            for path in set(before) | set(after):
                if before.get(path) != after.get(path):
                    writers.setdefault(path, set()).add(run.session_id)
            report.runs.append(run_report)
            if divergence is not None:
                report.divergence = divergence
                break
        if report.divergence is None and session_id:
            try:
                original = await asyncio.to_thread(sessions.get, session_id)
                differs = await asyncio.to_thread(_session_differences, original, scratch)
                merged = sorted(p for p in differs if len(writers.get(p, ())) > 1)
                report.session_differs = [p for p in differs if p not in merged]
                report.session_checked = True
                if merged:
                    branches = len(set().union(*(writers[p] for p in merged)))
                    report.notes.append(
                        f"{', '.join(merged)}: written in {branches} branch sessions that the "
                        "kernel merged; the replay checks every call of the runs that wrote "
                        "them, not the merged file."
                    )
            except (BrioError, OSError) as exc:
                report.notes.append(
                    f"The task's session {session_id} cannot be read now ({exc}); the "
                    "files were not compared."
                )
    finally:
        await asyncio.to_thread(scratch.discard)
    report.seconds = time.perf_counter() - started
    return report
