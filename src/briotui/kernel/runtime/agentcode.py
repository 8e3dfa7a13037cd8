"""Serving an agent's code to its world's shared Python runtime, with its code objects.

A runtime instance asks for its agent's modules at its first run (``agent-code``). Each
module comes with its code object, so the run loads code instead of compiling it (for
the Coder about 10 ms a run). The code objects are made once per version of the
sources, by the runtime's own compiler (the ``agent-compiler`` export: CPython's
``compile``, marshalled) in an instance of its own where no agent code ever runs, and
kept in memory and in the build cache (``pycode/``), so a new process loads them too.
Anything that goes wrong there only costs time: the runtime compiles the sources itself
(and reports their errors, with file and line).

The server also remembers which versions it served (:meth:`CodeServer.served`): the
version an instance loaded is in its context (``code_digest``), whether it loaded it
before its run (a warm pool's instance) or in it, and the run journal keeps that
version's sources as the run's code.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

from briotui.kernel.agents import AgentSpec
from briotui.kernel.errors import BuildError, HostError
from briotui.kernel.runtime.cache import atomic_write
from briotui.kernel.runtime.engine import EpochTicker
from briotui.kernel.runtime.host import HostImpl, build_linker
from briotui.kernel.runtime.pyruntime import (
    AGENT_CODE,
    AGENT_COMPILER_EXPORT,
    AgentCode,
    CodeCache,
)

log = logging.getLogger(__name__)

COMPILE_FUEL = 20_000_000_000
"""Fuel for compiling an agent's sources in a runtime instance of its own."""
COMPILE_MEMORY_BYTES = 512 * 1024 * 1024
COMPILE_DEADLINE_MS = 60_000
SERVED_KEPT = 256
"""Versions of agents' code :meth:`CodeServer.served` remembers (a few per agent edited)."""


def _owner_gone(spec: AgentSpec) -> None:
    """The check of a kernel that is gone: nothing of it may serve code any more."""
    raise BuildError(
        f"The kernel that loaded {spec.name!r} was closed; start it again to run agents.",
        agent=spec.name,
        title="Kernel closed",
    )


class CodeServer:
    """What the shared runtimes' ``agent-code`` import serves, and the code objects.

    Args:
        engine: The kernel's engine.
        ticker: Its epoch ticker (the compiling instance has a deadline too).
        root: The build cache's root (code objects go under ``pycode/``).
        code: The agents' sources, read once per version.
        component: The loaded runtime component of a cache key (None if not loaded).
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        ticker: EpochTicker,
        root: Path,
        code: CodeCache,
        component: Callable[[str], wc.Component | None],
    ) -> None:
        self.engine = engine
        self.ticker = ticker
        self.root = root
        self.code = code
        self.component = component
        self._check: Callable[[], Callable[[AgentSpec], None] | None] | None = None
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, str]] = {}
        self._served: dict[str, AgentCode] = {}

    def served(self, digest: str) -> AgentCode | None:
        """The version ``digest`` of an agent's code, if this server served it (the code
        an instance with that ``code_digest`` loaded)."""
        with self._lock:
            return self._served.get(digest)

    def _remember(self, code: AgentCode) -> None:
        with self._lock:
            if code.digest in self._served:
                return
            if len(self._served) >= SERVED_KEPT:
                del self._served[next(iter(self._served))]  # the oldest
            self._served[code.digest] = code

    @property
    def check(self) -> Callable[[AgentSpec], None] | None:
        """Called before a new version of an agent's code is served (it may refuse).

        A bound method is held weakly: the host functions live in wasmtime's global
        table until their linker is freed, and the linker is the kernel's, so a strong
        reference to the kernel here would keep every kernel (its engine, components and
        stores: about 50 MB each) alive for the rest of the process.
        """
        if self._check is None:
            return None
        check = self._check()
        return check if check is not None else _owner_gone

    @check.setter
    def check(self, check: Callable[[AgentSpec], None] | None) -> None:
        if check is None:
            self._check = None
        elif inspect.ismethod(check):
            self._check = weakref.WeakMethod(check)
        else:
            self._check = lambda: check

    def host_functions(
        self, spec: AgentSpec, key: str = ""
    ) -> Mapping[str, Mapping[str, HostImpl]]:
        """The ``agent-code`` interface for ``spec`` on the runtime ``key`` ("" for no
        code objects: the compiling instance itself)."""
        checked: list[AgentCode] = []

        def modules(ctx: Any) -> list[dict[str, Any]]:
            ctx.host_calls -= 1  # the runtime reading its code is not the agent's call
            now = self.code.code(spec)
            if not checked or checked[0] is not now:  # a new version: may it run?
                if self.check is not None:
                    try:
                        self.check(spec)
                    except BuildError as refused:  # the run fails with this, as it is
                        ctx.fatal = HostError(refused.message, agent=spec.name, title=refused.title)
                        raise wasmtime.WasmtimeError(f"brio: {refused.title}") from None
                checked[:] = [now]
                self._remember(now)
            ctx.code_digest = now.digest  # the version this instance runs
            return served_modules(now, self.compiled(key, now, spec) if key else {})

        return {AGENT_CODE: {"modules": modules}}

    def compiled(self, key: str, code: AgentCode, spec: AgentSpec) -> dict[str, str]:
        """The code objects of ``code`` as the runtime ``key`` compiles them, by file
        (marshalled, base64); empty when they cannot be made."""
        name = f"{key}-{code.digest}"
        with self._lock:
            hit = self._objects.get(name)
        if hit is not None:
            return hit
        path = self.root / "pycode" / f"{name}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            compiled = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            compiled = self._compile(key, code, spec)
            if compiled:
                with contextlib.suppress(OSError):
                    atomic_write(path, json.dumps(compiled).encode())
        with self._lock:
            self._objects[name] = compiled
        return compiled

    def _compile(self, key: str, code: AgentCode, spec: AgentSpec) -> dict[str, str]:
        component = self.component(key)
        if component is None or not code.modules:
            return {}
        try:
            store = wasmtime.Store(self.engine)
            store.set_wasi(wasmtime.WasiConfig())  # a store without WASI aborts the process
            store.set_limits(memory_size=COMPILE_MEMORY_BYTES)
            store.set_fuel(COMPILE_FUEL)
            self.ticker.ensure_started()
            store.set_epoch_deadline(self.ticker.ticks_for(COMPILE_DEADLINE_MS))
            # The agent's own linker: the compiler calls none of it (no agent code runs).
            linker, _ = build_linker(self.engine, component, spec, extra=self.host_functions(spec))
            instance = linker.instantiate(store, component)
            index = instance.get_export_index(store, AGENT_COMPILER_EXPORT)
            fn_index = instance.get_export_index(store, "compile", index) if index else None
            func = instance.get_func(store, fn_index) if fn_index else None
            if func is None:
                return {}
            raw = func(store, [(m.path, m.source) for m in code.modules])
            func.post_return(store)
        except wasmtime.WasmtimeError as exc:
            log.info("the runtime %s could not compile %s: %s", key, code.digest, exc)
            return {}
        values = (raw.payload if raw.tag == "ok" else None) if hasattr(raw, "tag") else raw
        if not isinstance(values, list) or len(values) != len(code.modules):
            return {}  # a syntax error: the run reports it, with its file and line
        return {m.path: str(v) for m, v in zip(code.modules, values, strict=True)}


def served_modules(code: AgentCode, compiled: Mapping[str, str]) -> list[dict[str, Any]]:
    """What ``agent-code.modules`` returns for ``code``: its modules, each with its code
    object where ``compiled`` has one (its source is not needed then)."""
    return [
        {
            "name": m.name,
            "path": m.path,
            "source": "" if compiled.get(m.path) else m.source,
            "is_package": m.is_package,
            "code": compiled.get(m.path, ""),
        }
        for m in code.modules
    ]
