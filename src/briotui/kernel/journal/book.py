"""The kernel's run journals: one per agent run, recorded as it runs, resumed after a crash.

The kernel calls :meth:`Journals.start` when an agent run begins (its instance is
acquired, its task input known) and :meth:`Journals.end` when it ends. ``start``
installs the run's dispatch on the instance's context, wrapping the dispatch already
there (a worker relaying calls, say), and chooses it:

- a run of a task being resumed (:meth:`Journals.resume`) whose step was recorded
  before gets a :class:`~.replay.Replay` in ``resume`` mode over that step's journal:
  the calls it made are answered from it (no model request is made again), its file
  writes are applied to the new session, and where the journal ends (where the killed
  process stopped) the run goes on live, recording;
- any other run is recorded (:class:`~.record.RunJournal`).

How a resume gets the session right: the resumed task runs in a *fresh* session made
from the working tree, never in the interrupted one (which may hold writes of calls the
journal had not written yet when the process died). Every replayed run applies its
recorded writes, deletes and renames there in their order, subtasks run again (replayed
from their own journals) in branch sessions forked from it and are merged back as
before, so when the replayed part ends the fresh session holds exactly what the
interrupted one held at the last journaled call, and the live part goes on from there.
The interrupted session is left as it was, for the user to compare or discard.

A run lost with its worker (``worker-lost``) moves: the kernel restores the session to
what it held before the run and starts it again (same run id) on another worker or
locally, with ``lost`` given to :meth:`Journals.start`. Every host call of the lost run
was served, and journaled, in the kernel, so its journal is the state that travels: it
is written out, read back, and the new attempt replays it in ``resume`` mode (no model
request made again, its writes applied again to the restored session) before it goes
on live. The new attempt keeps the run's ordinal and its journal, which begins again,
ends up holding the whole run (replayed and live calls), so a later replay or resume of
the task finds it as if the run had never moved.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from briotui.kernel.errors import BrioError
from briotui.kernel.journal.record import (
    CodeLookup,
    JournalWriter,
    RunJournal,
    run_key,
    top_of,
)
from briotui.kernel.journal.replay import RecordedRun, Replay, find_run, run_by_id
from briotui.kernel.runtime.context import CallContext
from briotui.kernel.store import Store
from briotui.kernel.vfs.blobs import BlobStore

log = logging.getLogger(__name__)


class RunHandle:
    """One journaled run: its journal, and its replay when it is resumed."""

    def __init__(
        self, journal: RunJournal, replay: Replay | None, *, ordinal: int = 1, moved: bool = False
    ) -> None:
        self.journal = journal
        self.replay = replay
        self.ordinal = ordinal
        """Which run of its place in the task it is (see :func:`~.replay.find_run`)."""
        self.moved = moved
        """Whether the replay is of the run's own attempt lost with its worker."""


class Journals:
    """Every run journal of a project (see the module).

    Args:
        store: The project database.
        blobs: The blob store (large results, the agents' code).
        code: The version of an agent's code an instance loaded, by its digest (a run's
            code, see :mod:`.record`); None: runs on the shared runtime name no code.
    """

    def __init__(self, store: Store, blobs: BlobStore, code: CodeLookup | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.writer = JournalWriter(store, blobs)
        self.writer.code_lookup = code
        self._resume_from: dict[str, str] = {}
        self._aliases: dict[str, list[tuple[str, str]]] = {}
        self._ordinals: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()  # runs start on worker threads, in parallel
        self.replayed_calls: dict[str, int] = {}
        """Per resumed task: how many host calls were answered from journals."""
        self.moved_calls: dict[str, int] = {}
        """Per task: how many host calls runs moved off a lost worker answered from
        their lost attempt's journal."""

    def resume(self, task_id: str, interrupted: str) -> None:
        """Make the runs of task ``task_id`` replay those of task ``interrupted``."""
        self._resume_from[task_id] = interrupted
        self._aliases[task_id] = [(task_id, interrupted)]
        self.replayed_calls[task_id] = 0

    def resuming(self, run_id: str) -> bool:
        """Whether run ``run_id`` belongs to a task being resumed (its start reads the
        store)."""
        return top_of(run_id) in self._resume_from

    def start(
        self,
        ctx: CallContext,
        *,
        run_id: str,
        agent: str,
        task: dict[str, Any],
        session_id: str = "",
        runtime: str = "",
        code: str = "",
        lost: RunHandle | None = None,
    ) -> RunHandle:
        """Begin the journal of run ``run_id`` and install its dispatch on ``ctx``.

        For a run of a task being resumed (:meth:`resuming`), or with ``lost``, it reads
        the store (the step's journal): call it off the event loop then.

        Args:
            ctx: The run's instance's context.
            run_id: The run's task id.
            agent: The agent.
            task: The task input.
            session_id: The session it works in.
            runtime: The component it runs on.
            code: Its code's digest.
            lost: The journal of the same run's attempt lost with its worker (ended):
                this attempt resumes from it (see the module).
        """
        top, key = top_of(run_id), run_key(run_id)
        moved = self._lost_run(lost) if lost is not None else None
        with self._lock:
            if lost is not None:  # the same run again: its place in the task is kept
                ordinal = lost.ordinal
            else:
                ordinal = self._ordinals.get((top, key), 0) + 1
                self._ordinals[(top, key)] = ordinal
        journal = RunJournal(run_id, self.writer)
        journal.loaded(ctx)  # a warm instance loaded its code before the run
        self.writer.begin(
            journal,
            {
                "top_id": top,
                "run_key": key,
                "ordinal": ordinal,
                "agent": agent,
                "runtime": runtime,
                "code": code,
                "task": task,
                "session_id": session_id,
            },
        )
        if moved is not None:
            # the lost attempt's calls were journaled with the ids this one has: no alias
            replay = Replay(moved, self.blobs, mode="resume", record=journal, inner=ctx.dispatch)
            ctx.dispatch = replay
            return RunHandle(journal, replay, ordinal=ordinal, moved=True)
        source = self._resume_from.get(top)
        recorded = find_run(self.store, source, key, ordinal) if source else None
        if source and recorded is None and key == agent:
            # a one-agent task run directly (`briotui run --agent`): the run was the task
            recorded = find_run(self.store, source, "", ordinal)
        if recorded is not None and recorded.agent == agent:
            with self._lock:
                aliases = self._aliases.setdefault(top, [])
                aliases.append((run_id, recorded.run_id))
                if session_id and recorded.session_id:
                    aliases.append((session_id, recorded.session_id))
            replay = Replay(
                recorded,
                self.blobs,
                mode="resume",
                record=journal,
                inner=ctx.dispatch,
                aliases=aliases,
            )
            ctx.dispatch = replay
            return RunHandle(journal, replay, ordinal=ordinal)
        ctx.dispatch = journal.dispatch(ctx.dispatch)
        return RunHandle(journal, None, ordinal=ordinal)

    def _lost_run(self, lost: RunHandle) -> RecordedRun | None:
        """What the attempt ``lost`` recorded, every call written first (None: its
        journal could not be read; the run then starts again from nothing)."""
        self.writer.flush()  # its pending calls, and its end, go to the store
        try:
            return run_by_id(self.store, lost.journal.run_id)
        except (BrioError, OSError, sqlite3.Error, ValueError) as exc:
            log.warning(
                "the journal of lost run %s could not be read: %s", lost.journal.run_id, exc
            )
            return None

    def end(self, handle: RunHandle, status: str, outcome: dict[str, Any]) -> None:
        """Close a run's journal with how it ended."""
        self.writer.end(handle.journal, status, outcome)
        if handle.replay is not None:
            top = top_of(handle.journal.run_id)
            replayed = handle.replay.replayed
            if handle.moved:
                self.moved_calls[top] = self.moved_calls.get(top, 0) + replayed
            if not handle.moved or top in self.replayed_calls:
                self.replayed_calls[top] = self.replayed_calls.get(top, 0) + replayed

    def close(self) -> None:
        """Write everything pending."""
        self.writer.close()
