"""The build cache: components and their compiled artifacts, keyed by everything they depend on.

Layout under :func:`briotui.kernel.paths.cache_dir`::

    components/<source-key>.wasm              the component (componentize-py output)
    compiled/<source-key>-<engine-fp>.cwasm    Component.serialize() for this engine config
    meta/<source-key>.json                     agent, world, timings

The source key hashes the agent's files, the WIT package, the world, and the
componentize-py version; the engine fingerprint hashes the wasmtime version and the
engine configuration. Files are written to a temporary name and renamed into place,
so a crashed build never leaves a half-written artifact behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from briotui.kernel.agents import AgentSpec
from briotui.kernel.paths import cache_dir, wit_dir

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

    def read_meta(self) -> dict[str, Any]:
        """The build metadata, or an empty dict if there is none (or it is unreadable)."""
        try:
            data = json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


class BuildCache:
    """The on-disk cache of built components and compiled artifacts."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_dir()

    def entry(self, key: str, engine_fp: str) -> CacheEntry:
        """The cache entry for a source key and an engine fingerprint."""
        return CacheEntry(
            key=key,
            component=self.root / "components" / f"{key}.wasm",
            compiled=self.root / "compiled" / f"{key}-{engine_fp}.cwasm",
            meta=self.root / "meta" / f"{key}.json",
        )


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
