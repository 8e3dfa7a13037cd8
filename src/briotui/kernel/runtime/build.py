"""Building agents into components, compiling them, and loading them from the cache.

Three steps per agent, each skipped when its cached output exists:

1. *building*: ``componentize-py`` turns ``app.py`` into a component against the
   agent's world (a prebuilt ``.wasm``/``.wat`` named in ``agent.toml`` is used as is);
2. *compiling*: wasmtime compiles the component for this engine configuration, checks
   its imports against the kernel (:func:`~.host.build_linker`), and serializes it;
3. *loading*: ``Component.deserialize_file`` — milliseconds, no recompiling.

A failure in one agent is reported with the agent, the file and the cause, and never
stops the others.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import wasmtime
from wasmtime import component as wc

from briotui.kernel.agents import AgentSpec
from briotui.kernel.errors import AgentError, BuildError, ComponentError, WitError
from briotui.kernel.paths import wit_dir
from briotui.kernel.runtime.cache import BuildCache, CacheEntry, atomic_write, source_key
from briotui.kernel.runtime.engine import EngineSettings, EpochTicker
from briotui.kernel.runtime.host import build_linker
from briotui.kernel.runtime.instance import LoadedAgent

Phase = Literal["cached", "building", "compiling", "done", "failed"]

BUILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class BuildEvent:
    """Progress of one agent's build."""

    agent: str
    phase: Phase
    elapsed_ms: float = 0.0
    error: BuildError | None = None


@dataclass(frozen=True)
class BuildResult:
    """How one agent's build ended."""

    agent: str
    origin: str
    status: Literal["cached", "built", "failed"]
    key: str = ""
    build_ms: float = 0.0
    compile_ms: float = 0.0
    error: BuildError | None = None

    def to_dict(self) -> dict[str, object]:
        """As JSON-able data."""
        return {
            "agent": self.agent,
            "origin": self.origin,
            "status": self.status,
            "key": self.key,
            "build_ms": round(self.build_ms, 1),
            "compile_ms": round(self.compile_ms, 1),
            "error": self.error.to_dict() if self.error else None,
        }


_CAUSED = re.compile(r"Caused by:\s*(.*?)(?:\n\s*\nStack backtrace:|\nStack backtrace:|\Z)", re.S)
_WIT_LOC = re.compile(r"-->\s*(\S+?\.wit):(\d+):(\d+)")
_PY_LOC = re.compile(r'File "/\d+/([^"]+)", line (\d+)')


def _componentize_error(spec: AgentSpec, output: str) -> BuildError:
    """A readable BuildError from componentize-py's output (never its stack backtrace)."""
    match = _CAUSED.search(output)
    cause = match.group(1).strip() if match else output.strip().splitlines()[-1:]
    text = cause if isinstance(cause, str) else " ".join(cause)
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    detail = "\n".join(lines[-12:]) if lines else "componentize-py failed without a message"
    if (wit := _WIT_LOC.search(output)) is not None:
        return WitError(
            f"The WIT for agent {spec.name!r} does not parse:\n{detail}",
            agent=spec.name,
            file=f"{wit.group(1)}:{wit.group(2)}",
        )
    file = str(spec.directory / "app.py")
    locations = _PY_LOC.findall(output)
    if locations:
        rel, line = locations[-1]
        file = f"{spec.directory / rel}:{line}"
    return BuildError(
        f"componentize-py could not build agent {spec.name!r} ({file}):\n{detail}",
        agent=spec.name,
        file=file,
    )


def componentize(spec: AgentSpec, out: Path, *, wit: Path | None = None) -> None:
    """Build ``spec``'s ``app.py`` into a component at ``out`` with componentize-py.

    Raises:
        BuildError: the build failed (syntax error, import error, WIT error, timeout).
    """
    args = ["-d", str(wit or wit_dir())]
    if spec.extra_wit is not None:
        args += ["-d", str(spec.extra_wit)]
    args += ["-w", spec.world, "componentize", "-p", str(spec.directory), "app", "-o", str(out)]
    command = [
        sys.executable,
        "-c",
        "import sys, componentize_py; sys.argv[0] = 'componentize-py'; "
        "sys.exit(componentize_py.script())",
        *args,
    ]
    env = {**os.environ, "RUST_BACKTRACE": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            env=env,
            cwd=spec.directory,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(
            f"componentize-py took over {BUILD_TIMEOUT_S} s building {spec.name!r}; "
            "the agent's imports may pull in too much.",
            agent=spec.name,
            file=str(spec.directory / "app.py"),
        ) from None
    if proc.returncode != 0 or not out.is_file():
        raise _componentize_error(spec, proc.stdout + "\n" + proc.stderr)


def _read_prebuilt(spec: AgentSpec) -> bytes:
    path = spec.component_file
    assert path is not None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ComponentError(
            f"Cannot read the component {path}: {exc.strerror}.", agent=spec.name, file=str(path)
        ) from None
    if path.suffix == ".wat":
        try:
            return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
            raise ComponentError(
                f"{path} is not valid WebAssembly text: {str(exc).splitlines()[0]}",
                agent=spec.name,
                file=str(path),
            ) from None
    return data


def compile_component(engine: wasmtime.Engine, spec: AgentSpec, data: bytes) -> wc.Component:
    """Compile component bytes, with a clear error for garbage or truncated files."""
    try:
        return wc.Component(engine, data)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()
        reason = first[0] if first else "unknown error"
        raise ComponentError(
            f"The component of agent {spec.name!r} is not a valid WebAssembly component "
            f"({reason}). Rebuild it, or check the file is not truncated.",
            agent=spec.name,
            file=str(spec.component_file or spec.directory),
        ) from None


class Builder:
    """Builds, compiles and loads agents, with a cache keyed by all they depend on."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        settings: EngineSettings,
        ticker: EpochTicker,
        cache: BuildCache | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.ticker = ticker
        self.cache = cache or BuildCache()
        self._fingerprint = settings.fingerprint()

    def entry_for(self, spec: AgentSpec) -> CacheEntry:
        """The cache entry ``spec`` builds into."""
        return self.cache.entry(source_key(spec), self._fingerprint)

    def is_built(self, spec: AgentSpec) -> bool:
        """Whether a compiled artifact for ``spec`` is cached."""
        return self.entry_for(spec).compiled.is_file()

    def build(
        self,
        specs: Sequence[AgentSpec],
        *,
        force: bool = False,
        jobs: int = 2,
        on_event: Callable[[BuildEvent], None] | None = None,
    ) -> list[BuildResult]:
        """Build every agent in ``specs`` (in parallel); failures do not stop the rest."""
        emit = on_event or (lambda _event: None)
        if not specs:
            return []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [
                pool.submit(self.build_one, spec, force=force, on_event=emit) for spec in specs
            ]
            return [f.result() for f in futures]

    def build_one(
        self,
        spec: AgentSpec,
        *,
        force: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
    ) -> BuildResult:
        """Build, compile and cache one agent; returns how it went (never raises BuildError)."""
        emit = on_event or (lambda _event: None)
        started = time.perf_counter()
        try:
            entry = self.entry_for(spec)
        except OSError as exc:
            error = BuildError(f"Cannot read the sources of {spec.name!r}: {exc}", agent=spec.name)
            emit(BuildEvent(spec.name, "failed", 0.0, error))
            return BuildResult(spec.name, spec.origin, "failed", error=error)
        if not force and entry.compiled.is_file() and entry.component.is_file():
            emit(BuildEvent(spec.name, "cached"))
            return BuildResult(spec.name, spec.origin, "cached", key=entry.key)
        build_ms = compile_ms = 0.0
        try:
            if force or not entry.component.is_file():
                emit(BuildEvent(spec.name, "building"))
                t0 = time.perf_counter()
                if spec.component_file is not None:
                    atomic_write(entry.component, _read_prebuilt(spec))
                else:
                    entry.component.parent.mkdir(parents=True, exist_ok=True)
                    with tempfile.TemporaryDirectory(dir=entry.component.parent) as tmp:
                        out = Path(tmp) / "component.wasm"
                        componentize(spec, out)
                        os.replace(out, entry.component)
                build_ms = (time.perf_counter() - t0) * 1000
            emit(BuildEvent(spec.name, "compiling", (time.perf_counter() - started) * 1000))
            t1 = time.perf_counter()
            component = compile_component(self.engine, spec, entry.component.read_bytes())
            build_linker(self.engine, component, spec)  # refuse bad imports now, not at run
            atomic_write(entry.compiled, bytes(component.serialize()))
            compile_ms = (time.perf_counter() - t1) * 1000
            atomic_write(
                entry.meta,
                json.dumps(
                    {
                        "agent": spec.name,
                        "origin": spec.origin,
                        "world": spec.world,
                        "built_at": time.time(),
                        "build_ms": build_ms,
                        "compile_ms": compile_ms,
                    }
                ).encode(),
            )
        except (BuildError, AgentError) as exc:
            error = (
                exc
                if isinstance(exc, BuildError)
                else BuildError(exc.message, agent=spec.name, title=exc.title)
            )
            if isinstance(exc, ComponentError) and spec.component_file is None:
                entry.component.unlink(missing_ok=True)  # force a fresh componentize next time
            emit(BuildEvent(spec.name, "failed", (time.perf_counter() - started) * 1000, error))
            return BuildResult(spec.name, spec.origin, "failed", key=entry.key, error=error)
        emit(BuildEvent(spec.name, "done", (time.perf_counter() - started) * 1000))
        return BuildResult(
            spec.name, spec.origin, "built", key=entry.key, build_ms=build_ms, compile_ms=compile_ms
        )

    def load(self, spec: AgentSpec) -> LoadedAgent:
        """Load ``spec``'s compiled artifact from the cache (milliseconds).

        Raises:
            BuildError: the agent is not built (the message says how to build it), or
                its cached artifact is damaged.
        """
        entry = self.entry_for(spec)
        if not entry.compiled.is_file():
            raise BuildError(
                f"Agent {spec.name!r} is not built yet. Run `briotui agents build`.",
                agent=spec.name,
                title="Agent not built",
            )
        try:
            component = wc.Component.deserialize_file(self.engine, str(entry.compiled))
        except wasmtime.WasmtimeError as exc:
            entry.compiled.unlink(missing_ok=True)
            raise ComponentError(
                f"The cached build of {spec.name!r} is damaged ({str(exc).splitlines()[0]}); "
                "it was removed. Run `briotui agents build` again.",
                agent=spec.name,
                file=str(entry.compiled),
            ) from None
        linker, shape = build_linker(self.engine, component, spec)
        return LoadedAgent(spec, self.engine, component, linker, shape, self.ticker)
