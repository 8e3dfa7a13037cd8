"""The agent a request needs is built before the rest of a background build.

On a first start the TUI builds every agent in the background; a request for one agent
(`@smart run the tests`) must not wait behind the others. The real kernel and builder
run on an empty cache; only componentize-py itself is replaced by a gate the test opens,
so the order and overlap of the builds can be seen without minutes of CPU.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import briotui.kernel.runtime.build as build_module
from briotui.kernel.errors import BuildError
from briotui.kernel.kernel import Kernel
from briotui.kernel.runtime.cache import BuildCache


class Gates:
    """A stand-in for componentize-py: each world's build waits for its gate."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.running: set[str] = set()
        self.beside: dict[str, set[str]] = {}
        """What was running when each build started."""

    def gate(self, world: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(world, threading.Event())

    def componentize(self, args: list[str], *_: object) -> str:
        world = args[args.index("-w") + 1].removeprefix("brio-python-")
        with self.lock:
            self.started.append(world)
            self.beside[world] = set(self.running)
            self.running.add(world)
        self.gate(world).wait(60)
        with self.lock:
            self.running.discard(world)
        return "stand-in build failed"  # no component: the build fails, as a build may


async def until(check: Callable[[], bool], limit_s: float = 30.0) -> None:
    end = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


async def test_the_agent_a_request_needs_builds_before_the_rest(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Observed: `@smart ...` on a first start waited ~80 s: its build ran beside the
    # background build of the other agents, which kept starting new ones on the two cores.
    gates = Gates()
    monkeypatch.setattr(build_module, "_run_componentize", gates.componentize)
    kernel = Kernel(project, cache=BuildCache(tmp_path / "empty-cache"))
    try:
        background = asyncio.ensure_future(kernel.build_agents())  # the TUI's, on start
        await until(lambda: sorted(gates.started) == ["council", "foreman"])  # two at once
        request = asyncio.ensure_future(kernel.load("smart", build=True))
        await until(lambda: "smart" in gates.started)
        gates.gate("council").set()
        await until(lambda: "council" not in gates.running)
        await asyncio.sleep(1.0)  # a background worker is free now: it must wait
        assert gates.started[2:] == ["smart"]
        gates.gate("smart").set()
        with pytest.raises(BuildError, match="stand-in build failed"):
            await request
        for world in ("foreman", "coder", "reviewer", "minimal"):
            gates.gate(world).set()
        results = await background
        assert {r.agent for r in results} >= {"council", "coder", "smart"}
        later = gates.started[gates.started.index("smart") + 1 :]
        assert later  # the rest of the background build went on afterwards
        assert all("smart" not in gates.beside[w] for w in later)
    finally:
        for gate in list(gates.gates.values()):
            gate.set()
        await kernel.close()
