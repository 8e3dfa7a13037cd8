"""Resolving the conflicting regions a 3-way merge left in a session, on the file's text.

A branch merged with conflicts (:meth:`~briotui.kernel.vfs.session.Session.merge_from`
with ``keep_going``) leaves the session holding its own side ("ours") in every
conflicting region; each region's base, ours and theirs texts and the line where ours
starts are kept with the session. Resolving a region replaces exactly its ours lines
with what the user chose: ours (nothing changes), theirs (the branch's lines), both
(ours then theirs) or a text of their own. Everything outside the chosen regions is
kept byte for byte.

A region is found where it was left; when the file changed since (a fix round), it is
found by its ours text when that occurs exactly once. Otherwise it is not guessed:
:class:`~briotui.kernel.errors.ConflictMoved` says to resolve the file as a whole.
:func:`resolve_in_session` writes the result into the session (a new version of the
file) and marks the regions resolved in the store (``session_conflicts``: how, by whom,
when); the kernel's session commands call it and publish the session again.
"""

from __future__ import annotations

import itertools
import json
import posixpath
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from briotui.kernel.errors import (
    ConflictMoved,
    ConflictNotFound,
    SessionNotFound,
    SessionStateError,
)
from briotui.kernel.vfs.diff import is_binary
from briotui.kernel.vfs.merge import split_lines

if TYPE_CHECKING:
    from briotui.kernel.vfs.session import Session

Choice = Literal["ours", "theirs", "both", "text"]
"""How a region is resolved (``text``: with the user's own text)."""

RESOLUTIONS: dict[Choice, str] = {
    "ours": "ours",
    "theirs": "theirs",
    "both": "both",
    "text": "edited",
}
"""What the store and the state call each choice."""


@dataclass(frozen=True)
class Pick:
    """One region to resolve and the text that replaces its ours lines.

    Attributes:
        region: The stored region (``ours``, and ``line`` when known).
        text: What the region becomes.
        label: How the region is named in messages (e.g. ``region 2 of calc.py``).
    """

    region: Mapping[str, Any]
    text: str
    label: str


def chosen_text(region: Mapping[str, Any], choice: Choice, text: str = "") -> str:
    """The text a region becomes under ``choice`` (``text`` for ``"text"``)."""
    ours, theirs = str(region.get("ours") or ""), str(region.get("theirs") or "")
    if choice == "ours":
        return ours
    if choice == "theirs":
        return theirs
    if choice == "both":
        return ours + ("\n" if ours and not ours.endswith("\n") else "") + theirs
    return text


def _matches(lines: Sequence[str], start: int, ours: list[str]) -> bool:
    end = start + len(ours)
    if start < 0 or end > len(lines):
        return False
    if list(lines[start:end]) == ours:
        return True
    # at the end of a file without a final newline, git's markers added one
    return (
        bool(ours)
        and end == len(lines)
        and not lines[-1].endswith("\n")
        and list(lines[start : end - 1]) == ours[:-1]
        and lines[-1] + "\n" == ours[-1]
    )


def locate(lines: Sequence[str], region: Mapping[str, Any], label: str) -> int:
    """Where ``region``'s ours lines start in ``lines`` (a file split by :func:`split_lines`).

    Raises:
        ConflictMoved: They are neither where the merge left them nor found exactly once.
    """
    ours = split_lines(str(region.get("ours") or ""))
    line = region.get("line")
    if (
        isinstance(line, int)
        and line >= 0
        and _matches(lines, line, ours)
        and (ours or _context_holds(lines, line, region))
    ):
        return line
    if ours:
        found = [s for s in range(len(lines) - len(ours) + 1) if _matches(lines, s, ours)]
        if len(found) == 1:
            return found[0]
        why = "occurs more than once" if found else "is no longer in the file"
    else:
        why = "was empty and the file changed around it"
    raise ConflictMoved(
        f"The session's side of {label} {why} (the file changed after the merge), so it "
        "cannot be replaced safely. Resolve the whole file instead: write the content you "
        "want to a file and pass it with --file (without --region)."
    )


def _context_holds(lines: Sequence[str], line: int, region: Mapping[str, Any]) -> bool:
    """For an empty ours side: the line before it is still the one the merge left."""
    above = region.get("above")
    if not isinstance(above, str):
        return True  # nothing recorded to check against
    return (lines[line - 1] if line > 0 else "") == above


def apply(
    content: str, picks: Sequence[Pick], others: Sequence[Mapping[str, Any]] = ()
) -> tuple[str, list[int | None]]:
    """Replace each pick's ours lines in ``content`` by its text.

    Args:
        content: The file as the session holds it.
        picks: The regions to resolve, each with its new text.
        others: The file's other unresolved regions, to say where they start afterwards.

    Returns:
        The new content, and where each of ``others`` starts in it (None where it could
        not be found before).

    Raises:
        ConflictMoved: A region is not where it can be found safely, or two overlap.
    """
    lines = split_lines(content)
    spans: list[tuple[int, int, str, str]] = []
    for pick in picks:
        start = locate(lines, pick.region, pick.label)
        size = len(split_lines(str(pick.region.get("ours") or "")))
        spans.append((start, start + size, pick.text, pick.label))
    spans.sort()
    for (_, end, _, first), (start, _, _, second) in itertools.pairwise(spans):
        if start < end:
            raise ConflictMoved(
                f"{first} and {second} overlap in the file; resolve the whole file with "
                "--file (without --region)."
            )
    where: list[int | None] = []
    for i, region in enumerate(others):
        try:
            where.append(locate(lines, region, f"region {i + 1}"))
        except ConflictMoved:
            where.append(None)
    shifted = list(where)
    for start, end, text, _ in sorted(spans, reverse=True):
        new = split_lines(text)
        at_end = end == len(lines) and bool(lines) and not lines[-1].endswith("\n")
        if at_end and new and new[-1].endswith("\n"):
            new[-1] = new[-1][:-1]  # the file had no final newline; it still has none
            if not new[-1]:
                new.pop()
        elif end < len(lines) and new and not new[-1].endswith("\n"):
            new[-1] += "\n"  # a text without a final newline must not join the next line
        lines[start:end] = new
        delta = len(new) - (end - start)
        shifted = [p + delta if p is not None and p >= end else p for p in shifted]
    return "".join(lines), shifted


@dataclass(frozen=True)
class Resolved:
    """What resolving conflicting regions did.

    Attributes:
        session: The session.
        path: The file.
        regions: The regions resolved (numbered from 1 within the file).
        resolution: ours, theirs, both or edited.
        changed: Whether the session's file changed (taking ours changes nothing).
        remaining: Conflicting regions left unresolved in the whole session.
    """

    session: str
    path: str
    regions: tuple[int, ...]
    resolution: str
    changed: bool
    remaining: int

    def to_dict(self) -> dict[str, Any]:
        """As JSON-able data."""
        return {**self.__dict__, "regions": list(self.regions)}


def conflict_rows(session: Session) -> list[dict[str, Any]]:
    """The stored conflicts of a session, in the order they are listed (and numbered):
    ``path``, ``branch`` and ``regions`` (decoded)."""
    rows = session.manager.store.query(
        "SELECT path, branch, regions FROM session_conflicts WHERE session_id = ?"
        " ORDER BY created, path",
        (session.id,),
    )
    return [
        {"path": str(r["path"]), "branch": str(r["branch"]), "regions": json.loads(r["regions"])}
        for r in rows
    ]


def _what_to_resolve(session_id: str, rows: list[dict[str, Any]]) -> str:
    left: dict[str, int] = {}
    for row in rows:
        for region in row["regions"]:
            if not region.get("resolved"):
                left[row["path"]] = left.get(row["path"], 0) + 1
    if not left:
        return f"Session {session_id} has no conflicts left to resolve."
    listed = ", ".join(f"{path} ({n} region(s))" for path, n in left.items())
    return f"Conflicts to resolve in session {session_id}: {listed}."


def _whole_file(
    session: Session, rel: str, row: dict[str, Any], choice: Choice, text: bytes
) -> tuple[bytes | None, bool, bool]:
    """The file a whole-file conflict becomes: (content or None for absent, executable,
    symlink)."""
    ours = session.content(rel)
    if choice == "ours":
        return ours
    if choice == "text":
        return text, ours[1], False
    try:
        branch = session.manager.get(row["branch"])
    except SessionNotFound:
        raise ConflictMoved(
            f"The branch session {row['branch']} holding the other side of {rel} is gone; "
            "resolve the file with --file."
        ) from None
    theirs = branch.content(rel)
    if choice == "theirs":
        return theirs
    sides = (ours, theirs)
    if any(d is None or link or is_binary(d) for d, _, link in sides):
        raise ConflictMoved(
            f"Both sides of {rel} cannot be kept together (one is absent, binary or a "
            "symbolic link); take one side, or give the content with --file."
        )
    first, second = (bytes(d or b"") for d, _, _ in sides)
    joined = first + (b"\n" if first and not first.endswith(b"\n") else b"") + second
    return joined, ours[1], False


def resolve_in_session(
    session: Session,
    path: str,
    choice: Choice,
    *,
    region: int | None = None,
    text: bytes = b"",
    by: str = "user",
) -> Resolved:
    """Resolve conflicting regions of ``path`` in ``session`` and record it in the store.

    The session's file gets the chosen text (a new version, so its hunks change); the
    regions are marked resolved with how, by whom and when; the file's other regions
    are told where they start now.

    Args:
        session: The session (open).
        path: The conflicting file.
        choice: ours (the session's side), theirs (the branch's), both (ours then
            theirs) or text (``text``: the region's new text, or with no ``region`` the
            whole file's).
        region: The region's number within the file (from 1); None for every
            unresolved region of the file.
        text: The user's own text for ``choice="text"``.
        by: Who resolved it, as the store keeps it (e.g. ``user (cli)``).

    Raises:
        SessionStateError: The session is committed or discarded, or the region is
            resolved already.
        ConflictNotFound: No conflict in ``path``, or no region ``region``.
        ConflictMoved: The region cannot be found safely in the file any more.
    """
    if session.state != "open":
        raise SessionStateError(
            f"Session {session.id} is {session.state}; its conflicts can no longer "
            "be resolved. Roll the commit back (briotui sessions rollback) to change "
            "it, or start a new request.",
            title="Session closed",
        )
    rows = conflict_rows(session)
    rel = posixpath.normpath(path.replace("\\", "/")).lstrip("/")
    mine = [(row, r) for row in rows if row["path"] == rel for r in row["regions"]]
    if not mine:
        raise ConflictNotFound(
            f"Session {session.id} has no conflict in {rel}. " + _what_to_resolve(session.id, rows)
        )
    numbered = list(enumerate(mine, 1))
    if region is not None:
        if not 1 <= region <= len(mine):
            raise ConflictNotFound(
                f"{rel} has {len(mine)} conflicting region(s) in session "
                f"{session.id}; there is no region {region} (give 1 to {len(mine)})."
            )
        targets = [numbered[region - 1]]
        done = targets[0][1][1]
        if done.get("resolved"):
            raise SessionStateError(
                f"Region {region} of {rel} is resolved already (took "
                f"{done.get('resolution', '?')}). To change it, give the whole "
                "file's content with --file.",
                title="Already resolved",
            )
    else:
        targets = [
            n
            for n in numbered
            if choice == "text" or not n[1][1].get("resolved")  # a whole file's text
        ]
        if not targets:
            raise SessionStateError(
                f"Every conflicting region of {rel} is resolved already. To change "
                "the file, give its whole content with --file.",
                title="Already resolved",
            )
    changed = _write_resolution(session, rel, numbered, targets, choice, text, region)
    now = time.time()
    for _, (_, r) in targets:
        r.update(resolved=True, resolution=RESOLUTIONS[choice], resolved_by=by, resolved_at=now)
    with session.manager.store.transaction() as conn:
        for row in rows:
            if row["path"] != rel:
                continue
            conn.execute(
                "UPDATE session_conflicts SET regions = ? WHERE session_id = ? AND"
                " path = ? AND branch = ?",
                (json.dumps(row["regions"]), session.id, rel, row["branch"]),
            )
    return Resolved(
        session=session.id,
        path=rel,
        regions=tuple(n for n, _ in targets),
        resolution=RESOLUTIONS[choice],
        changed=changed,
        remaining=sum(1 for row in rows for r in row["regions"] if not r.get("resolved")),
    )


def _write_resolution(
    session: Session,
    rel: str,
    numbered: list[tuple[int, tuple[dict[str, Any], dict[str, Any]]]],
    targets: list[tuple[int, tuple[dict[str, Any], dict[str, Any]]]],
    choice: Choice,
    text: bytes,
    region: int | None,
) -> bool:
    """Write what ``targets`` become into the session's file; whether it changed.
    Updates where the file's other unresolved regions start now."""
    data, executable, link = session.content(rel)
    whole = [t for t in targets if t[1][1].get("whole")]
    if choice == "text" and region is None:
        new: tuple[bytes | None, bool, bool] = (text, executable, False)
    elif whole:
        new = _whole_file(session, rel, whole[0][1][0], choice, text)
    else:
        if data is None or link:
            raise ConflictMoved(
                f"{rel} is no longer a text file in session {session.id}; give its "
                "content with --file."
            )
        try:
            content = data.decode("utf-8")
            own = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ConflictMoved(
                f"{rel} (or the text given) is not UTF-8 text, so its regions cannot be "
                "replaced line by line; give the whole file's content with --file."
            ) from None
        picks = [
            Pick(r, chosen_text(r, choice, own), f"region {n} of {rel}") for n, (_, r) in targets
        ]
        others = [
            r
            for n, (_, r) in numbered
            if not r.get("resolved") and n not in {t[0] for t in targets}
        ]
        merged, where = apply(content, picks, others)
        for r, line in zip(others, where, strict=True):
            if line is not None:
                r["line"] = line
        new = (merged.encode("utf-8"), executable, False)
    if new == (data, executable, link):
        return False
    content_new, exec_new, link_new = new
    if content_new is None:
        if data is not None:
            session.delete(rel)
    elif link_new:
        session.write_symlink(rel, content_new)
    else:
        session.write(rel, content_new, exec_new)
    return True


__all__ = [
    "RESOLUTIONS",
    "Choice",
    "Pick",
    "Resolved",
    "apply",
    "chosen_text",
    "conflict_rows",
    "locate",
    "resolve_in_session",
]
