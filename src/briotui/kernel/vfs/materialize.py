"""A session as a real directory, for processes that need files (test runners, builds).

:class:`Materialized` copies the session's view into a directory (copies, never hard
links: a process writing through a link would reach the user's files) and keeps the
two in sync: :meth:`Materialized.sync_out` pushes session changes to the directory,
:meth:`Materialized.sync_back` pulls what the process changed into the session, through
the same path policy as any agent write.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from briotui.kernel.errors import PathRefused

if TYPE_CHECKING:
    from briotui.kernel.vfs.session import Session

_Sig = tuple[int, int, bool]


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

    def _sig(self, rel: str) -> _Sig | None:
        try:
            st = os.lstat(self.dest / rel)
        except FileNotFoundError:
            return None
        return (st.st_size, st.st_mtime_ns, bool(st.st_mode & stat.S_IXUSR))

    def _write(self, rel: str, data: bytes, executable: bool) -> None:
        target = self.dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.brio-mat.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o755 if executable else 0o644)
        os.replace(tmp, target)

    def sync_out(self) -> list[str]:
        """Make the directory match the session; returns the paths written or removed."""
        self.dest.mkdir(parents=True, exist_ok=True)
        view = {e.path: e for e in self.session.list_dir("", True) if e.kind != "directory"}
        touched: list[str] = []
        for rel, entry in view.items():
            in_overlay = rel in self.session.overlay()
            if rel in self._synced and not in_overlay and self._sig(rel) == self._synced[rel]:
                continue
            data = self.session.read(rel)
            target = self.dest / rel
            if (
                target.is_file()
                and self._sig(rel) == self._synced.get(rel)
                and target.read_bytes() == data
            ):
                continue
            self._write(rel, data, entry.executable)
            sig = self._sig(rel)
            assert sig is not None
            self._synced[rel] = sig
            touched.append(rel)
        for rel in list(self._synced):
            if rel not in view:
                (self.dest / rel).unlink(missing_ok=True)
                del self._synced[rel]
                touched.append(rel)
        return touched

    def sync_back(self) -> list[str]:
        """Copy what a process changed in the directory into the session.

        Returns:
            The paths written or deleted in the session. Paths the policy refuses
            (``.git``, links out) are skipped.
        """
        seen: set[str] = set()
        changed: list[str] = []
        policy = self.session.manager.policy
        for dirpath, dirnames, filenames in os.walk(self.dest):
            dirnames[:] = [d for d in dirnames if not policy.is_protected_name(d)]
            for name in filenames:
                full = Path(dirpath) / name
                rel = full.relative_to(self.dest).as_posix()
                if name.endswith(".brio-mat.tmp") or full.is_symlink():
                    continue
                seen.add(rel)
                sig = self._sig(rel)
                if sig == self._synced.get(rel):
                    continue
                try:
                    self.session.write(rel, full.read_bytes(), bool(sig and sig[2]))
                except PathRefused:
                    continue
                assert sig is not None
                self._synced[rel] = sig
                changed.append(rel)
        for rel in list(self._synced):
            if rel not in seen:
                del self._synced[rel]
                if self.session.stat(rel) is not None:
                    self.session.delete(rel)
                    changed.append(rel)
        return changed

    def remove(self) -> None:
        """Delete the directory."""
        shutil.rmtree(self.dest, ignore_errors=True)
