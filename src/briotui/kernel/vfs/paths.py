"""The one path validator: every path an agent, a tool or a command names passes here.

A valid path is relative, ``/``-separated and normalized ("a/b.txt"; "" is the root
where a directory is meant). Refused, with a :class:`~briotui.kernel.errors.PathRefused`
("invalid") or :class:`~briotui.kernel.errors.PathDenied` ("denied"):

* absolute paths (``/x``, ``C:x``), ``\\`` separators, NUL, C0 and C1 control
  characters, line and paragraph separators (U+2028/U+2029), bidirectional controls
  (U+202A..U+202E, U+2066..U+2069, LRM/RLM/ALM: names that display differently from
  what they are), lone surrogates, over-long paths or components;
* any ``..`` component, also one that only becomes ``..`` under Unicode NFKC
  (fullwidth dots) or that hides a separator;
* a protected name anywhere in the path (by default ``.git`` and ``.brio``, so a nested
  ``.git`` too), on every platform compared the way git's ``verify_path`` does with
  ``core.protectHFS`` and ``core.protectNTFS``: case-insensitively, ignoring the code
  points HFS+ ignores (zero-width joiners, BOM and the other format characters),
  trailing dots and spaces, anything after a ``:`` (an NTFS alternate data stream such
  as ``.git::$INDEX_ALLOCATION``) and as an NTFS 8.3 short name (``git~1``);
* for a symlink (``symlink=True``), a final component naming ``.gitmodules``,
  ``.gitattributes``, ``.gitignore`` or ``.mailmap`` in any of those spellings: git
  reads these files, and refuses them as links.
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

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile("[\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Refused anywhere: line/paragraph separators and bidirectional controls."""
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHORT_NAME = re.compile(r"^([^~]{1,6})~([0-9]+)$")

# The dot-files git reads from the tree and refuses as symlinks, with the prefixes of
# their hashed NTFS short names (git's is_ntfs_dotgitmodules and friends).
_GIT_DOTFILES: dict[str, str] = {
    "gitmodules": "gi7eba",
    "gitattributes": "gi7d29",
    "gitignore": "gi250a",
    "mailmap": "maba30",
}


def _strip_ignorable(name: str) -> str:
    """``name`` without the code points HFS+ ignores (all format characters, Cf)."""
    if name.isascii():
        return name
    return "".join(c for c in name if unicodedata.category(c) != "Cf")


def _fold(name: str) -> str:
    """The spelling a case-insensitive HFS+ or NTFS volume resolves ``name`` to.

    Ignorable code points go, NFKC and case are folded, an alternate data stream
    (``:...``) is cut off and trailing dots and spaces are dropped.
    """
    folded = unicodedata.normalize("NFKC", _strip_ignorable(name)).casefold()
    return folded.partition(":")[0].rstrip(". ")


def _short_names(folded: str) -> tuple[str, int] | None:
    """``("git", 1)`` for the folded 8.3 short name ``git~1``, else None."""
    m = _SHORT_NAME.match(folded)
    return (m.group(1), int(m.group(2))) if m else None


def _is_short_name_of(folded: str, name: str) -> bool:
    """Whether ``folded`` is an NTFS 8.3 short name of the (folded) long ``name``.

    Windows shortens a long name to its first six characters (without a leading dot)
    and ``~N``; ``.git`` becomes ``git~1``.
    """
    short = _short_names(folded)
    if short is None:
        return False
    stem = name.lstrip(".")[:6]
    return short[0] == stem and short[1] >= 1


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

    def normalize(self, path: str, *, allow_root: bool = False, symlink: bool = False) -> str:
        """Check ``path`` and return its normal form.

        Args:
            path: What the caller asked for.
            allow_root: Whether "" (or ".") may name the project root.
            symlink: The path names a symlink: also refuse git's dot-files
                (``.gitmodules``, ``.gitattributes``, ``.gitignore``, ``.mailmap``).

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
        if _INVISIBLE.search(path):
            raise PathRefused(
                f"{shown} contains a line separator or a bidirectional control character, "
                "which make a name display differently from what it is. Use a plain path."
            )
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
        if symlink and is_git_dotfile(parts[-1]):
            raise PathDenied(
                f"{shown} would be a symlink named like {parts[-1]!r}, a file git reads; "
                "git refuses such links. Make it a regular file."
            )
        return "/".join(parts)

    def is_protected_name(self, name: str) -> bool:
        """Whether one path component is in the protected set (in any spelling that
        HFS+ or NTFS resolves to it, see the module docstring)."""
        folded: frozenset[str] = object.__getattribute__(self, "_folded")
        f = _fold(name)
        if f in folded:
            return True
        return "~" in f and any(_is_short_name_of(f, p) for p in folded)

    def is_protected(self, rel: str) -> bool:
        """Whether any component of the relative path ``rel`` is protected."""
        folded: frozenset[str] = object.__getattribute__(self, "_folded")
        whole = (
            rel.casefold()
            if rel.isascii()
            else unicodedata.normalize("NFKC", _strip_ignorable(rel)).casefold()
        )
        # A protected component's folded name is a substring of the folded whole path
        # (or it contains a "~" short name), so most paths are cleared without
        # splitting them (this runs once per file when a session's base is built).
        if "~" not in whole and not any(name in whole for name in folded):
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


def is_git_dotfile(name: str) -> bool:
    """Whether the component ``name`` is ``.gitmodules``, ``.gitattributes``,
    ``.gitignore`` or ``.mailmap`` as HFS+ or NTFS would resolve it (git's
    ``is_hfs_dotgitmodules``/``is_ntfs_dotgitmodules`` and friends), 8.3 short names
    (``gitmod~1``, ``gi7eba~3``) included."""
    f = _fold(name)
    for long, hashed in _GIT_DOTFILES.items():
        if f == "." + long or _is_short_name_of(f, long):
            return True
        short = _short_names(f)
        if short is not None and short[0] == hashed:
            return True
    return False


DEFAULT_POLICY = PathPolicy()
"""The policy used when none is configured."""
