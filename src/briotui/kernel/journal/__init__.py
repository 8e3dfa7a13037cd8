"""Run journals: every agent run's host calls recorded, so it can be replayed and resumed.

A WebAssembly agent is deterministic given what its imports return. The kernel records
each run's host calls in order (:mod:`.record`), with the digest of their arguments and
their results, plus the agent's code identity and its task input; :mod:`.replay` answers
a run's calls from its journal again, for ``briotui replay`` (checking that a run, or a
changed agent, makes the same calls) and for resuming an interrupted task without asking
the model again for what it already answered (:mod:`.book`).

What is *not* journaled, and why a replay is exact anyway:

- The agents' clock is the brio ``clock`` import, which goes through the journal.
- WASI clocks and randomness (``wasi:clocks``, ``wasi:random``) are served by wasmtime
  directly, outside the host-call seam, and wasmtime-py offers no hook to serve them
  from recorded values. In the shared Python runtime they reach an agent only through
  ``time.time()``/``time.monotonic()`` and the ``random`` module (seeded from WASI
  random at each run's start). The shipped agents use neither; the string hash seed is
  fixed in the pre-initialised runtime, so set and dict orders are the same in every
  instance. An agent that does use them can make a replay diverge only through what
  leaves the guest: a host call's arguments (their digest then differs) or its final
  result (compared with the recorded outcome). Either is reported as a divergence,
  never passed as identical; a resume goes live from such a call, which is correct.
"""

from __future__ import annotations

from briotui.kernel.journal.book import Journals, RunHandle
from briotui.kernel.journal.record import JournalWriter, RunJournal, run_key, top_of
from briotui.kernel.journal.replay import (
    Divergence,
    RecordedRun,
    Replay,
    find_run,
    journaled_tasks,
    run_by_id,
    runs_of,
)

__all__ = [
    "Divergence",
    "JournalWriter",
    "Journals",
    "RecordedRun",
    "Replay",
    "RunHandle",
    "RunJournal",
    "find_run",
    "journaled_tasks",
    "run_by_id",
    "run_key",
    "runs_of",
    "top_of",
]
