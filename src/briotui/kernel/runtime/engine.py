"""The one wasmtime Engine per kernel, and the epoch ticker that enforces deadlines.

The engine has the component model, fuel and epoch interruption on. Its
:func:`fingerprint` names that configuration so a compiled artifact is only ever loaded
into an engine configured the same way (wasmtime: a serialized component only
loads into an engine with the same config).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import wasmtime

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
    """

    def __init__(self, engine: wasmtime.Engine, tick_ms: int = TICK_MS) -> None:
        self._engine = engine
        self.tick_ms = tick_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the ticker if it is not running (idempotent, thread-safe)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="brio-epoch-ticker", daemon=True)
            self._thread.start()

    def ticks_for(self, ms: int) -> int:
        """Epoch ticks that cover ``ms`` milliseconds (at least one)."""
        return max(1, -(-ms // self.tick_ms))

    def _run(self) -> None:
        period = self.tick_ms / 1000
        while not self._stop.wait(period):
            self._engine.increment_epoch()

    def stop(self) -> None:
        """Stop the ticker and wait for its thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=1)
