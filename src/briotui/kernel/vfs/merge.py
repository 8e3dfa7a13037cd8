"""Three-way merges of file contents: rebasing onto user edits and merging branches.

We run ``git merge-file`` rather than a pure-Python diff3. It is git's own xdiff
merge, the same one ``git merge`` uses, with years of edge cases fixed (zealous
conflict trimming, no-newline endings, CRLF), and it offers the four strategies we need
(three-way, ``--ours``, ``--theirs``, ``--union``) with ``--diff3`` regions that carry
the base text. It needs no repository and runs no merge drivers, hooks or filters; we
call it through :func:`~briotui.kernel.vfs.gitio.run_git` anyway, with the scrubbed
environment. The inputs are written to a private temp directory. Binary content is not
merged: unless one side is unchanged or a strategy picks a side, it is a conflict.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from briotui.kernel.errors import GitError
from briotui.kernel.vfs.diff import is_binary
from briotui.kernel.vfs.gitio import run_git

Strategy = Literal["three-way", "ours", "theirs", "union"]
STRATEGIES: tuple[Strategy, ...] = ("three-way", "ours", "theirs", "union")


@dataclass(frozen=True)
class ConflictRegion:
    """One conflicting region.

    Attributes:
        base: The base text of the region.
        ours: Our side's text.
        theirs: Their side's text.
        line: Where the region starts (0-based) in the merge taking our side in every
            conflicting region (what a merge that keeps going leaves); -1 if unknown.
    """

    base: str
    ours: str
    theirs: str
    line: int = -1


@dataclass(frozen=True)
class MergeOutcome:
    """The result of merging one file.

    Attributes:
        content: The merged bytes (with conflict markers if there are conflicts; None
            for a binary conflict or a delete/modify conflict).
        conflicts: The conflicting regions; empty for a clean merge.
        deleted: Whether the merge result is that the file is deleted.
    """

    content: bytes | None
    conflicts: tuple[ConflictRegion, ...] = field(default=())
    deleted: bool = False

    @property
    def clean(self) -> bool:
        """Whether the merge had no conflicts."""
        return not self.conflicts


def merge3(
    base: bytes | None,
    ours: bytes | None,
    theirs: bytes | None,
    *,
    strategy: Strategy = "three-way",
    labels: tuple[str, str, str] = ("ours", "base", "theirs"),
) -> MergeOutcome:
    """Merge ``theirs`` into ``ours`` relative to ``base``. None means "absent".

    Args:
        base: The common ancestor (None: the file did not exist).
        ours: Our version (None: deleted or absent).
        theirs: Their version (None: deleted or absent).
        strategy: How to settle overlapping changes.
        labels: Conflict marker labels for ours, base and theirs.
    """
    if ours == theirs:
        return MergeOutcome(ours, deleted=ours is None)
    if base == ours:
        return MergeOutcome(theirs, deleted=theirs is None)
    if base == theirs:
        return MergeOutcome(ours, deleted=ours is None)
    if ours is None or theirs is None:  # delete on one side, change on the other
        if strategy == "ours":
            return MergeOutcome(ours, deleted=ours is None)
        if strategy == "theirs":
            return MergeOutcome(theirs, deleted=theirs is None)
        if strategy == "union":
            return MergeOutcome(ours if ours is not None else theirs)
        return MergeOutcome(None, (ConflictRegion(_text(base), _text(ours), _text(theirs)),))
    if any(is_binary(x) for x in (base or b"", ours, theirs)):
        if strategy == "ours":
            return MergeOutcome(ours)
        if strategy == "theirs":
            return MergeOutcome(theirs)
        return MergeOutcome(None, (ConflictRegion("<binary>", "<binary>", "<binary>"),))
    with tempfile.TemporaryDirectory(prefix="brio-merge-") as tmp:
        d = Path(tmp)
        (d / "ours").write_bytes(ours)
        (d / "base").write_bytes(base or b"")
        (d / "theirs").write_bytes(theirs)
        args = ["merge-file", "-p", "--diff3"]
        if strategy != "three-way":
            args.append(f"--{strategy}")
        for label in labels:
            args += ["-L", label]
        args += ["ours", "base", "theirs"]
        proc = run_git(args, d, check=False)
    if proc.returncode < 0 or proc.returncode > 127:
        raise GitError("git merge-file failed: " + proc.stderr.decode("utf-8", "replace").strip())
    merged = proc.stdout
    if proc.returncode == 0:
        return MergeOutcome(merged)
    return MergeOutcome(merged, tuple(parse_conflicts(merged.decode("utf-8", "replace"))))


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "replace")


def split_lines(text: str) -> list[str]:
    """``text`` as lines split on ``\\n`` only (as git counts them), each keeping its end."""
    lines = text.split("\n")
    last = lines.pop()
    out = [line + "\n" for line in lines]
    if last:
        out.append(last)
    return out


def parse_conflicts(text: str) -> list[ConflictRegion]:
    """The regions of ``--diff3`` conflict markers in ``text``, each with the line where
    it starts once every region takes our side."""
    regions: list[ConflictRegion] = []
    state = ""
    parts: dict[str, list[str]] = {}
    at = 0  # lines so far of the result taking our side
    start = 0
    for line in split_lines(text):
        if line.startswith("<<<<<<< ") or line.rstrip("\n") == "<<<<<<<":
            state = "ours"
            parts = {"ours": [], "base": [], "theirs": []}
            start = at
        elif state and line.startswith("|||||||"):
            state = "base"
        elif state and line.rstrip("\n") == "=======":
            state = "theirs"
        elif state and line.startswith(">>>>>>>"):
            regions.append(
                ConflictRegion(
                    "".join(parts["base"]),
                    "".join(parts["ours"]),
                    "".join(parts["theirs"]),
                    start,
                )
            )
            state = ""
        elif state:
            parts[state].append(line)
            at += state == "ours"
        else:
            at += 1
    return regions
