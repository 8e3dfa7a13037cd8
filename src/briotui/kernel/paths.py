"""Where briotui keeps things: the project's ``.brio/``, the user's config and cache dirs.

Nothing here creates a directory at import time; callers ask for a path and create
it when they write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BRIO_DIR = ".brio"
"""The per-project state directory, beside ``.git``."""

CACHE_ENV = "BRIOTUI_CACHE_DIR"
"""Environment variable that overrides the build cache directory (tests set it)."""

CONFIG_ENV = "BRIOTUI_CONFIG_DIR"
"""Environment variable that overrides the user config directory."""


@dataclass(frozen=True)
class ProjectPaths:
    """The paths of one project.

    Attributes:
        root: The project directory (the user's working tree).
    """

    root: Path

    @classmethod
    def at(cls, root: Path | str) -> ProjectPaths:
        """Paths for the project at ``root`` (resolved to an absolute path)."""
        return cls(Path(root).resolve())

    @property
    def brio(self) -> Path:
        """``.brio/``: the database, sessions, config and user agents."""
        return self.root / BRIO_DIR

    @property
    def config_file(self) -> Path:
        """``.brio/config.toml``: the project's settings (overrides the user's)."""
        return self.brio / "config.toml"

    @property
    def user_agents(self) -> Path:
        """``.brio/agents/``: agents the user wrote for this project."""
        return self.brio / "agents"

    @property
    def database(self) -> Path:
        """``.brio/state.db``: the project's SQLite store."""
        return self.brio / "state.db"

    @property
    def sessions(self) -> Path:
        """``.brio/sessions/``: copy-on-write session data."""
        return self.brio / "sessions"


def project_root(start: Path | str) -> Path:
    """The project a directory belongs to: the root of its git repository.

    Run in a subdirectory of a repository, briotui works on the whole repository (one
    ``.brio/`` beside ``.git``), whatever the subdirectory. Outside git, the nearest
    ancestor that already has a ``.brio/`` is the project; failing that, ``start``.

    Args:
        start: The directory briotui was started in (or given with ``-C``).

    Returns:
        The project's root, resolved to an absolute path.
    """
    here = Path(start).resolve()
    chain = [here, *here.parents]
    for directory in chain:
        if (directory / ".git").exists():  # a directory, or a file in a worktree
            return directory
    for directory in chain:
        if (directory / BRIO_DIR).is_dir():
            return directory
    return here


GITIGNORE = """# briotui's local state: databases, sessions and caches (briotui writes this file).
# config.toml and agents/ are meant to be shared with your team: commit them.
/.gitignore
*.db
*.db-*
*.db.corrupt-*
sessions/
bench.json
__pycache__/
"""
"""What ``.brio/.gitignore`` holds: only what is local to one checkout."""

_OLD_GITIGNORES = frozenset({"# briotui's local state\n*\n"})
"""``.brio/.gitignore`` files earlier briotui versions wrote (they ignored everything)."""


def write_gitignore(brio: Path) -> None:
    """Write ``brio/.gitignore`` if it is missing, or replace one an older briotui wrote.

    A ``.gitignore`` the user edited is left alone.
    """
    ignore = brio / ".gitignore"
    try:
        current: str | None = ignore.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError):
        return  # not ours to fix
    if current is None or (current in _OLD_GITIGNORES and current != GITIGNORE):
        ignore.write_text(GITIGNORE, encoding="utf-8")


def user_config_dir() -> Path:
    """The user's config dir: ``$BRIOTUI_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/briotui``."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "briotui"


def cache_dir() -> Path:
    """The build cache: ``$BRIOTUI_CACHE_DIR`` or ``$XDG_CACHE_HOME/briotui``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    return default_cache_dir()


def default_cache_dir() -> Path:
    """The user's own build cache, ``$XDG_CACHE_HOME/briotui`` (whatever overrides it)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "briotui"


def data_dir() -> Path:
    """Where the shipped ``wit/``, ``agents/``, ``pyruntime/`` and ``themes/`` live.

    In a wheel they are package data under ``briotui/_data``; in a source checkout
    (an editable install, the tests) they are the repository's top-level folders.
    """
    package = Path(__file__).resolve().parent.parent
    bundled = package / "_data"
    if (bundled / "wit").is_dir():
        return bundled
    return package.parent.parent


def wit_dir() -> Path:
    """The ``brio`` WIT package every agent builds against."""
    return data_dir() / "wit"


def pyruntime_dir() -> Path:
    """The shared Python runtime's sources (built once per WIT world)."""
    return data_dir() / "pyruntime"


def builtin_agents_dir() -> Path:
    """The built-in agents' sources."""
    return data_dir() / "agents"


def themes_dir() -> Path:
    """The shipped themes."""
    return data_dir() / "themes"
