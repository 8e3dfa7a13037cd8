"""The trap soak's child process: many trapping runs of the probe agent in one process.

Run by ``test_trap_soak.py`` in a subprocess, because what it guards against is the
whole process dying (a Rust abort at exit), which no in-process test can see. Prints
one JSON line: how many runs ended with which typed error.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.instance import AgentInstance, AgentTask, RunFailed

MIB = 1 << 20


async def soak(project: Path, runs: int) -> dict[str, object]:
    kernel = Kernel(project)
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        loaded = await kernel.load("probe")
        # Small limits, so that the fuel and the memory traps come quickly.
        limits = loaded.spec.limits
        fuel = replace(loaded, spec=replace(loaded.spec, limits=replace(limits, fuel=10_000_000)))
        memory = replace(
            loaded, spec=replace(loaded.spec, limits=replace(limits, memory_bytes=32 * MIB))
        )
        for n in range(runs):
            mode = ("loop", "alloc 200", "panic", "panic")[n % 4]  # ends on a panic
            try:
                if mode == "panic":  # the kernel's own path: pool, recorder, events
                    await kernel.run_agent("probe", mode)
                else:
                    agent = fuel if mode == "loop" else memory
                    instance = AgentInstance(agent, loop=kernel.loop, events=kernel.events.publish)
                    await instance.run(AgentTask(f"t{n}", mode))
                kinds["completed"] += 1
            except RunFailed as failure:
                kinds[f"{mode}:{type(failure.error).__name__}"] += 1
    finally:
        await kernel.close()
    return {"kinds": dict(kinds), "seconds": round(time.perf_counter() - started, 2)}


if __name__ == "__main__":
    result = asyncio.run(soak(Path(sys.argv[1]), int(sys.argv[2])))
    print(json.dumps(result))
