"""A session as a real directory, for processes that need files (test runners, builds).

:class:`Materialized` copies the session's view into a directory (copies, never hard
links: a process writing through a link would reach the user's files) and keeps the
two in sync: :meth:`Materialized.sync_out` pushes session changes to the directory,
:meth:`Materialized.sync_back` pulls what the process changed into the session, through
the same path policy as any agent write.

The directory is untrusted: the processes that ran there may have planted symlinks
(to redirect the kernel's next write outside the project), FIFOs (to block it) or
devices. Every operation here goes through :mod:`briotui.kernel.vfs.safefs`: paths
are walked with directory fds that never follow a link, files are written to fresh
``O_EXCL | O_NOFOLLOW`` temp names and renamed into place, and only regular files
are ever opened. A symlink the process made is content, as in git: it comes back into
the session as a symlink (its target, never followed), shown in the session's diff.
What cannot come back (FIFOs, devices, sockets, files over the size limit, refused
paths) is listed by :meth:`Session.left_out` with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from briotui.kernel.errors import FileTooLarge, PathRefused, WorkspaceFileNotFound
from briotui.kernel.vfs import safefs

if TYPE_CHECKING:
    from briotui.kernel.vfs.session import Session

# (is a symlink, size, mtime, ctime, inode, owner-executable)
_Sig = tuple[bool, int, int, int, int, bool]


def _sig_of(st: os.stat_result) -> _Sig | None:
    """The signature of a regular file or symlink; None for anything else."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return None
    return (
        stat.S_ISLNK(st.st_mode),
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        bool(st.st_mode & stat.S_IXUSR) and not stat.S_ISLNK(st.st_mode),
    )


class Materialized:
    """A directory mirroring a session.

    Attributes:
        session: The session mirrored.
        dest: The directory.
    """

    def __init__(self, session: Session, dest: Path) -> None:
        self.session = session
        self.dest = Path(dest)
        self._synced: dict[str, _Sig] = {}

    def _open(self) -> safefs.DirFds:
        self.dest.mkdir(parents=True, exist_ok=True)
        return safefs.DirFds(self.dest, nofollow_root=True)

    def ensure_dir(self, rel_dir: str) -> Path:
        """Make directory ``rel_dir`` (normalized, "" for the root) exist as a real
        directory (a link or file in the way is replaced); returns its path."""
        with self._open() as fds:
            fds.dir(rel_dir, create=True)
        return self.dest / rel_dir if rel_dir else self.dest

    def sync_out(self) -> list[str]:
        """Make the directory match the session; returns the paths written or removed."""
        view = {e.path for e in self.session.list_dir("", True) if e.kind != "directory"}
        overlay = self.session.overlay()
        touched: list[str] = []
        with self._open() as fds:
            for rel in sorted(view):
                st = fds.lstat(rel)
                sig = None if st is None else _sig_of(st)
                if rel in self._synced and rel not in overlay and sig == self._synced[rel]:
                    continue
                data, executable, link = self.session.content(rel)
                assert data is not None
                if (
                    sig is not None
                    and sig == self._synced.get(rel)
                    and self._same(fds, rel, data, link)
                ):
                    continue
                fd, name = fds.parent(rel, create=True)
                assert fd is not None
                if link:
                    safefs.symlink_at(fd, name, data)
                else:
                    safefs.write_file_at(fd, name, data, 0o755 if executable else 0o644)
                fds.forget(rel)  # a directory that stood there is gone
                st = fds.lstat(rel)
                new_sig = None if st is None else _sig_of(st)
                assert new_sig is not None
                self._synced[rel] = new_sig
                touched.append(rel)
            for rel in list(self._synced):
                if rel not in view:
                    fd, name = fds.parent(rel)
                    if fd is not None:
                        st = fds.lstat(rel)
                        if st is not None and not stat.S_ISDIR(st.st_mode):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(name, dir_fd=fd)
                    del self._synced[rel]
                    touched.append(rel)
        return touched

    def _same(self, fds: safefs.DirFds, rel: str, data: bytes, link: bool) -> bool:
        fd, name = fds.parent(rel)
        if fd is None:
            return False
        try:
            if link:
                return safefs.readlink_at(fd, name) == data
            return safefs.read_regular_at(fd, name, len(data)) == data
        except (OSError, PathRefused, WorkspaceFileNotFound, FileTooLarge):
            return False

    def sync_back(self) -> list[str]:
        """Copy what a process changed in the directory into the session.

        Files and symlinks the process created or changed are written to the session
        (a symlink as a symlink), those it removed are deleted there. Special files,
        files over the size limit and paths the session refuses (``.git``...) are not
        taken: they are listed by :meth:`Session.left_out` with the reason.

        Returns:
            The paths written or deleted in the session.
        """
        session = self.session
        policy = session.manager.policy
        limit = session.manager.max_file_size
        found: dict[str, os.stat_result] = {}
        left_out: dict[str, str] = {}
        changed: list[str] = []
        with self._open() as fds:
            deep: list[str] = []

            def too_deep(rel: str) -> None:
                deep.append(rel + "/")
                left_out[rel] = f"nested more than {safefs.MAX_DEPTH} directories deep"

            for item in safefs.walk(
                self.dest, skip_dir=policy.is_protected_name, nofollow_root=True, too_deep=too_deep
            ):
                if safefs.TMP_RE.match(item.name):
                    continue
                if policy.is_protected(item.rel):
                    left_out[item.rel] = "protected path: sessions never hold it"
                    continue
                if _sig_of(item.st) is None:
                    left_out[item.rel] = safefs.special_reason(item.kind)
                    continue
                found[item.rel] = item.st
            # Deletions first: a directory the process replaced by a link (or a file
            # by a directory) must be gone from the session before the new entry lands.
            for rel in sorted(self._synced):
                if rel not in found and not rel.startswith(tuple(deep)):
                    del self._synced[rel]
                    if self._exists_in_session(rel):
                        session.delete(rel)
                        changed.append(rel)
            for rel, st in sorted(found.items()):
                sig = _sig_of(st)
                if sig == self._synced.get(rel):
                    continue
                why = self._take(fds, rel, st, limit)
                if isinstance(why, str):
                    left_out[rel] = why
                    self._synced.pop(rel, None)
                    continue
                assert sig is not None
                self._synced[rel] = sig
                if why:
                    changed.append(rel)
        session.set_left_out(left_out)
        return changed

    def _exists_in_session(self, rel: str) -> bool:
        try:
            entry = self.session.stat(rel)
        except PathRefused:
            return False
        return entry is not None and entry.kind != "directory"

    def _take(self, fds: safefs.DirFds, rel: str, st: os.stat_result, limit: int) -> str | bool:
        """Write ``rel`` from the directory into the session.

        Returns:
            Whether the session changed, or the reason (text) it was not taken.
        """
        fd, name = fds.parent(rel)
        if fd is None:
            return "removed while it was being copied"
        link = stat.S_ISLNK(st.st_mode)
        executable = bool(st.st_mode & stat.S_IXUSR) and not link
        try:
            if link:
                data = safefs.readlink_at(fd, name)
            elif st.st_size > limit:
                return safefs.too_large_reason(st.st_size, limit)
            else:
                data = safefs.read_regular_at(fd, name, limit, shown=rel)
            if self._session_has(rel, data, executable, link):
                return False  # touched, not changed
            if link:
                self.session.write_symlink(rel, data)
            else:
                self.session.write(rel, data, executable)
        except FileTooLarge:
            return safefs.too_large_reason(st.st_size, limit)
        except (PathRefused, WorkspaceFileNotFound) as exc:
            return f"refused: {exc.message}"
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        return True

    def _session_has(self, rel: str, data: bytes, executable: bool, link: bool) -> bool:
        try:
            return self.session.content(rel) == (data, executable, link)
        except (PathRefused, WorkspaceFileNotFound, FileTooLarge):
            return False

    def remove(self) -> None:
        """Delete the directory."""
        shutil.rmtree(self.dest, ignore_errors=True)
