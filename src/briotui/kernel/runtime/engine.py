"""The one wasmtime Engine per kernel, and the epoch ticker that enforces deadlines.

The engine has the component model, fuel and epoch interruption on. Its
:func:`fingerprint` names that configuration so a compiled artifact is only ever loaded
into an engine configured the same way (wasmtime: a serialized component only
loads into an engine with the same config).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass

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
    """A daemon thread that increments the engine's epoch every :data:`TICK_MS`.

    Stores set their deadline in ticks relative to the epoch at call start, so a
    runaway guest is interrupted within about one tick of its deadline.

    The thread holds its engine weakly: a ticker whose kernel was dropped without
    :meth:`stop` ends with the engine instead of keeping it (and its thread, waking
    500 times a second) alive for the rest of the process. :meth:`stop` is final: a
    guest made after it (a pool's refill that was under way when its kernel closed)
    gets an error instead of starting the thread again.
    """

    def __init__(self, engine: wasmtime.Engine, tick_ms: int = TICK_MS) -> None:
        self._engine = weakref.ref(engine)
        self.tick_ms = tick_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def running(self) -> bool:
        """Whether the ticking thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure_started(self) -> None:
        """Start the ticker if it is not running (idempotent, thread-safe).

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
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=_tick,
                args=(self._engine, self._stop, self.tick_ms / 1000),
                name="brio-epoch-ticker",
                daemon=True,
            )
            self._thread.start()

    def ticks_for(self, ms: int) -> int:
        """Epoch ticks that cover ``ms`` milliseconds (at least one)."""
        return max(1, -(-ms // self.tick_ms))

    def stop(self) -> None:
        """Stop the ticker for good and wait for its thread."""
        with self._lock:
            self._stopped = True
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1)


def _tick(engine_ref: weakref.ref[wasmtime.Engine], stop: threading.Event, period: float) -> None:
    """The ticker's loop: no strong reference to the ticker or the engine between ticks."""
    while not stop.wait(period):
        engine = engine_ref()
        if engine is None:  # the kernel is gone: so is the reason to tick
            return
        engine.increment_epoch()
        del engine
