"""Building agents into components, compiling them, and loading them from the cache.

What an agent runs is an *artifact* (:class:`Artifact`), one of:

- the shared Python runtime of its world (:mod:`.pyruntime`): a Python agent that needs
  only the runtime's modules runs on it, and its ``app.py`` is read at the start of each
  run, so an edit needs no build (hot reload). Every agent of a world shares one build
  and one compiled artifact;
- its own component, built by ``componentize-py`` from ``app.py`` (an agent that needs
  more, or asks for it with ``build = "own"``);
- a prebuilt ``.wasm``/``.wat`` named in ``agent.toml`` (any toolchain), used as is.

Three steps per artifact, each skipped when its cached output exists:

1. *building*: ``componentize-py`` (or reading the prebuilt file);
2. *compiling*: wasmtime compiles the component for this engine configuration, checks
   its imports against the kernel (:func:`~.host.build_linker`), and serializes it;
3. *loading*: ``Component.deserialize_file`` — milliseconds, no recompiling.

A failure in one agent is reported with the agent, the file and the cause, and never
stops the others. A failure is cached with its reason, keyed like the artifact (its
inputs) and the kernel's host functions: an unchanged agent that cannot build or link
is refused at once, not rebuilt for a minute first.

One piece: choosing an agent's artifact, building each artifact once for all the agents
that share it, remembering failures and loading are one cache's life cycle; what the
shared runtime serves at run time lives in :mod:`.agentcode` and :mod:`.pyruntime`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import wasmtime
from wasmtime import component as wc

from briotui.kernel.agents import AgentSpec, world_imports
from briotui.kernel.errors import AgentError, BuildError, ComponentError, WitError
from briotui.kernel.paths import pyruntime_dir, wit_dir
from briotui.kernel.runtime.agentcode import CodeServer
from briotui.kernel.runtime.cache import (
    BuildCache,
    CacheEntry,
    atomic_write,
    runtime_key,
    source_key,
)
from briotui.kernel.runtime.engine import EngineSettings, EpochTicker
from briotui.kernel.runtime.host import HOST_FUNCTIONS, HostImpl, build_linker
from briotui.kernel.runtime.instance import LoadedAgent
from briotui.kernel.runtime.pyruntime import (
    RUNTIME_MODULE,
    CodeCache,
    own_build_reason,
    runtime_world,
    write_runtime_wit,
)

Phase = Literal["cached", "building", "compiling", "done", "failed"]
ArtifactKind = Literal["runtime", "own", "prebuilt"]

BUILD_TIMEOUT_S = 600


PIPELINE_ORDER = ("council", "foreman", "coder", "reviewer", "smart")
"""Worlds (and agents) in the order a pipeline needs them: built first, the Council's
first (the pipeline runs the Council, the Foreman, Coders, the Reviewer and the Smart
Agent for the tests)."""


@dataclass(frozen=True)
class BuildEvent:
    """Progress of one agent's build.

    Attributes:
        agent: The agent.
        phase: Where it is.
        elapsed_ms: Time since its build started.
        error: Why it failed (phase "failed").
        step: What is being done, in words ("building the Python runtime of world
            'coder' (componentize-py)", "reading the prebuilt component c.wasm").
    """

    agent: str
    phase: Phase
    elapsed_ms: float = 0.0
    error: BuildError | None = None
    step: str = ""


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
    artifact: ArtifactKind = "own"

    def to_dict(self) -> dict[str, object]:
        """As JSON-able data."""
        return {
            "agent": self.agent,
            "origin": self.origin,
            "status": self.status,
            "key": self.key,
            "artifact": self.artifact,
            "build_ms": round(self.build_ms, 1),
            "compile_ms": round(self.compile_ms, 1),
            "error": self.error.to_dict() if self.error else None,
        }


@dataclass(frozen=True)
class Artifact:
    """The component an agent runs, and where it comes from.

    Attributes:
        kind: "runtime" (its world's shared Python runtime), "own" (its ``app.py``
            built by componentize-py) or "prebuilt" (a file named in its manifest).
        key: The cache key (its inputs' digest).
        world: The WIT world.
        spec: The agent, for "own" and "prebuilt" (None for a shared runtime).
        reason: Why a Python agent has its own build ("" otherwise).
    """

    kind: ArtifactKind
    key: str
    world: str
    spec: AgentSpec | None = None
    reason: str = ""

    def describe(self) -> str:
        """What it is, in words."""
        if self.kind == "runtime":
            return f"the shared Python runtime of world {self.world!r}"
        assert self.spec is not None
        if self.kind == "prebuilt":
            name = self.spec.component_file.name if self.spec.component_file else "?"
            return f"the prebuilt component {name}"
        return f"its own component ({self.reason})"

    def building_step(self) -> str:
        """What its build step does, in words (for progress)."""
        if self.kind == "runtime":
            return f"building the Python runtime of world {self.world!r} (componentize-py)"
        if self.kind == "prebuilt":
            return f"reading {self.describe()}"
        return "building its own component (componentize-py)"


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


class BuildTimeout(BuildError):
    """componentize-py ran out of time: worth another try, so never cached as a failure."""


def _run_componentize(args: list[str], cwd: Path, spec: AgentSpec, what: str) -> str:
    """Run componentize-py with ``args``; its output if it failed, "" if it worked."""
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
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildTimeout(
            f"componentize-py took over {BUILD_TIMEOUT_S} s building {what}; "
            "the machine may be busy (try again), or the agent's imports pull in too much.",
            agent=spec.name,
            file=str(spec.directory / "app.py"),
        ) from None
    return "" if proc.returncode == 0 else proc.stdout + "\n" + proc.stderr


def componentize(spec: AgentSpec, out: Path, *, wit: Path | None = None) -> None:
    """Build ``spec``'s ``app.py`` into a component of its own at ``out`` with componentize-py.

    Raises:
        BuildError: the build failed (syntax error, import error, WIT error, timeout).
    """
    args = ["-d", str(wit or wit_dir())]
    if spec.extra_wit is not None:
        args += ["-d", str(spec.extra_wit)]
    args += ["-w", spec.world, "componentize", "-p", str(spec.directory), "app", "-o", str(out)]
    failed = _run_componentize(args, spec.directory, spec, repr(spec.name))
    if failed or not out.is_file():
        raise _componentize_error(spec, failed)


def componentize_runtime(world: str, out: Path, *, agent: AgentSpec) -> None:
    """Build the shared Python runtime of ``world`` into a component at ``out``.

    ``agent`` is the agent it is built for first (errors name it).

    Raises:
        BuildError: the build failed.
    """
    with tempfile.TemporaryDirectory(prefix="brio-runtime-wit-") as tmp:
        wit = Path(tmp)
        write_runtime_wit(wit, world)
        source = pyruntime_dir()
        args = ["-d", str(wit), "-w", runtime_world(world), "componentize"]
        args += ["-p", str(source), RUNTIME_MODULE, "-o", str(out)]
        failed = _run_componentize(args, source, agent, f"the Python runtime of {world!r}")
    if failed or not out.is_file():
        error = _componentize_error(agent, failed)
        raise BuildError(
            f"The shared Python runtime of world {world!r} did not build (needed by "
            f"{agent.name!r}); this is a briotui problem, not the agent's:\n{error.message}",
            agent=agent.name,
            file=str(pyruntime_dir() / f"{RUNTIME_MODULE}.py"),
            title="Python runtime build failed",
        )


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


def host_fingerprint() -> str:
    """What a link-time verdict depends on besides the component: the kernel's host
    functions and the worlds. A cached failure counts only under the same ones."""
    digest = hashlib.sha256()
    for iface in sorted(HOST_FUNCTIONS):
        digest.update(f"{iface}:{','.join(sorted(HOST_FUNCTIONS[iface]))};".encode())
    for world, imports in sorted(world_imports().items()):
        digest.update(f"{world}={','.join(sorted(imports))};".encode())
    return digest.hexdigest()[:16]


_ERROR_KINDS: dict[str, type[BuildError]] = {
    "build": BuildError,
    "wit": WitError,
    "component": ComponentError,
}


def _as_build_error(exc: BuildError | AgentError, spec: AgentSpec) -> BuildError:
    if isinstance(exc, BuildError):
        return exc
    return BuildError(exc.message, agent=spec.name, title=exc.title)


def read_failure(entry: CacheEntry, agent: str) -> BuildError | None:
    """The cached failure of ``entry`` (None if there is none, or it is stale)."""
    try:
        data = json.loads(entry.failure.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("host") != host_fingerprint():
        return None
    cls = _ERROR_KINDS.get(str(data.get("kind")), BuildError)
    message = str(data.get("message", ""))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(data.get("at", 0))))
    return cls(
        f"{message}\n(This failure is remembered from {when}: nothing it depends on has "
        "changed since. Fix the agent, or retry with `briotui agents build --force "
        f"{agent}`.)",
        agent=agent,
        file=data.get("file") or None,
        title=str(data.get("title") or cls.default_title),
    )


def _write_failure(entry: CacheEntry, error: BuildError) -> None:
    record = {
        "kind": error.kind,
        "title": error.title,
        "message": error.message,
        "file": error.file,
        "host": host_fingerprint(),
        "at": time.time(),
    }
    with contextlib.suppress(OSError):  # an unwritable cache only costs a retry
        atomic_write(entry.failure, json.dumps(record).encode())


def _priority(spec: AgentSpec) -> int:
    for index, name in enumerate(PIPELINE_ORDER):
        if spec.name == name or spec.world == name:
            return index
    return len(PIPELINE_ORDER)


@dataclass
class _Group:
    artifact: Artifact
    specs: list[AgentSpec] = field(default_factory=list)


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
        self.code = CodeCache()
        self._fingerprint = settings.fingerprint()
        self._components: dict[str, wc.Component] = {}
        self._on_runtime: set[str] = set()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._urgent = 0
        """Builds a run is waiting for now (:meth:`build` with ``urgent``)."""
        self._yield = threading.Condition()
        """Background builds wait on it while an urgent build runs."""
        self.server = CodeServer(engine, ticker, self.cache.root, self.code, self._component)

    @property
    def code_check(self) -> Callable[[AgentSpec], None] | None:
        """Called before a new version of an agent's code is served to a run (the kernel
        refuses a project agent changed since the project was trusted)."""
        return self.server.check

    @code_check.setter
    def code_check(self, check: Callable[[AgentSpec], None] | None) -> None:
        self.server.check = check

    def _component(self, key: str) -> wc.Component | None:
        with self._lock:
            return self._components.get(key)

    def artifact(self, spec: AgentSpec) -> Artifact:
        """What ``spec`` runs: its world's shared runtime, its own or a prebuilt component.

        Raises:
            BuildError: the agent's files cannot be read.
        """
        reason = own_build_reason(self.code, spec)
        if spec.component_file is not None:
            return Artifact("prebuilt", self._source_key(spec), spec.world, spec, reason)
        if reason:
            return Artifact("own", self._source_key(spec), spec.world, spec, reason)
        return Artifact("runtime", runtime_key(spec.world), spec.world)

    def left_runtime(self, spec: AgentSpec) -> bool:
        """Whether ``spec``, loaded on its world's shared runtime, now needs its own build
        (its code was edited to import what the runtime lacks). Cheap: the code cache
        reads the files again only when they changed."""
        if spec.component_file is not None or spec.build == "own" or spec.extra_wit:
            return False
        with self._lock:
            on_runtime = spec.name in self._on_runtime
        try:
            return on_runtime and bool(self.code.code(spec).own_build_reason)
        except BuildError:
            return True

    def _source_key(self, spec: AgentSpec) -> str:
        try:
            return source_key(spec)
        except OSError as exc:
            raise BuildError(
                f"Cannot read the sources of {spec.name!r}: {exc}", agent=spec.name
            ) from None

    def entry_for(self, spec: AgentSpec) -> CacheEntry:
        """The cache entry ``spec``'s artifact builds into."""
        return self.cache.entry(self.artifact(spec).key, self._fingerprint)

    def is_built(self, spec: AgentSpec) -> bool:
        """Whether a compiled artifact for ``spec`` is cached."""
        try:
            return self.entry_for(spec).compiled.is_file()
        except BuildError:
            return False

    def failure(self, spec: AgentSpec) -> BuildError | None:
        """The remembered failure of ``spec``'s unchanged artifact, if its build failed."""
        try:
            entry = self.entry_for(spec)
        except BuildError as error:
            return error
        if entry.compiled.is_file():
            return None
        return read_failure(entry, spec.name)

    def build(
        self,
        specs: Sequence[AgentSpec],
        *,
        force: bool = False,
        jobs: int = 2,
        on_event: Callable[[BuildEvent], None] | None = None,
        urgent: bool = False,
    ) -> list[BuildResult]:
        """Build every agent in ``specs``; each artifact once, the pipeline's first.

        Agents sharing an artifact (a world's Python runtime) share its one build.
        Failures do not stop the rest. Results come in the order of ``specs``.

        An ``urgent`` build is one a request waits for (the agent it needs, not built
        yet): while it runs, the other builds (the TUI's background build of every
        agent) start no new artifact, so the machine's cores go to what the user waits
        for; a background build already running goes on.
        """
        emit = on_event or (lambda _event: None)
        if not specs:
            return []
        results: dict[str, BuildResult] = {}
        groups: dict[str, _Group] = {}
        for spec in sorted(specs, key=_priority):
            try:
                artifact = self.artifact(spec)
            except BuildError as error:
                emit(BuildEvent(spec.name, "failed", 0.0, error))
                results[spec.name] = BuildResult(spec.name, spec.origin, "failed", error=error)
                continue
            groups.setdefault(artifact.key, _Group(artifact)).specs.append(spec)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [
                pool.submit(self._build_group, group, force=force, emit=emit, urgent=urgent)
                for group in groups.values()
            ]
            for future in futures:
                for result in future.result():
                    results[result.agent] = result
        return [results[spec.name] for spec in specs]

    def build_one(
        self,
        spec: AgentSpec,
        *,
        force: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
    ) -> BuildResult:
        """Build, compile and cache one agent; returns how it went (never raises BuildError)."""
        [result] = self.build([spec], force=force, on_event=on_event)
        return result

    def _build_group(
        self,
        group: _Group,
        *,
        force: bool,
        emit: Callable[[BuildEvent], None],
        urgent: bool = False,
    ) -> list[BuildResult]:
        """Build one artifact; a build of the same artifact already under way (the TUI's
        background build, when a request needs the agent now) is waited for, not redone.
        A background build waits before starting while an urgent one runs."""
        with self._lock:
            busy = self._building.setdefault(group.artifact.key, threading.Lock())
        if urgent:
            with self._yield:
                self._urgent += 1
            try:
                with busy:
                    return self._build_group_now(group, force=force, emit=emit)
            finally:
                with self._yield:
                    self._urgent -= 1
                    self._yield.notify_all()
        if force or not self._cached(group.artifact):  # it would take a build's CPU
            with self._yield:
                self._yield.wait_for(lambda: self._urgent == 0)
        with busy:
            return self._build_group_now(group, force=force, emit=emit)

    def _cached(self, artifact: Artifact) -> bool:
        entry = self.cache.entry(artifact.key, self._fingerprint)
        return entry.compiled.is_file() and entry.component.is_file()

    def _build_group_now(
        self, group: _Group, *, force: bool, emit: Callable[[BuildEvent], None]
    ) -> list[BuildResult]:
        artifact, specs = group.artifact, group.specs
        started = time.perf_counter()

        def each(phase: Phase, error: BuildError | None = None, step: str = "") -> None:
            elapsed = (time.perf_counter() - started) * 1000
            for spec in specs:
                emit(BuildEvent(spec.name, phase, elapsed, error and _for(error, spec), step))

        def results(
            status: Literal["cached", "built", "failed"],
            error: BuildError | None = None,
            build_ms: float = 0.0,
            compile_ms: float = 0.0,
        ) -> list[BuildResult]:
            return [
                BuildResult(
                    spec.name,
                    spec.origin,
                    status,
                    key=artifact.key,
                    build_ms=build_ms,
                    compile_ms=compile_ms,
                    error=error and _for(error, spec),
                    artifact=artifact.kind,
                )
                for spec in specs
            ]

        entry = self.cache.entry(artifact.key, self._fingerprint)
        if not force and entry.compiled.is_file() and entry.component.is_file():
            each("cached")
            return results("cached")
        if not force and (remembered := read_failure(entry, specs[0].name)) is not None:
            each("failed", remembered)
            return results("failed", remembered)
        build_ms = compile_ms = 0.0
        first = specs[0]
        try:
            if force or not entry.component.is_file():
                each("building", step=artifact.building_step())
                t0 = time.perf_counter()
                if artifact.kind == "prebuilt":
                    atomic_write(entry.component, _read_prebuilt(first))
                else:
                    entry.component.parent.mkdir(parents=True, exist_ok=True)
                    with tempfile.TemporaryDirectory(dir=entry.component.parent) as tmp:
                        out = Path(tmp) / "component.wasm"
                        if artifact.kind == "runtime":
                            componentize_runtime(artifact.world, out, agent=first)
                        else:
                            componentize(first, out)
                        os.replace(out, entry.component)
                build_ms = (time.perf_counter() - t0) * 1000
            each("compiling", step="compiling for this machine (wasmtime)")
            t1 = time.perf_counter()
            component = compile_component(self.engine, first, entry.component.read_bytes())
            for spec in specs:  # refuse bad imports now, not at run
                build_linker(self.engine, component, spec, extra=self._extra(artifact, spec))
            atomic_write(entry.compiled, bytes(component.serialize()))
            compile_ms = (time.perf_counter() - t1) * 1000
            atomic_write(
                entry.meta,
                json.dumps(
                    {
                        "agent": first.name,
                        "artifact": artifact.kind,
                        "origin": first.origin,
                        "world": artifact.world,
                        "built_at": time.time(),
                        "build_ms": build_ms,
                        "compile_ms": compile_ms,
                    }
                ).encode(),
            )
            entry.failure.unlink(missing_ok=True)
        except (BuildError, AgentError) as exc:
            error = _as_build_error(exc, first)
            if isinstance(exc, ComponentError) and artifact.kind != "prebuilt":
                entry.component.unlink(missing_ok=True)  # force a fresh componentize next time
            if not isinstance(exc, BuildTimeout):
                _write_failure(entry, error)
            each("failed", error)
            return results("failed", error)
        each("done")
        return results("built", None, build_ms, compile_ms)

    def _extra(self, artifact: Artifact, spec: AgentSpec) -> Mapping[str, Mapping[str, HostImpl]]:
        """The runtime's ``agent-code`` for ``spec`` (nothing for other artifacts)."""
        if artifact.kind != "runtime":
            return {}
        return self.server.host_functions(spec, artifact.key)

    def load(self, spec: AgentSpec) -> LoadedAgent:
        """Load ``spec``'s compiled artifact from the cache (milliseconds).

        Agents sharing an artifact share its loaded component.

        Raises:
            BuildError: the agent is not built yet (the message says how to build it),
                its build failed (the message says why), or its cached artifact is
                damaged.
        """
        artifact = self.artifact(spec)
        entry = self.cache.entry(artifact.key, self._fingerprint)
        with self._lock:
            component = self._components.get(artifact.key)
        if component is None:
            if not entry.compiled.is_file():
                remembered = read_failure(entry, spec.name)
                if remembered is not None:
                    raise remembered
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
                    f"The cached build of {spec.name!r} is damaged "
                    f"({str(exc).splitlines()[0]}); it was removed. Run `briotui agents "
                    "build` again.",
                    agent=spec.name,
                    file=str(entry.compiled),
                ) from None
            with self._lock:
                self._components[artifact.key] = component
        linker, shape = build_linker(
            self.engine, component, spec, extra=self._extra(artifact, spec)
        )
        with self._lock:
            if artifact.kind == "runtime":
                self._on_runtime.add(spec.name)
            else:
                self._on_runtime.discard(spec.name)
        if artifact.kind == "runtime":  # its code objects now, not in its first run
            self.server.compiled(artifact.key, self.code.code(spec), spec)
        version = (lambda: self.code.code(spec).digest) if artifact.kind == "runtime" else None
        return LoadedAgent(
            spec, self.engine, component, linker, shape, self.ticker, code_version=version
        )


def _for(error: BuildError, spec: AgentSpec) -> BuildError:
    """``error`` as the error of ``spec`` (a shared artifact fails for each of its agents)."""
    if error.agent == spec.name:
        return error
    copy = type(error)(error.message, agent=spec.name, file=error.file, title=error.title)
    return copy
