"""A session's diff: file changes split into hunks with stable ids, and applying a subset.

Lines are matched by libgit2's xdiff (Myers with git's indent heuristic, through
:mod:`pygit2`, in C and without a process per file), so hunks are the ones ``git diff``
shows. Before xdiff sees a file, the head and tail both versions share are cut off,
keeping :data:`TRIM_MARGIN` equal lines beside the changes (a long file with a few
edits is mostly equal lines, and hashing them is most of the cost); in a very
repetitive file that can rarely pair lines differently than ``git diff`` (still a
correct diff). Lines are split on ``\\n`` only and keep their endings, so a missing
final newline is a difference of its own and renders as ``\\ No newline at end of
file``, and CRLF lines are compared byte for byte.

A hunk id is a short hash of the file path, the hunk kind, the removed and added lines
and the number of identical hunks before it in the file. It does not depend on line
numbers, so a decision on one hunk survives re-computation after other hunks change,
nor on the matching algorithm beyond which lines it pairs.

Hunk kinds:

* ``text``: a run of changed lines (with 3 lines of context in the rendering);
* ``file``: the whole of an added or deleted file;
* ``binary``: the new content of a modified binary file;
* ``mode``: the executable bit changed;
* ``rename``: the file moved (its content hunks are relative to the old path's base);
* ``symlink``: a symlink's target changed, or the path changed between a symlink and a
  regular file (one hunk: the link and its target are taken or left together).

A symlink is content, as in git: its "bytes" are the target path, rendered as one line
with mode ``120000``, and it is never followed. Hunks of a symlink say so in their
header (``symbolic link``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NewType

if TYPE_CHECKING:
    import pygit2

HunkId = NewType("HunkId", str)
HunkKind = Literal["text", "file", "binary", "mode", "rename", "symlink"]
FileStatus = Literal["added", "deleted", "modified", "renamed"]

CONTEXT = 3
BINARY_SNIFF = 8000


def is_binary(data: bytes) -> bool:
    """Git's rule: a NUL byte in the first 8000 bytes, or not UTF-8 decodable."""
    if b"\0" in data[:BINARY_SNIFF]:
        return True
    if data.isascii():  # the common case, without decoding
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _split_lines(data: bytes) -> list[str]:
    """Lines split on ``\n`` only (``\r`` and Unicode breaks stay inside a line)."""
    parts = data.decode("utf-8").split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _hid(*parts: str) -> HunkId:
    h = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return HunkId(h[:10])


@dataclass(frozen=True)
class Hunk:
    """One reviewable piece of a file change.

    Attributes:
        id: Stable short id (see the module docstring).
        path: The file's (new) path.
        kind: What it changes.
        old_start: First old line (1-based) of the rendered hunk, context included.
        old_count: Old lines in the rendered hunk.
        new_start: First new line (1-based).
        new_count: New lines in the rendered hunk.
        lines: The rendered body (``" "``, ``"-"``, ``"+"`` prefixed, endings kept).
        ops: The changed ranges this hunk owns: ``(old_lo, old_hi, new_lo, new_hi)``
            0-based half-open line ranges.
        note: Shown in the header, before the id (``symbolic link`` for links).
    """

    id: HunkId
    path: str
    kind: HunkKind
    old_start: int = 0
    old_count: int = 0
    new_start: int = 0
    new_count: int = 0
    lines: tuple[str, ...] = ()
    ops: tuple[tuple[int, int, int, int], ...] = ()
    note: str = ""

    def header(self) -> str:
        """The ``@@`` line (text hunks) or a short description, tagged ``#h-<id>``."""
        note = f" ({self.note})" if self.note else ""
        if self.kind == "text":
            return (
                f"@@ -{self.old_start},{self.old_count} +{self.new_start},{self.new_count}{note}"
                f" @@ #h-{self.id}"
            )
        return f"@@ {self.kind}{note} @@ #h-{self.id}"

    def text(self) -> str:
        """The hunk as unified-diff text (header and body)."""
        return self.header() + "\n" + "".join(_render_line(line) for line in self.lines)


def _render_line(line: str) -> str:
    if line.endswith("\n"):
        return line
    return line + "\n\\ No newline at end of file\n"


@dataclass(frozen=True)
class FileChange:
    """One changed file of a session.

    Attributes:
        path: The new path (the old one for a deletion).
        status: added, deleted, modified or renamed.
        old_path: The path in the base (differs from ``path`` for a rename).
        old: The base bytes (None when added); a symlink's target for a link.
        new: The session's bytes (None when deleted); a symlink's target for a link.
        old_exec: Executable bit in the base.
        new_exec: Executable bit in the session.
        binary: Whether either side is binary.
        hunks: The hunks, in file order.
        old_symlink: The base version is a symlink (mode 120000).
        new_symlink: The session's version is a symlink.
    """

    path: str
    status: FileStatus
    old_path: str
    old: bytes | None
    new: bytes | None
    old_exec: bool
    new_exec: bool
    binary: bool
    hunks: tuple[Hunk, ...] = field(default=())
    old_symlink: bool = False
    new_symlink: bool = False

    def text(self) -> str:
        """The change as git-style unified diff text."""
        a = f"a/{self.old_path}"
        b = f"b/{self.path}"
        out = [f"diff --git {a} {b}\n"]
        old_mode = _mode(self.old_exec, self.old_symlink)
        new_mode = _mode(self.new_exec, self.new_symlink)
        if self.status == "added":
            out.append(f"new file mode {new_mode}\n")
        elif self.status == "deleted":
            out.append(f"deleted file mode {old_mode}\n")
        else:
            if old_mode != new_mode:
                out.append(f"old mode {old_mode}\nnew mode {new_mode}\n")
            if self.status == "renamed":
                out.append(f"rename from {self.old_path}\nrename to {self.path}\n")
        if self.binary:
            out.append(f"Binary files {a} and {b} differ\n")
            out.extend(f"{h.header()}\n" for h in self.hunks)
            return "".join(out)
        if any(h.kind in _CONTENT_KINDS for h in self.hunks):
            out.append(f"--- {a if self.old is not None else '/dev/null'}\n")
            out.append(f"+++ {b if self.new is not None else '/dev/null'}\n")
        for h in self.hunks:
            if h.kind in _CONTENT_KINDS and h.lines:
                out.append(h.text())
            elif h.kind == "file":
                out.append(f"{h.header()} (empty file)\n")
            else:
                out.append(f"{h.header()}\n")
        return "".join(out)


_CONTENT_KINDS = ("text", "file", "symlink")
LINK_NOTE = "symbolic link"


def _mode(executable: bool, symlink: bool = False) -> str:
    if symlink:
        return "120000"
    return "100755" if executable else "100644"


@dataclass(frozen=True)
class SessionDiff:
    """Every change of a session against its base.

    Attributes:
        files: The changed files, sorted by path.
    """

    files: tuple[FileChange, ...]

    def hunks(self) -> list[Hunk]:
        """All hunks, in file then line order."""
        return [h for f in self.files for h in f.hunks]

    def hunk(self, hunk_id: str) -> Hunk | None:
        """The hunk with that id (or unique id prefix), or None."""
        matches = [h for h in self.hunks() if h.id.startswith(hunk_id)]
        return matches[0] if len(matches) == 1 else None

    def file(self, path: str) -> FileChange | None:
        """The change of ``path`` (its new or old path), or None."""
        for f in self.files:
            if path in (f.path, f.old_path):
                return f
        return None

    def text(self) -> str:
        """The whole diff as unified-diff text."""
        return "".join(f.text() for f in self.files)


def _patch(old: bytes, new: bytes) -> pygit2.Patch:
    """xdiff's patch of two texts: Myers with git's indent heuristic, ``CONTEXT`` lines.

    pygit2 is imported on the first diff, not with the kernel (it takes a while).
    """
    import pygit2

    flags = pygit2.enums.DiffOption.FORCE_TEXT | pygit2.enums.DiffOption.INDENT_HEURISTIC
    return pygit2.Patch.create_from(old, new, context_lines=CONTEXT, flag=flags)


TRIM_MARGIN = 100
"""Equal lines kept around the changed middle when the common head and tail are cut
off before xdiff (more than git's indent heuristic ever slides a change)."""


def _same_head(a: bytes, b: bytes) -> int:
    """The length of the common prefix of ``a`` and ``b`` (compared in C, by chunks)."""
    n = min(len(a), len(b))
    i, step = 0, 4096
    while True:
        while i + step <= n and a[i : i + step] == b[i : i + step]:
            i += step
        if step == 1:
            return i
        step //= 2


def _same_tail(a: bytes, b: bytes, limit: int) -> int:
    """The length of the common suffix of ``a`` and ``b``, at most ``limit``."""
    la, lb = len(a), len(b)
    i, step = 0, 4096
    while True:
        while i + step <= limit and a[la - i - step : la - i] == b[lb - i - step : lb - i]:
            i += step
        if step == 1:
            return i
        step //= 2


def _middle(old: bytes, new: bytes) -> tuple[int, int, int]:
    """What xdiff needs to see: ``(head, old_tail, new_tail)`` byte offsets such that
    ``old[:head] == new[:head]`` and the tails from those offsets are equal, each cut
    at a line start and leaving :data:`TRIM_MARGIN` equal lines next to the changes.

    Hashing and classifying the lines nobody changed is most of a diff's cost on a
    long file with a few edits.
    """
    head = _same_head(old, new)
    cut = old.rfind(b"\n", 0, head) + 1  # the start of the first differing line
    parts = old[:cut].rsplit(b"\n", TRIM_MARGIN + 1)
    cut = len(parts[0]) + 1 if len(parts) == TRIM_MARGIN + 2 else 0
    tail = _same_tail(old, new, min(len(old), len(new)) - cut)
    nl = old.find(b"\n", len(old) - tail)  # the tail begins inside a line: skip it
    end = len(old) if nl < 0 else nl + 1
    rest = old[end:]
    parts = rest.split(b"\n", TRIM_MARGIN)
    end = len(old) - len(parts[-1]) if len(parts) == TRIM_MARGIN + 1 else len(old)
    return cut, end, len(new) - (len(old) - end)


def _text_hunks(path: str, old_data: bytes, new_data: bytes) -> list[Hunk]:
    """xdiff's hunks (``CONTEXT`` lines of context, merged when closer than twice
    that) with their changed ranges; only the lines inside hunks become strings."""
    head, old_end, new_end = _middle(old_data, new_data)
    skipped = old_data.count(b"\n", 0, head)
    patch = _patch(old_data[head:old_end], new_data[head:new_end])
    hunks: list[Hunk] = []
    seen: dict[str, int] = {}
    for xh in patch.hunks:
        o = old_lo = (xh.old_start - 1 if xh.old_lines else xh.old_start) + skipped
        n = new_lo = (xh.new_start - 1 if xh.new_lines else xh.new_start) + skipped
        ops: list[tuple[int, int, int, int]] = []
        run: tuple[int, int] | None = None
        body: list[str] = []
        removed: list[str] = []
        added: list[str] = []
        for line in xh.lines:
            origin = line.origin
            if origin == " ":
                if run is not None:
                    ops.append((run[0], o, run[1], n))
                    run = None
                body.append(" " + line.content)
                o += 1
                n += 1
            elif origin == "-":
                run = run or (o, n)
                removed.append(line.content)
                body.append("-" + removed[-1])
                o += 1
            elif origin == "+":
                run = run or (o, n)
                added.append(line.content)
                body.append("+" + added[-1])
                n += 1
            # "<", ">", "=": xdiff's no-newline-at-end markers, not lines
        if run is not None:
            ops.append((run[0], o, run[1], n))
        if not ops:
            continue
        key = "".join(removed) + "\0" + "".join(added)
        k = seen.get(key, 0)
        seen[key] = k + 1
        hunks.append(
            Hunk(
                id=_hid(path, "text", key, str(k)),
                path=path,
                kind="text",
                old_start=old_lo + 1 if o > old_lo else old_lo,
                old_count=o - old_lo,
                new_start=new_lo + 1 if n > new_lo else new_lo,
                new_count=n - new_lo,
                lines=tuple(body),
                ops=tuple(ops),
            )
        )
    return hunks


def file_change(
    *,
    path: str,
    old_path: str,
    old: bytes | None,
    new: bytes | None,
    old_exec: bool,
    new_exec: bool,
    old_symlink: bool = False,
    new_symlink: bool = False,
) -> FileChange | None:
    """The change from ``old`` to ``new`` with its hunks, or None if nothing changed.

    ``old_symlink``/``new_symlink`` mark a side as a symlink whose bytes are its target;
    a link's executable bit is meaningless and ignored.
    """
    if old_symlink:
        old_exec = False
    if new_symlink:
        new_exec = False
    binary = (old is not None and is_binary(old)) or (new is not None and is_binary(new))
    hunks: list[Hunk] = []
    if old is None and new is not None:
        status: FileStatus = "added"
        lines = () if binary else tuple("+" + x for x in _split_lines(new))
        hunks.append(
            Hunk(
                _hid(path, "file", "add", _digest(new), *(("link",) if new_symlink else ())),
                path,
                "file",
                0,
                0,
                1 if lines else 0,
                len(lines),
                lines,
                note=LINK_NOTE if new_symlink else "",
            )
        )
    elif new is None and old is not None:
        status = "deleted"
        lines = () if binary else tuple("-" + x for x in _split_lines(old))
        hunks.append(
            Hunk(
                _hid(path, "file", "delete", _digest(old), *(("link",) if old_symlink else ())),
                path,
                "file",
                1 if lines else 0,
                len(lines),
                0,
                0,
                lines,
                note=LINK_NOTE if old_symlink else "",
            )
        )
    elif old is not None and new is not None and (old_symlink or new_symlink):
        status = "renamed" if old_path != path else "modified"
        same = old == new and old_symlink == new_symlink
        if same and status == "modified":
            return None
        if status == "renamed":
            hunks.append(Hunk(_hid(path, "rename", old_path), path, "rename"))
        if not same:
            body: tuple[str, ...] = ()
            if not binary:
                body = tuple("-" + x for x in _split_lines(old)) + tuple(
                    "+" + x for x in _split_lines(new)
                )
            key = (_digest(old), str(old_symlink), _digest(new), str(new_symlink))
            hunks.append(
                Hunk(_hid(path, "symlink", *key), path, "symlink", lines=body, note=LINK_NOTE)
            )
    elif old is not None and new is not None:
        status = "renamed" if old_path != path else "modified"
        if old == new and old_exec == new_exec and status == "modified":
            return None
        if status == "renamed":
            hunks.append(Hunk(_hid(path, "rename", old_path), path, "rename"))
        if old != new:
            if binary:
                hunks.append(Hunk(_hid(path, "binary", _digest(old), _digest(new)), path, "binary"))
            else:
                hunks.extend(_text_hunks(path, old, new))
        if old_exec != new_exec:
            hunks.append(Hunk(_hid(path, "mode", str(old_exec), str(new_exec)), path, "mode"))
    else:
        return None
    return FileChange(
        path=path,
        status=status,
        old_path=old_path,
        old=old,
        new=new,
        old_exec=old_exec,
        new_exec=new_exec,
        binary=binary,
        hunks=tuple(hunks),
        old_symlink=old_symlink,
        new_symlink=new_symlink,
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileOutcome:
    """What applying a file change's accepted hunks produces.

    Attributes:
        writes: ``(path, bytes, executable)`` to write.
        deletes: Paths to delete.
        base_of: For each written or deleted path, the base path it derives from
            (None for a new file): the 3-way merge base when the user changed it.
        links: The written paths that are symlinks (their bytes are the target).
    """

    writes: tuple[tuple[str, bytes, bool], ...]
    deletes: tuple[str, ...]
    base_of: dict[str, str | None]
    links: frozenset[str] = frozenset()


def apply_accepted(change: FileChange, accepted: Iterable[str]) -> FileOutcome:
    """The result of applying only the ``accepted`` hunks of ``change`` to its base."""
    ok = set(accepted)
    taken = [h for h in change.hunks if h.id in ok]
    if not taken:
        return FileOutcome((), (), {})
    kinds = {h.kind for h in taken}
    if change.status == "added":
        assert change.new is not None
        return FileOutcome(
            ((change.path, change.new, change.new_exec),),
            (),
            {change.path: None},
            frozenset({change.path}) if change.new_symlink else frozenset(),
        )
    if change.status == "deleted":
        return FileOutcome((), (change.path,), {change.path: change.path})
    assert change.old is not None
    assert change.new is not None
    link = change.old_symlink
    if "symlink" in kinds:
        content, link = change.new, change.new_symlink
    elif link:
        content = change.old
    elif "binary" in kinds:
        content = change.new
    elif "text" in kinds:
        text = [h for h in taken if h.kind == "text"]
        if len(text) == sum(1 for h in change.hunks if h.kind == "text"):
            content = change.new  # every text hunk: the new bytes, as they are
        else:
            content = _apply_text(change.old, change.new, text)
    else:
        content = change.old
    executable = change.new_exec if "mode" in kinds or "symlink" in kinds else change.old_exec
    if link:
        executable = False
    if "rename" in kinds:
        return FileOutcome(
            ((change.path, content, executable),),
            (change.old_path,),
            {change.path: change.old_path, change.old_path: change.old_path},
            frozenset({change.path}) if link else frozenset(),
        )
    return FileOutcome(
        ((change.old_path, content, executable),),
        (),
        {change.old_path: change.old_path},
        frozenset({change.old_path}) if link else frozenset(),
    )


def _apply_text(old: bytes, new: bytes, hunks: list[Hunk]) -> bytes:
    old_lines = _split_lines(old)
    new_lines = _split_lines(new)
    ops = sorted(op for h in hunks for op in h.ops)
    out: list[str] = []
    pos = 0
    for i1, i2, j1, j2 in ops:
        out.extend(old_lines[pos:i1])
        out.extend(new_lines[j1:j2])
        pos = i2
    out.extend(old_lines[pos:])
    return "".join(out).encode("utf-8")
