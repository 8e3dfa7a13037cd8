"""A warm pool of pre-instantiated agents per kind, so handing one out takes microseconds.

Instances are single-use (a task gets a fresh instance, so no state leaks between
tasks). An agent on its world's shared Python runtime is loaded in its pooled instances
before they are handed out (its code imported, its ``Agent`` made), so a warm run only
runs; the run checks that the code did not change since (hot reload). Handing one out
does no other work: the pool is refilled once the instance it handed out has run (or
was discarded), so the instantiation of the next instance never competes with the run
for the CPU or the event loop. A run that finds the pool empty makes its instance
itself (a cold run), which loads the code in its run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from briotui.kernel.runtime.events import EventSink
from briotui.kernel.runtime.instance import AgentInstance, LoadedAgent


class AgentPool:
    """Ready instances of one agent."""

    def __init__(
        self,
        loaded: LoadedAgent,
        *,
        size: int,
        loop: asyncio.AbstractEventLoop,
        events: EventSink,
    ) -> None:
        self.loaded = loaded
        self.size = size
        self._loop = loop
        self._events = events
        self._ready: deque[AgentInstance] = deque()
        self._refill: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def ready(self) -> int:
        """How many instances are waiting."""
        return len(self._ready)

    async def _new(self, *, prepare: bool = False) -> AgentInstance:
        """A new ready instance; with ``prepare``, one that has loaded its agent's code
        too (see :meth:`AgentInstance.prepare`), so its run only runs."""
        while True:
            instance = AgentInstance(self.loaded, loop=self._loop, events=self._events)
            try:
                await instance.start()
                if not prepare or await instance.prepare():
                    return instance
            except BaseException:  # cancelled (the pool closed) or failed: stop its thread
                instance.discard()
                raise
            instance.discard()  # blocked while loading: abandoned, a fresh one loads in its run
            prepare = False

    async def fill(self) -> None:
        """Instantiate until the pool holds ``size`` ready instances."""
        while not self._closed and len(self._ready) < self.size:
            instance = await self._new(prepare=True)
            if self._closed:  # closed while it was made: nobody would ever discard it
                instance.discard()
                return
            self._ready.append(instance)

    def _schedule_refill(self) -> None:
        if self._closed or (self._refill is not None and not self._refill.done()):
            return
        self._refill = self._loop.create_task(self.fill(), name=f"refill-{self.loaded.spec.name}")

    def refill_later(self) -> None:
        """Refill the pool soon, off the critical path (call when a run has ended)."""
        if not self._closed:
            self._loop.call_soon(self._schedule_refill)

    def take(self) -> AgentInstance | None:
        """A ready instance if there is one (no await: microseconds), else None.

        The pool refills once that instance has run (see the module docstring).
        """
        if not self._ready:
            return None
        instance = self._ready.popleft()
        instance.when_done(self.refill_later)
        return instance

    async def acquire(self) -> AgentInstance:
        """A ready instance: from the pool, or made now if the pool is empty."""
        instance = self.take()
        if instance is not None:
            return instance
        refill = self._refill
        if refill is not None and not refill.done():  # one is being made: it is sooner
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(refill)
            instance = self.take()
            if instance is not None:
                return instance
        instance = await self._new()
        instance.when_done(self.refill_later)
        return instance

    async def fresh(self) -> AgentInstance:
        """An instance of its own, not from the pool and with no code loaded yet: its run
        loads the agent's code itself, through whatever dispatch the caller installs
        first (a replay serving the code a run was recorded with). The pool is not
        refilled for it."""
        return await self._new()

    async def close(self) -> None:
        """Discard the waiting instances and stop refilling."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refill
        while self._ready:
            self._ready.popleft().discard()
