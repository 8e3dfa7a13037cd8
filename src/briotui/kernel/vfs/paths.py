"""The one path validator: every path an agent, a tool or a command names passes here.

A valid path is relative, ``/``-separated and normalized ("a/b.txt"; "" is the root
where a directory is meant). Refused, with a :class:`~briotui.kernel.errors.PathRefused`
("invalid") or :class:`~briotui.kernel.errors.PathDenied` ("denied"):

* absolute paths (``/x``, ``C:x``), ``\\`` separators, NUL and other control bytes,
  lone surrogates, over-long paths or components;
* any ``..`` component, also one that only becomes ``..`` under Unicode NFKC
  (fullwidth dots) or that hides a separator;
* a protected name anywhere in the path (by default ``.git`` and ``.brio``, so a nested
  ``.git`` too), compared case-insensitively and ignoring trailing dots and spaces;
* on the real filesystem (:meth:`PathPolicy.resolve`): a symlink anywhere on the way
  that resolves outside the root, and hard-linked regular files (the other link may
  be outside the project).

The protected set is a field of :class:`PathPolicy`; nothing else in briotui keeps its
own list. The capabilities layer reuses the same policy for every tool.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from briotui.kernel.errors import PathDenied, PathRefused

DEFAULT_PROTECTED: frozenset[str] = frozenset({".git", ".brio"})
"""Names that no session may read or write, at any depth."""

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().rstrip(". ")


@dataclass(frozen=True)
class PathPolicy:
    """Which paths a session accepts.

    Attributes:
        protected: Names refused as any component of a path (folded: NFKC,
            case-insensitive, trailing dots and spaces ignored).
    """

    protected: frozenset[str] = field(default=DEFAULT_PROTECTED)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded", frozenset(_fold(p) for p in self.protected))

    def normalize(self, path: str, *, allow_root: bool = False) -> str:
        """Check ``path`` and return its normal form.

        Args:
            path: What the caller asked for.
            allow_root: Whether "" (or ".") may name the project root.

        Returns:
            The relative, ``/``-separated path without ``.`` or empty components.

        Raises:
            PathRefused: Malformed (absolute, ``..``, NUL, control bytes, ``\\``...).
            PathDenied: Protected (``.git``, ``.brio`` or the configured set).
        """
        if not isinstance(path, str):
            raise PathRefused(f"A path must be text, not {type(path).__name__}.")
        shown = repr(path[:80])
        if "\x00" in path:
            raise PathRefused(f"{shown} contains a NUL byte. Use a plain relative path.")
        if _CONTROL.search(path):
            raise PathRefused(f"{shown} contains control characters. Use a plain path.")
        try:
            encoded = path.encode("utf-8")
        except UnicodeEncodeError:
            raise PathRefused(f"{shown} is not valid Unicode.") from None
        if len(encoded) > MAX_PATH_BYTES:
            raise PathRefused(f"The path is longer than {MAX_PATH_BYTES} bytes.")
        if "\\" in path:
            raise PathRefused(f"{shown} contains '\\'. Separate directories with '/'.")
        if path.startswith("/") or _DRIVE.match(path):
            raise PathRefused(f"{shown} is absolute. Give a path relative to the project root.")
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                raise PathRefused(f"{shown} contains '..'. Paths must stay inside the project.")
            nfkc = unicodedata.normalize("NFKC", part)
            if nfkc.strip() in (".", "..") or "/" in nfkc or "\\" in nfkc:
                raise PathRefused(
                    f"{shown} has a component that normalizes to {nfkc!r}. "
                    "Paths must stay inside the project."
                )
            if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
                raise PathRefused(f"A component of {shown} is over {MAX_COMPONENT_BYTES} bytes.")
            parts.append(part)
        if not parts:
            if allow_root:
                return ""
            raise PathRefused("The path is empty. Name a file inside the project.")
        for part in parts:
            if self.is_protected_name(part):
                raise PathDenied(
                    f"{shown} is inside {part!r}, which is protected. Sessions never read "
                    f"or write {', '.join(sorted(self.protected))}."
                )
        return "/".join(parts)

    def is_protected_name(self, name: str) -> bool:
        """Whether one path component is in the protected set."""
        folded: frozenset[str] = object.__getattribute__(self, "_folded")
        return _fold(name) in folded

    def is_protected(self, rel: str) -> bool:
        """Whether any component of the relative path ``rel`` is protected."""
        folded: frozenset[str] = object.__getattribute__(self, "_folded")
        whole = rel.casefold() if rel.isascii() else unicodedata.normalize("NFKC", rel).casefold()
        # A protected component's folded name is a substring of the folded whole path,
        # so most paths are cleared without splitting them (this runs once per file
        # when a session's base is built).
        if not any(name in whole for name in folded):
            return False
        return any(self.is_protected_name(p) for p in rel.split("/") if p)

    def resolve(self, root: Path, rel: str, *, allow_hardlinks: bool = False) -> Path:
        """The real filesystem path of the normalized ``rel`` under ``root``.

        Symlinks on the way are followed and must stay inside ``root``; the path itself
        need not exist.

        Args:
            root: The project root (absolute).
            rel: A path already returned by :meth:`normalize`.
            allow_hardlinks: Accept regular files with more than one link.

        Raises:
            PathDenied: A symlink leads outside ``root``, or the file is hard-linked.
        """
        real_root = os.path.realpath(root)
        target = os.path.join(real_root, rel) if rel else real_root
        real = os.path.realpath(target)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise PathDenied(
                f"{rel!r} resolves outside the project (through a symlink). briotui "
                "does not follow links that leave the project."
            )
        if rel and self.is_protected(os.path.relpath(real, real_root).replace(os.sep, "/")):
            raise PathDenied(f"{rel!r} resolves into a protected directory.")
        if not allow_hardlinks:
            try:
                st = os.lstat(real)
            except OSError:
                return Path(target)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                raise PathDenied(
                    f"{rel!r} is a hard link ({st.st_nlink} links); its other names may be "
                    "outside the project, so briotui will not use it. Replace it with a "
                    "copy."
                )
        return Path(target)


DEFAULT_POLICY = PathPolicy()
"""The policy used when none is configured."""
