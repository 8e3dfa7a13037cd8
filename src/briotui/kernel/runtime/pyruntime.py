"""The shared Python runtime: one component per WIT world, each agent's code read at start.

Building every Python agent into its own componentize-py component costs about 20 s of
CPU, and compiling it about 27 s more, although the interpreter inside each is the same.
So an agent whose code needs nothing but the standard library modules the runtime
preloads, its own modules and its world's bindings runs on the *runtime of its world*:
one component (``pyruntime/brio_runtime.py`` built against the world plus the
``agent-code`` import) shared by every agent of that world, built and compiled once.

At its first ``run`` an instance asks the kernel for its agent's modules through
``agent-code.modules`` and imports ``app`` from them, so editing ``app.py`` is picked up
by the next run with no build and no compile (hot reload). A warm pool's instance does
that before a run is handed to it (``agent-loader.load``), and the run checks that the
code it loaded is still the code on disk. The sandbox is unchanged:
the runtime of a world imports only that world's interfaces (the reviewer's has no
``workspace-write``), and the linker still checks every import at link time.

An agent that needs more (another module, a native extension, its own ``wit/``, or
``build = "own"`` in its manifest) is built into a component of its own, as before.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from briotui.kernel.agents import WIT_PACKAGE, WIT_VERSION, AgentSpec, world_imports
from briotui.kernel.errors import BuildError
from briotui.kernel.paths import pyruntime_dir, wit_dir

RUNTIME_MODULE = "brio_runtime"
"""The runtime's own module (``pyruntime/brio_runtime.py``), built by componentize-py."""

AGENT_CODE = "agent-code"
"""The interface through which a runtime instance reads its agent's modules."""

AGENT_COMPILER = "agent-compiler"
"""The interface through which the kernel has a runtime instance compile sources."""

AGENT_COMPILER_EXPORT = f"{WIT_PACKAGE}/{AGENT_COMPILER}@{WIT_VERSION}"

AGENT_LOADER = "agent-loader"
"""The interface through which the kernel has a runtime instance load its agent's code
before a run is handed to it (a warm pool's instances)."""

AGENT_LOADER_EXPORT = f"{WIT_PACKAGE}/{AGENT_LOADER}@{WIT_VERSION}"

RUNTIME_WIT = f"""package {WIT_PACKAGE}@{WIT_VERSION};

/// The shared Python runtime reads its agent's code from the kernel at start.
interface {AGENT_CODE} {{
    /// One Python module of the agent.
    record module {{
        /// Its dotted name: "app", "helpers", "pkg.sub".
        name: string,
        /// Its file, for tracebacks.
        path: string,
        /// Its source text.
        source: string,
        /// Whether it is a package (an __init__.py).
        is-package: bool,
        /// Its code object as the runtime's own compiler made it (marshal, base64),
        /// or "" to compile the source.
        code: string,
    }}

    /// The agent's modules; "app" is the entry point.
    modules: func() -> list<module>;
}}

/// The runtime compiles an agent's sources (never runs them) in an instance of its own,
/// so its runs load code objects instead of compiling again.
interface agent-compiler {{
    /// Each (file, source)'s code object, marshalled and base64-encoded, in order.
    compile: func(modules: list<tuple<string, string>>) -> result<list<string>, string>;
}}

/// A warm pool's instance loads its agent's code (imports app, makes its Agent) before
/// a run is handed to it, so the run only calls `run`.
interface agent-loader {{
    /// Load the agent's code now; a failure is kept and reported by the run.
    load: func();
}}
"""
"""The runtime's extra WIT, added to the package only when a runtime is built (agents
built with other toolchains never see it)."""

PRELOADED = frozenset(
    {
        "abc", "base64", "bisect", "collections", "contextlib", "copy", "dataclasses",
        "datetime", "difflib", "enum", "fnmatch", "functools", "hashlib", "heapq", "html",
        "io", "itertools", "json", "math", "operator", "posixpath", "pprint", "random",
        "re", "shlex", "string", "struct", "textwrap", "time", "traceback", "types",
        "typing", "unicodedata", "urllib", "__future__", "os", "sys", "importlib",
        "weakref",
        "componentize_py_types", "wit_world",
    }
)  # fmt: skip
"""Top-level modules an agent on the shared runtime may import besides its own (the
runtime imports them while it is built; keep in step with ``brio_runtime.py``)."""

MAX_SOURCE_BYTES = 4 * 1024 * 1024
"""The most Python source an agent on the shared runtime may have (all its modules)."""

_SKIP_DIRS = frozenset({"__pycache__", "wit_world", "wit", ".pytest_cache"})


def runtime_world(world: str) -> str:
    """The name of the runtime's WIT world for the agents' ``world``."""
    return f"brio-python-{world}"


def runtime_wit(world: str) -> str:
    """The WIT the runtime of ``world`` is built against: the world and ``agent-code``."""
    return (
        RUNTIME_WIT
        + f"\n/// The shared Python runtime of the {world!r} world.\n"
        + f"world {runtime_world(world)} {{\n    include {world};\n    import {AGENT_CODE};\n"
        + f"    export {AGENT_COMPILER};\n    export {AGENT_LOADER};\n}}\n"
    )


def write_runtime_wit(out: Path, world: str, wit: Path | None = None) -> None:
    """Write the brio WIT package plus the runtime's world for ``world`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((wit or wit_dir()).glob("*.wit")):
        shutil.copyfile(path, out / path.name)
    (out / "brio-python-runtime.wit").write_text(runtime_wit(world), encoding="utf-8")


@functools.lru_cache(maxsize=1)
def runtime_source_digest() -> bytes:
    """The hash of the runtime's own sources, once per process (they change only with
    briotui)."""
    digest = hashlib.sha256()
    root = pyruntime_dir()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(RUNTIME_WIT.encode())
    return digest.digest()


@dataclass(frozen=True)
class AgentModule:
    """One Python module of an agent, as the runtime receives it."""

    name: str
    path: str
    source: str
    is_package: bool


def _python_files(directory: Path) -> Iterator[Path]:
    """The agent's ``.py`` files: regular files only, never through a symlink (a project's
    agent must not get, say, ``~/.ssh`` served to it as a module)."""
    for root, dirs, files in os.walk(directory):  # does not enter symlinked directories
        dirs[:] = sorted(
            d for d in dirs if d not in _SKIP_DIRS and not d.startswith((".", "componentize_py"))
        )
        for name in sorted(files):
            if name.endswith(".py") and not name.startswith("componentize_py"):
                path = Path(root) / name
                if not path.is_symlink() and path.is_file():
                    yield path


def _module_name(directory: Path, path: Path) -> tuple[str, bool] | None:
    parts = list(path.relative_to(directory).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts), is_package


def _top_imports(tree: ast.AST) -> set[str]:
    """The top-level names of every absolute import in ``tree``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@dataclass(frozen=True)
class AgentCode:
    """An agent's Python sources, read once per version, and whether the runtime fits them.

    Attributes:
        modules: The agent's modules.
        own_build_reason: Why the agent needs a component of its own ("" if the shared
            runtime of its world runs it).
        digest: A hash of the sources (their version).
    """

    modules: tuple[AgentModule, ...]
    own_build_reason: str
    digest: str


def _read_code(spec: AgentSpec) -> AgentCode:
    modules: list[AgentModule] = []
    imports: set[str] = set()
    digest = hashlib.sha256()
    total = 0
    reason = ""
    for path in _python_files(spec.directory):
        named = _module_name(spec.directory, path)
        if named is None:
            continue
        total += path.stat().st_size
        if total > MAX_SOURCE_BYTES:
            reason = f"its sources are over {MAX_SOURCE_BYTES // (1024 * 1024)} MiB"
            break
        data = path.read_bytes()
        digest.update(str(path).encode() + b"\0" + data + b"\0")
        try:
            source = data.decode("utf-8")
            tree = ast.parse(source, filename=str(path))
        except (UnicodeDecodeError, SyntaxError, ValueError):
            # The host's Python may be older than the runtime's: componentize-py says
            # what is wrong, or builds what this interpreter cannot parse.
            reason = reason or f"{path.name} does not parse with this Python"
            continue
        imports |= _top_imports(tree)
        shown = f"{spec.name}/{path.relative_to(spec.directory).as_posix()}"  # not the host's
        modules.append(AgentModule(named[0], shown, source, named[1]))
    names = {m.name for m in modules}
    for module in list(modules):  # a directory without __init__.py is a package too
        parts = module.name.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent not in names:
                names.add(parent)
                shown = "/".join([spec.name, *parts[:depth], "__init__.py"])
                modules.append(AgentModule(parent, shown, "", True))
    own = {m.name.split(".")[0] for m in modules}
    if not reason and "app" not in own:
        reason = "it has no app.py"
    missing = sorted(imports - own - PRELOADED)
    if not reason and missing:
        reason = f"it imports {', '.join(missing)}, which the shared runtime does not have"
    return AgentCode(tuple(modules), reason, digest.hexdigest()[:24])


class CodeCache:
    """Agents' sources, read again only when a file changes (size, mtime, the file list).

    Thread-safe: the build threads and the instances' threads read it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[tuple[str, int, int], ...], AgentCode]] = {}

    @staticmethod
    def _stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
        stamp = []
        for path in _python_files(directory):
            st = path.stat()
            stamp.append((str(path), st.st_size, st.st_mtime_ns))
        return tuple(stamp)

    def code(self, spec: AgentSpec) -> AgentCode:
        """``spec``'s code as it is on disk now.

        Raises:
            BuildError: the agent's directory cannot be read.
        """
        try:
            stamp = self._stamp(spec.directory)
            with self._lock:
                hit = self._cache.get(spec.directory)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            code = _read_code(spec)
        except OSError as exc:
            raise BuildError(
                f"Cannot read the sources of {spec.name!r} in {spec.directory}: {exc}",
                agent=spec.name,
                file=str(spec.directory),
            ) from None
        with self._lock:
            self._cache[spec.directory] = (stamp, code)
        return code


def own_build_reason(code: CodeCache, spec: AgentSpec) -> str:
    """Why ``spec`` needs a component of its own ("" when its world's runtime runs it)."""
    if spec.component_file is not None:
        return "it names a prebuilt component"
    if spec.build == "own":
        return 'its manifest says build = "own"'
    if spec.extra_wit is not None:
        return "it has its own wit/ directory"
    if spec.world not in world_imports():
        return f"its world {spec.world!r} is unknown"
    return code.code(spec).own_build_reason
