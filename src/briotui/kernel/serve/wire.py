"""Kernel objects a served kernel sends besides the state tree, and back again.

The state tree carries what every client shows; a few answers are read on demand
(a session's full diff for review, a task's transcript, a commit's result). This module
turns them into JSON and, on the client's side, into the same dataclasses the kernel
returns (:class:`~briotui.kernel.vfs.SessionDiff`, :class:`CommitResult`...), so a front
end handles a remote answer exactly as a local one. File contents are not sent (a
review reads hunks); ``old``/``new`` arrive as None.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from briotui.kernel.session_commands import CommitCheck
from briotui.kernel.vfs import SessionDiff
from briotui.kernel.vfs.commit import CommitResult, RollbackResult
from briotui.kernel.vfs.diff import FileChange, Hunk
from briotui.kernel.vfs.manager import SessionInfo


def diff_json(diff: SessionDiff) -> list[dict[str, Any]]:
    """A session's diff as JSON: its files and their hunks, without file contents."""
    return [
        {
            "path": f.path,
            "status": f.status,
            "old_path": f.old_path,
            "old_exec": f.old_exec,
            "new_exec": f.new_exec,
            "binary": f.binary,
            "old_symlink": f.old_symlink,
            "new_symlink": f.new_symlink,
            "hunks": [dataclasses.asdict(h) for h in f.hunks],
        }
        for f in diff.files
    ]


def diff_of(files: list[dict[str, Any]]) -> SessionDiff:
    """The :class:`SessionDiff` :func:`diff_json` describes (contents None)."""
    return SessionDiff(
        tuple(
            FileChange(
                path=f["path"],
                status=f["status"],
                old_path=f["old_path"],
                old=None,
                new=None,
                old_exec=bool(f["old_exec"]),
                new_exec=bool(f["new_exec"]),
                binary=bool(f["binary"]),
                hunks=tuple(
                    Hunk(
                        **{
                            **h,
                            "lines": tuple(h["lines"]),
                            "ops": tuple(tuple(op) for op in h["ops"]),
                        }
                    )
                    for h in f["hunks"]
                ),
                old_symlink=bool(f["old_symlink"]),
                new_symlink=bool(f["new_symlink"]),
            )
            for f in files
        )
    )


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def commit_result_of(data: dict[str, Any]) -> CommitResult:
    """The :class:`CommitResult` in a ``commit`` command's value."""
    return CommitResult(**_tuples(data))


def rollback_result_of(data: dict[str, Any]) -> RollbackResult:
    """The :class:`RollbackResult` in a ``rollback`` command's value."""
    return RollbackResult(**_tuples(data))


def commit_check_of(data: dict[str, Any]) -> CommitCheck:
    """The :class:`CommitCheck` in a ``verify_commit`` command's value."""
    return CommitCheck(**data)


def session_info_of(data: dict[str, Any]) -> SessionInfo:
    """A :class:`SessionInfo` in a ``sessions`` command's value."""
    return SessionInfo(**data)


__all__ = [
    "commit_check_of",
    "commit_result_of",
    "diff_json",
    "diff_of",
    "rollback_result_of",
    "session_info_of",
]
