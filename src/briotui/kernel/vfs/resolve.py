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
The session and the store are updated by the kernel's session commands; this module
only computes the new text.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from briotui.kernel.errors import ConflictMoved
from briotui.kernel.vfs.merge import split_lines

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


__all__ = ["RESOLUTIONS", "Choice", "Pick", "apply", "chosen_text", "locate"]
