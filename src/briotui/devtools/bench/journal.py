"""Run-journal figures for ``briotui bench``: what journaling adds to a host call, and
how fast a journaled run replays.

The overhead is measured on the built-in ``probe`` agent making 20,000
``clock.monotonic-ns`` calls (the cheapest host call, so the journal's share is the
largest it gets), timed by the guest itself, with the kernel journaling and not,
alternated round by round so both see the same machine load; the figure is the
difference of the fastest runs of each (the least disturbed by other work; the medians'
difference is given too), against the target of 10% of the unjournaled call. What the
journal's writer thread then spends per call (digest, JSON, SQLite) is a figure of its
own: it is done after the run (or beside a model call), not during its calls.

Replay speed: that probe run and an ``echo`` run (a model reply, a log line, clock
readings) are replayed with :meth:`Kernel.replay` (every call answered from the journal,
the digests checked), in host calls per second and runs per second.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
import timeit
from types import SimpleNamespace
from typing import cast

from briotui.devtools.bench.measure import Measure
from briotui.kernel.journal import JournalWriter, RunJournal
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.scripted import ScriptedProvider, ScriptedReply
from briotui.kernel.runtime.context import CallContext, RunBindings
from briotui.kernel.runtime.host import clock_monotonic_ns
from briotui.kernel.store import Store
from briotui.kernel.vfs.blobs import BlobStore

PROBE = "probe"
ECHO = "echo"
CALLS = 20_000
JOURNAL_SHARE_TARGET = 0.10
"""Journaling may add at most this share of an unjournaled host call's cost."""


async def _probe_ns(kernel: Kernel, *, journaling: bool) -> float:
    """Nanoseconds per host call of one probe run, as the guest timed them."""
    kernel.journaling = journaling
    try:
        result = await kernel.run_agent(PROBE, f"calls {CALLS}")
    finally:
        kernel.journaling = True
    # the journal's writing happens after the run: not during the next one
    await asyncio.to_thread(kernel.journals().writer.flush)
    return float(json.loads(result.data)["ns_per_call"])


async def bench_journal(kernel: Kernel, *, rounds: int = 20) -> list[Measure]:
    """Journal overhead per host call, and replay speed (see the module)."""
    await kernel.load(PROBE, build=True)
    await kernel.load(ECHO, build=True)
    rounds = max(3, min(rounds, 10))  # each round is two runs of 20,000 calls
    await _probe_ns(kernel, journaling=True)  # warm up both paths
    await _probe_ns(kernel, journaling=False)
    plain: list[float] = []
    journaled: list[float] = []
    writer = kernel.journals().writer
    busy, written = writer.busy_s, writer.written
    for _ in range(rounds):
        plain.append(await _probe_ns(kernel, journaling=False))
        journaled.append(await _probe_ns(kernel, journaling=True))
    writing_us = (writer.busy_s - busy) / max(1, writer.written - written) * 1e6
    # the fastest of each: the least disturbed by whatever else runs on the machine
    base_us = min(plain) / 1000
    with_us = min(journaled) / 1000
    medians = (statistics.median(journaled) - statistics.median(plain)) / 1000
    overhead_us = with_us - base_us
    share = overhead_us / base_us if base_us > 0 else float("nan")
    out = [
        Measure(
            "journal overhead per host call",
            overhead_us,
            "us",
            JOURNAL_SHARE_TARGET * base_us,
            detail=f"probe, {CALLS} clock.monotonic-ns calls, journaled {with_us:.2f} us less "
            f"unjournaled {base_us:.2f} us (the fastest of {rounds} runs each, alternated; "
            f"medians: {medians:+.2f} us): {share * 100:.1f}% of the call "
            f"(target <= {JOURNAL_SHARE_TARGET * 100:.0f}%)",
            peer="the unjournaled call",
            peer_value=base_us,
        ),
        Measure(
            "journal writing per host call, after the run",
            writing_us,
            "us",
            None,
            detail="the writer thread's digest, JSON and SQLite insert per call (batched, "
            "not while the run is busy), mean over the journaled probe runs",
        ),
    ]
    out.append(_dispatch_alone(base_us))
    # replay speed: the last journaled probe run, then an echo run with a model reply
    probe_task = _last_task(kernel, PROBE)
    started = time.perf_counter()
    report = await kernel.replay(probe_task)
    seconds = time.perf_counter() - started
    out.append(
        Measure(
            "replay speed, host calls",
            report.calls / seconds if seconds > 0 else 0.0,
            "calls/s",
            None,
            better="higher",
            detail=f"briotui replay of a probe run of {CALLS} host calls "
            f"({'identical' if report.identical else 'DIVERGED'}), {seconds * 1000:.0f} ms "
            "in all (a throwaway session, the agent's instance, every digest checked)",
        )
    )
    await kernel.run_agent(
        ECHO, "hi", bindings=RunBindings(provider=ScriptedProvider([ScriptedReply("hello")]))
    )
    echo_task = _last_task(kernel, ECHO)
    samples = []
    identical = True
    for _ in range(rounds):
        started = time.perf_counter()
        report = await kernel.replay(echo_task)
        samples.append(time.perf_counter() - started)
        identical = identical and report.identical
    median_s = statistics.median(samples)
    out.append(
        Measure(
            "replay speed, agent runs",
            1 / median_s if median_s > 0 else 0.0,
            "runs/s",
            None,
            better="higher",
            detail=f"briotui replay of an echo run (a model reply, a log line, clock "
            f"readings; {'identical' if identical else 'DIVERGED'}), median of {rounds}: "
            f"{median_s * 1000:.1f} ms a run with its throwaway session",
        )
    )
    return out


def _dispatch_alone(call_us: float) -> Measure:
    """The journal's dispatch timed alone, in this process: the same host function
    called through a run journal's dispatch and directly, 200,000 times each (what
    the machine's load does to the runs above does not reach this one much)."""
    writer = JournalWriter(cast(Store, None), cast(BlobStore, None))
    journal = RunJournal("bench", writer)
    record = journal.dispatch()
    ctx = cast(CallContext, SimpleNamespace(cancelled=threading.Event()))

    def direct() -> None:
        clock_monotonic_ns(ctx)

    def journaled() -> None:
        record(ctx, "clock", "monotonic-ns", clock_monotonic_ns, ())

    n = 200_000
    samples = []
    for _ in range(5):
        journal.pending.clear()
        base = timeit.timeit(direct, number=n)
        with_journal = timeit.timeit(journaled, number=n)
        samples.append((with_journal - base) / n * 1e6)
    journal.pending.clear()
    added = min(samples)
    return Measure(
        "journal dispatch per host call, alone",
        added,
        "us",
        JOURNAL_SHARE_TARGET * call_us,
        detail=f"clock.monotonic-ns through a run journal's dispatch less called directly, "
        f"{n} calls, best of 5: {added / call_us * 100:.1f}% of the guest's host call "
        f"({call_us:.2f} us above)",
    )


def _last_task(kernel: Kernel, agent: str) -> str:
    rows = kernel.sessions().store.query(
        "SELECT top_id FROM journal_runs WHERE agent = ? ORDER BY started DESC LIMIT 1",
        (agent,),
    )
    return str(rows[0]["top_id"])
