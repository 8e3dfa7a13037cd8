"""The probe agent: one diagnostic action per task, named by the goal's first word.

- ``calls N``: make N small host calls (``clock.monotonic-ns``); reports ns per call;
- ``spin MS``: compute for about MS milliseconds, then return;
- ``loop``: compute forever (the deadline must stop it);
- ``alloc MB``: hold MB megabytes (the memory limit must stop a large one);
- ``bigout N``: return a summary of N bytes (the message limit must refuse a large one);
- ``ask``: one model call, returning the reply (a slow provider shows the watchdog);
- ``print N``: write N lines to stdout (the log must stay bounded);
- ``sleep S``: sleep S seconds in WASI (a blocking poll; the deadline and a cancel
  must still stop it on time);
- ``panic``: raise an exception the agent does not handle;
- ``fail``: return an error value on purpose.
"""

import json
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import clock, llm, log, types


def _arg(words, default):
    return int(words[1]) if len(words) > 1 else default


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        words = task.goal.split()
        action = words[0] if words else ""
        if action == "calls":
            n = _arg(words, 1000)
            start = clock.monotonic_ns()
            for _ in range(n):
                clock.monotonic_ns()
            elapsed = clock.monotonic_ns() - start
            return agent.Outcome(
                summary=f"{n} host calls", data=json.dumps({"calls": n, "ns_per_call": elapsed / n})
            )
        if action == "spin":
            ms = _arg(words, 100)
            end = clock.monotonic_ns() + ms * 1_000_000
            count = 0
            while True:
                for _ in range(10_000):
                    count += 1
                if clock.monotonic_ns() >= end:
                    break
            return agent.Outcome(summary=f"spun {ms} ms", data=json.dumps({"count": count}))
        if action == "loop":
            count = 0
            while True:
                count += 1
        if action == "alloc":
            mb = _arg(words, 16)
            blocks = [bytearray(1024 * 1024) for _ in range(mb)]
            for block in blocks:
                block[0] = 1
            return agent.Outcome(summary=f"held {len(blocks)} MiB", data="")
        if action == "bigout":
            return agent.Outcome(summary="x" * _arg(words, 1024), data="")
        if action == "print":
            for i in range(_arg(words, 10)):
                print(f"line {i}")
            return agent.Outcome(summary="printed", data="")
        if action == "ask":
            request = llm.CompletionRequest(
                messages=[llm.Message(role=llm.Role.USER, content=task.goal)],
                max_tokens=None,
                temperature=None,
                stop=[],
                purpose="probe",
            )
            try:
                reply = llm.complete(request)
            except Err as failure:
                raise Err(types.Error(kind=failure.value.kind, message=failure.value.message))
            return agent.Outcome(summary=reply.text, data=json.dumps({"model": reply.model}))
        if action == "sleep":
            seconds = _arg(words, 60)
            time.sleep(seconds)
            return agent.Outcome(summary=f"slept {seconds} s", data="")
        if action == "panic":
            raise RuntimeError("probe was asked to panic")
        if action == "fail":
            raise Err(types.Error(kind=types.ErrorKind.FAILED, message="probe was asked to fail"))
        log.emit(log.Level.WARN, f"probe: unknown action {action!r}")
        raise Err(types.Error(kind=types.ErrorKind.INVALID, message=f"unknown action {action!r}"))
