"""Live meters of a running instance: fuel used and linear-memory size, from its store.

A :class:`Meter` is sampled on the instance's own thread (the only one that may touch
its wasmtime Store): at each epoch check of the running guest and at each host call,
throttled to one sample per :data:`PERIOD_S`, plus one when the run starts and a final
one when it ends. Each sample is published as a :class:`~.events.Metrics` event, which
the kernel turns into the ``/agents/<instance>`` meters of the state tree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import wasmtime

from briotui.kernel.limits import Limits
from briotui.kernel.runtime import memory
from briotui.kernel.runtime.events import EventSink, Metrics

PERIOD_S = 0.1
"""The shortest time between two published samples of one instance (~10 a second)."""


class Meter:
    """Samples one instance's fuel and memory and publishes them, coalesced.

    Args:
        agent: The agent's name.
        instance: The instance's id.
        limits: The instance's limits (the meters' full scale).
        events: Where samples are published.
        memories: Returns where the instance's linear memories start.
    """

    def __init__(
        self,
        *,
        agent: str,
        instance: str,
        limits: Limits,
        events: EventSink,
        memories: Callable[[], tuple[int, ...]],
    ) -> None:
        self._agent = agent
        self._instance = instance
        self._limits = limits
        self._events = events
        self._memories = memories
        self._store: wasmtime.Store | None = None
        self._task = ""
        self._next = 0.0
        self.fuel_used = 0
        self.peak_memory_bytes = 0
        self._first = True
        """No unforced sample was published yet in this run (the first always is)."""

    def begin(self, store: wasmtime.Store, task: str) -> None:
        """Start metering a run of ``task`` (its fuel was just set to the limit)."""
        self._store = store
        self._task = task
        self.fuel_used = 0
        self.sample(force=True)  # the memory at once; fuel from the first check or call on
        self._first = True
        self._next = 0.0

    def sample(self, *, force: bool = False, final: bool = False) -> None:
        """Measure and publish, unless the last sample is younger than :data:`PERIOD_S`."""
        store = self._store
        if store is None:
            return
        now = time.monotonic()
        # The first check or host call of a run is never throttled: a guest that soon
        # blocks in a long host call (a model reply) would otherwise show no fuel burnt
        # until it ends.
        if not force and now < self._next and not self._first:
            return
        if not force:
            self._first = False
        self._next = now + PERIOD_S
        try:
            self.fuel_used = max(0, self._limits.fuel - store.get_fuel())
        except wasmtime.WasmtimeError:  # fuel is off in this engine
            self.fuel_used = 0
        size = memory.linear_bytes(self._memories())
        self.peak_memory_bytes = max(self.peak_memory_bytes, size)
        self._events(
            Metrics(
                agent=self._agent,
                instance=self._instance,
                task=self._task,
                fuel_used=self.fuel_used,
                fuel_limit=self._limits.fuel,
                memory_bytes=size,
                memory_limit=self._limits.memory_bytes,
                peak_memory_bytes=self.peak_memory_bytes,
                final=final,
            )
        )

    def finish(self) -> None:
        """Publish the run's final values and stop metering."""
        self.sample(force=True, final=True)
        self._store = None

    def forget(self) -> None:
        """Let go of the store (the instance is being torn down)."""
        self._store = None
