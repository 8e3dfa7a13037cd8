"""The build cache: components and their compiled artifacts, keyed by everything they depend on.

Layout under :func:`briotui.kernel.paths.cache_dir`::

    components/<source-key>.wasm              the component (componentize-py output)
    compiled/<source-key>-<engine-fp>.cwasm    Component.serialize() for this engine config
    meta/<source-key>.json                     agent, world, timings
    failed/<source-key>-<engine-fp>.json       why its build failed (not retried unchanged)

The source key of an agent's own component hashes the agent's files, the WIT package,
the world, and the componentize-py version; the shared Python runtime of a world
(:mod:`.pyruntime`) is keyed by the world, the WIT, the runtime's sources and the
componentize-py version (``py-<world>-<hash>``). The engine fingerprint hashes the
wasmtime version and the engine configuration. Files are written to a temporary name
and renamed into place, so a crashed build never leaves a half-written artifact behind.

Every artifact is immutable once written and named by what it is built from, so caches
can share them: a cache also looks in other caches of the same layout
(``$BRIOTUI_CACHE_ALSO``, and the user's default cache when another is in use, as the
test suite's is) and hard-links what it finds there instead of building it again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from briotui.kernel.agents import AgentSpec
from briotui.kernel.paths import cache_dir, default_cache_dir, wit_dir
from briotui.kernel.runtime.pyruntime import runtime_source_digest

_SKIP_DIRS = {"__pycache__", "wit_world", ".pytest_cache"}


@functools.lru_cache(maxsize=1)
def componentize_py_version() -> str:
    """The installed componentize-py version ("missing" if it is not installed)."""
    try:
        return version("componentize-py")
    except PackageNotFoundError:
        return "missing"


def _hash_tree(digest: Any, root: Path, label: str) -> None:
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not _SKIP_DIRS.intersection(p.relative_to(root).parts)
        and not p.name.startswith("componentize_py")
        and p.suffix not in {".pyc", ".cwasm"}
    )
    for path in files:
        digest.update(f"{label}:{path.relative_to(root).as_posix()}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")


@functools.lru_cache(maxsize=4)
def _wit_digest(directory: Path) -> bytes:
    """The WIT package's hash, once per process (the shipped contract does not change)."""
    digest = hashlib.sha256()
    _hash_tree(digest, directory, "wit")
    return digest.digest()


def runtime_key(world: str, wit: Path | None = None) -> str:
    """The cache key of the shared Python runtime of ``world``."""
    digest = hashlib.sha256()
    digest.update(f"runtime={world};componentize-py={componentize_py_version()}\0".encode())
    digest.update(_wit_digest(wit or wit_dir()))
    digest.update(runtime_source_digest())
    return f"py-{world}-{digest.hexdigest()[:20]}"


def source_key(spec: AgentSpec, wit: Path | None = None) -> str:
    """The cache key of ``spec``'s component: sources, WIT, world, toolchain version."""
    digest = hashlib.sha256()
    digest.update(f"world={spec.world};componentize-py={componentize_py_version()}\0".encode())
    digest.update(_wit_digest(wit or wit_dir()))
    _hash_tree(digest, spec.directory, "agent")
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class CacheEntry:
    """Where one agent's artifacts live (they may not exist yet)."""

    key: str
    component: Path
    compiled: Path
    meta: Path
    failure: Path

    def read_meta(self) -> dict[str, Any]:
        """The build metadata, or an empty dict if there is none (or it is unreadable)."""
        try:
            data = json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


ALSO_ENV = "BRIOTUI_CACHE_ALSO"
"""Other build caches (``os.pathsep``-separated) to take unchanged artifacts from."""


def default_also(root: Path) -> tuple[Path, ...]:
    """The caches ``root`` may take artifacts from: ``$BRIOTUI_CACHE_ALSO``, and the
    user's default cache when ``root`` is another one."""
    found: list[Path] = [Path(p) for p in os.environ.get(ALSO_ENV, "").split(os.pathsep) if p]
    default = default_cache_dir()
    if default not in found:
        found.append(default)
    own = root.resolve()
    return tuple(p for p in found if p.resolve() != own)


class BuildCache:
    """The on-disk cache of built components and compiled artifacts.

    Args:
        root: Where it lives (default: :func:`~briotui.kernel.paths.cache_dir`).
        also: Other caches to take unchanged artifacts from (default: none for an
            explicit ``root``, :func:`default_also` for the default one).
    """

    def __init__(self, root: Path | None = None, also: tuple[Path, ...] | None = None) -> None:
        self.root = root or cache_dir()
        if also is None:
            also = () if root is not None else default_also(self.root)
        self.also = also

    def entry(self, key: str, engine_fp: str) -> CacheEntry:
        """The cache entry for a source key and an engine fingerprint.

        An artifact missing here but present in one of :attr:`also` is linked in
        (artifacts are immutable and named by their inputs, so this is safe).
        """
        entry = self._entry(self.root, key, engine_fp)
        if self.also and not (entry.compiled.is_file() and entry.component.is_file()):
            for other in self.also:
                self._adopt(entry, self._entry(other, key, engine_fp))
        return entry

    @staticmethod
    def _entry(root: Path, key: str, engine_fp: str) -> CacheEntry:
        return CacheEntry(
            key=key,
            component=root / "components" / f"{key}.wasm",
            compiled=root / "compiled" / f"{key}-{engine_fp}.cwasm",
            meta=root / "meta" / f"{key}.json",
            failure=root / "failed" / f"{key}-{engine_fp}.json",
        )

    @staticmethod
    def _adopt(entry: CacheEntry, other: CacheEntry) -> None:
        for mine, theirs in (
            (entry.component, other.component),
            (entry.compiled, other.compiled),
            (entry.meta, other.meta),
        ):
            if mine.is_file() or not theirs.is_file():
                continue
            try:
                mine.parent.mkdir(parents=True, exist_ok=True)
                tmp = mine.with_name(f".{mine.name}.{os.getpid()}.link")
                tmp.unlink(missing_ok=True)
                try:
                    os.link(theirs, tmp)
                except OSError:  # another file system: copy
                    shutil.copyfile(theirs, tmp)
                os.replace(tmp, mine)
            except OSError:
                continue  # unreadable or unwritable: it is built here instead


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
