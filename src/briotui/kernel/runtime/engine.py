"""The one wasmtime Engine per kernel, and the epoch ticker that enforces deadlines.

The engine has the component model, fuel and epoch interruption on. Its
:func:`fingerprint` names that configuration so a compiled artifact is only ever loaded
into an engine configured the same way (wasmtime: a serialized component only
loads into an engine with the same config).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import ClassVar

import wasmtime

from briotui.kernel.errors import HostError

TICK_MS = 2
"""Epoch tick period. A deadline fires at most one tick (plus scheduling) late."""


@dataclass(frozen=True)
class EngineSettings:
    """The engine configuration that compiled artifacts depend on."""

    consume_fuel: bool = True
    epoch_interruption: bool = True
    parallel_compilation: bool = True

    def fingerprint(self) -> str:
        """A short stable id of this configuration and the wasmtime version."""
        text = (
            f"wasmtime={wasmtime_version()};fuel={self.consume_fuel};"
            f"epoch={self.epoch_interruption};component-model=1"
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def wasmtime_version() -> str:
    """The installed wasmtime-py version."""
    from importlib.metadata import version

    return version("wasmtime")


def make_engine(settings: EngineSettings | None = None) -> wasmtime.Engine:
    """A new engine with the component model, fuel and epoch interruption enabled."""
    s = settings or EngineSettings()
    config = wasmtime.Config()
    config.wasm_component_model = True
    config.consume_fuel = s.consume_fuel
    config.epoch_interruption = s.epoch_interruption
    config.parallel_compilation = s.parallel_compilation
    return wasmtime.Engine(config)


class EpochTicker:
    """Increments the engine's epoch every :data:`TICK_MS` while it is started.

    Stores set their deadline in ticks relative to the epoch at call start, so a
    runaway guest is interrupted within about one tick of its deadline.

    Every started ticker of the process is served by one daemon thread
    (``brio-epoch-ticker``): a thread per engine, each taking the GIL 500 times a
    second, slowed a process with many kernels (the test suite) many times over. The
    thread holds the engines weakly and ends when none is left; a ticker whose kernel
    was dropped without :meth:`stop` leaves with its engine. :meth:`stop` is final: a
    guest made after it (a pool's refill that was under way when its kernel closed)
    gets an error instead of ticking again.
    """

    def __init__(self, engine: wasmtime.Engine, tick_ms: int = TICK_MS) -> None:
        self._engine = weakref.ref(engine)
        self.tick_ms = tick_ms
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def running(self) -> bool:
        """Whether the engine is being ticked."""
        return _Ticking.of(self.tick_ms).has(self)

    def ensure_started(self) -> None:
        """Start ticking if not already (idempotent, thread-safe).

        Raises:
            HostError: The ticker was stopped (its kernel is closed): no guest may run
                without its deadline.
        """
        with self._lock:
            if self._stopped:
                raise HostError(
                    "The kernel was closed while an agent was starting; start it again "
                    "to run agents.",
                    title="Kernel closed",
                )
            _Ticking.of(self.tick_ms).add(self, self._engine)

    def ticks_for(self, ms: int) -> int:
        """Epoch ticks that cover ``ms`` milliseconds (at least one)."""
        return max(1, -(-ms // self.tick_ms))

    def stop(self) -> None:
        """Stop ticking this engine, for good."""
        with self._lock:
            self._stopped = True
            _Ticking.of(self.tick_ms).remove(self)


class _Ticking:
    """The one thread ticking every started engine of one tick period."""

    _registry_lock: ClassVar[threading.Lock] = threading.Lock()
    _all: ClassVar[dict[int, _Ticking]] = {}

    @classmethod
    def of(cls, tick_ms: int) -> _Ticking:
        with cls._registry_lock:
            ticking = cls._all.get(tick_ms)
            if ticking is None:
                ticking = cls._all[tick_ms] = _Ticking(tick_ms)
            return ticking

    def __init__(self, tick_ms: int) -> None:
        self._period = tick_ms / 1000
        self._lock = threading.Lock()
        self._engines: dict[int, weakref.ref[wasmtime.Engine]] = {}
        """By ``id()`` of the ticker (an entry whose engine is gone is dropped)."""
        self._thread: threading.Thread | None = None

    def has(self, ticker: EpochTicker) -> bool:
        with self._lock:
            ref = self._engines.get(id(ticker))
            return ref is not None and ref() is not None and self._thread is not None

    def add(self, ticker: EpochTicker, engine: weakref.ref[wasmtime.Engine]) -> None:
        with self._lock:
            self._engines[id(ticker)] = engine
            if self._thread is None or not self._thread.is_alive():  # (a forked child)
                self._thread = threading.Thread(
                    target=self._run, name="brio-epoch-ticker", daemon=True
                )
                self._thread.start()

    def remove(self, ticker: EpochTicker) -> None:
        with self._lock:
            self._engines.pop(id(ticker), None)

    def _run(self) -> None:
        while True:
            time.sleep(self._period)
            with self._lock:
                gone = [key for key, ref in self._engines.items() if ref() is None]
                for key in gone:
                    del self._engines[key]
                if not self._engines:  # nothing to tick: end (a new start makes a thread)
                    self._thread = None
                    return
                refs = list(self._engines.values())
            for ref in refs:
                _increment(ref)


def _increment(ref: weakref.ref[wasmtime.Engine]) -> None:
    """One tick of one engine (no reference to it is kept between ticks)."""
    engine = ref()
    if engine is not None:
        engine.increment_epoch()


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: its tickers start afresh."""
    _Ticking._registry_lock = threading.Lock()
    _Ticking._all = {}


os.register_at_fork(after_in_child=_after_fork_in_child)
