"""Reading and changing the user's working tree without ever following a symlink.

The working tree is the user's, but its content may come from anyone (a cloned
repository can commit symlinks anywhere, also at names briotui uses). So every change
the commit path makes goes through :class:`WorkTree`:

* directories are opened from the project root down, one component at a time, with
  ``os.open(name, O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)``: a parent that is a
  symlink is refused (:class:`~briotui.kernel.errors.PathDenied`), never followed, even
  one that points inside the project, and one swapped in later does not matter since
  the already opened descriptor is used;
* missing directories are made with ``os.mkdir(name, dir_fd=parent)``;
* new content goes to a temporary file created with ``O_CREAT | O_EXCL | O_NOFOLLOW``
  in the target's directory (its name is chosen by the caller and unpredictable), is
  made durable (:meth:`WorkTree.sync_temps`), then renamed over the target with
  ``os.replace(src_dir_fd=, dst_dir_fd=)``;
  a symlink *entry* is created with ``os.symlink(target, tmp, dir_fd=)`` and renamed
  the same way; a rename replaces a link, it never writes through it;
* reads use ``O_NOFOLLOW | O_NONBLOCK``: a symlink reads as its target path (git's
  blob of a mode 120000 entry), a FIFO or device is refused.

Durability is batched: the temp files of a commit are written first and made durable
together by :meth:`WorkTree.sync_temps`, and the directories whose entries changed
are made durable together by :meth:`WorkTree.sync`, each with one ``syncfs`` per
filesystem where the OS reports its errors, else one ``fsync`` per temp file (as it
is written) and per directory (see :func:`~briotui.kernel.vfs.safefs.sync_filesystems`).
The descriptor primitives it shares with the rest of the kernel are in
:mod:`briotui.kernel.vfs.safefs`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from briotui.kernel.errors import PathDenied, PathRefused
from briotui.kernel.vfs.failpoints import failpoint
from briotui.kernel.vfs.safefs import (
    CREATE_FLAGS,
    DIR_FLAGS,
    READ_FLAGS,
    FdCache,
    batch_sync,
    each_parallel,
    split,
    sync_filesystems,
)

DEFAULT_MODE = 0o644
"""The mode of a new file (the executable bits follow the entry)."""


@dataclass(frozen=True)
class Current:
    """What a path is in the working tree now.

    Attributes:
        data: The file's bytes, or a symlink's target path; None if nothing is there.
        executable: A regular file with the owner's executable bit.
        symlink: It is a symlink (``data`` is its target, never followed).
        lstat: Its ``lstat`` (None when nothing is there).
    """

    data: bytes | None
    executable: bool = False
    symlink: bool = False
    lstat: os.stat_result | None = None

    def same(self, data: bytes | None, *, executable: bool, symlink: bool) -> bool:
        """Whether this is exactly ``data`` of that kind (and executable bit)."""
        if self.data != data:
            return False
        if data is None:
            return True
        return self.symlink == symlink and (symlink or self.executable == executable)

    def content_is(self, data: bytes | None, *, symlink: bool) -> bool:
        """Whether this has the bytes ``data`` as that kind (ignoring the mode)."""
        return self.data == data and (data is None or self.symlink == symlink)


class WorkTree(FdCache):
    """Directory descriptors under one project root, opened without following links.

    Use as a context manager; every method takes a normalized relative path.
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self._dirty: set[str] = set()
        self._unsynced: set[str] = set()
        """Directories holding temp files written but not made durable yet."""

    # -- directories ----------------------------------------------------------------

    def dir_fd(self, rel_dir: str, *, create: bool = False) -> int | None:
        """The descriptor of directory ``rel_dir`` ("" is the root).

        Args:
            rel_dir: The directory, relative to the root.
            create: Make missing directories (and remember their parents for
                :meth:`sync`).

        Returns:
            The descriptor, or None when it does not exist and ``create`` is false.

        Raises:
            PathDenied: A component is a symlink.
            PathRefused: A component is not a directory.
        """
        fd = self._fds.get(rel_dir)
        if fd is not None:
            return fd
        if not rel_dir:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._fds[""] = fd
            return fd
        parent, name = split(rel_dir)
        pfd = self.dir_fd(parent, create=create)
        if pfd is None:
            return None
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            if not create:
                return None
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=pfd)
                self._dirty.add(parent)
            fd = self._open_dir(pfd, rel_dir, name)
        except OSError:
            raise self._not_a_directory(pfd, rel_dir, name) from None
        self._fds[rel_dir] = fd
        return fd

    def _open_dir(self, pfd: int, rel_dir: str, name: str) -> int:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=pfd)
        except OSError:
            raise self._not_a_directory(pfd, rel_dir, name) from None

    @staticmethod
    def _not_a_directory(pfd: int, rel_dir: str, name: str) -> PathRefused:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except OSError as exc:
            return PathRefused(f"{rel_dir!r} cannot be opened in your working tree: {exc}.")
        if stat.S_ISLNK(st.st_mode):
            return PathDenied(
                f"{rel_dir!r} is a symlink in your working tree; briotui never writes "
                "through links. Replace it with a real directory, or leave the files "
                "under it out of the session."
            )
        return PathRefused(
            f"{rel_dir!r} is a file in your working tree, not a directory, so nothing "
            "can be written under it. Move it away first."
        )

    # -- reading --------------------------------------------------------------------

    def read(self, rel: str) -> Current:
        """What ``rel`` is now (see :class:`Current`).

        Raises:
            PathDenied: A parent is a symlink, or ``rel`` is a directory or a special
                file (FIFO, device, socket).
            PathRefused: A parent is not a directory.
        """
        parent, name = split(rel)
        dfd = self.dir_fd(parent)
        if dfd is None:
            return Current(None)
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return Current(None)
        if stat.S_ISLNK(st.st_mode):
            return Current(os.fsencode(os.readlink(name, dir_fd=dfd)), symlink=True, lstat=st)
        if stat.S_ISDIR(st.st_mode):
            raise PathDenied(f"{rel!r} is a directory in your working tree, not a file.")
        if not stat.S_ISREG(st.st_mode):
            raise PathDenied(f"{rel!r} is not a regular file in your working tree.")
        fd = os.open(name, READ_FLAGS, dir_fd=dfd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PathDenied(f"{rel!r} is not a regular file in your working tree.")
            chunks: list[bytes] = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return Current(b"".join(chunks), bool(st.st_mode & stat.S_IXUSR), lstat=st)

    def _mode_for(self, dfd: int, name: str, executable: bool) -> int:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else DEFAULT_MODE
        except FileNotFoundError:
            mode = DEFAULT_MODE
        if executable:
            return mode | (mode & 0o444) >> 2 | stat.S_IXUSR
        return mode & ~0o111

    # -- writing --------------------------------------------------------------------

    def create_temp(
        self, rel: str, tmp: str, data: bytes, *, executable: bool, symlink: bool
    ) -> None:
        """Create ``tmp`` next to ``rel`` holding ``data`` (a file, or a symlink whose
        target is ``data``); missing parent directories are made. It is durable once
        :meth:`sync_temps` returns.

        Raises:
            PathDenied: A parent is a symlink; ``tmp`` already exists.
            PathRefused: A parent is not a directory.
            OSError: Writing failed (the temp file is removed).
        """
        parent, name = split(rel)
        dfd = self.dir_fd(parent, create=True)
        assert dfd is not None
        if symlink:
            os.symlink(os.fsdecode(data), tmp, dir_fd=dfd)
            self._unsynced.add(parent)
            return
        mode = self._mode_for(dfd, name, executable)
        fd = os.open(tmp, CREATE_FLAGS, 0o600, dir_fd=dfd)
        try:
            half = len(data) // 2
            self._write_all(fd, memoryview(data)[:half])
            failpoint("tmp-partial")
            self._write_all(fd, memoryview(data)[half:])
            os.fchmod(fd, mode)
            if not batch_sync():
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        os.close(fd)
        self._unsynced.add(parent)

    def sync_temps(self) -> None:
        """Make every temp file created since the last call durable (its bytes and its
        name): one ``syncfs`` per filesystem, or nothing left to do where each was
        fsynced as it was written (a symlink's target lives in its inode and directory
        entry, made durable with its directory by :meth:`sync` after the rename)."""
        dirs, self._unsynced = self._unsynced, set()
        if batch_sync() and dirs:
            sync_filesystems(self._fds[d] for d in sorted(dirs) if d in self._fds)

    @staticmethod
    def _write_all(fd: int, view: memoryview) -> None:
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def rename(self, tmp: str, rel: str) -> None:
        """Rename the temp ``tmp`` (next to ``rel``) over ``rel``."""
        parent, name = split(rel)
        dfd = self.dir_fd(parent)
        if dfd is None:
            raise PathRefused(f"The directory of {rel!r} disappeared while committing.")
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        self._dirty.add(parent)
        failpoint("renamed")

    def rename_many(self, pairs: list[tuple[str, str]]) -> list[BaseException | None]:
        """Rename every temp over its target (``(tmp, rel)`` pairs, as :meth:`rename`),
        several at once (:func:`~briotui.kernel.vfs.safefs.each_parallel`); returns
        each rename's exception, or None, in order. Every pair is tried."""
        found: list[tuple[int, str, str]] = []
        errors: dict[int, BaseException] = {}
        for i, (tmp, rel) in enumerate(pairs):
            parent, name = split(rel)
            try:
                dfd = self.dir_fd(parent)
            except (PathRefused, OSError) as exc:
                errors[i] = exc
                continue
            if dfd is None:
                errors[i] = PathRefused(f"The directory of {rel!r} disappeared while committing.")
                continue
            self._dirty.add(parent)
            found.append((dfd, tmp, name))

        def one(item: tuple[int, str, str]) -> None:
            dfd, tmp, name = item
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            failpoint("renamed")

        results = iter(each_parallel(one, found))
        return [errors[i] if i in errors else next(results) for i in range(len(pairs))]

    def unlink(self, rel: str) -> None:
        """Remove the file or symlink ``rel`` (a link is removed, not its target)."""
        parent, name = split(rel)
        dfd = self.dir_fd(parent)
        if dfd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dfd)
            self._dirty.add(parent)
        failpoint("file-deleted")

    def remove_temp(self, rel: str, tmp: str, *, only_regular: bool = False) -> None:
        """Remove the temp ``tmp`` next to ``rel`` if it is there.

        Args:
            rel: The file the temp was for.
            tmp: The temp's name.
            only_regular: Leave it unless it is a regular file.
        """
        parent, _ = split(rel)
        try:
            dfd = self.dir_fd(parent)
        except PathRefused:
            return
        if dfd is None:
            return
        try:
            st = os.stat(tmp, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if only_regular and not stat.S_ISREG(st.st_mode):
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        self._dirty.add(parent)

    def sync(self) -> None:
        """Make the entries of every directory that changed durable: one ``syncfs`` per
        filesystem, or one ``fsync`` per directory where that is not available."""
        fds = [
            fd
            for rel_dir in sorted(self._dirty, key=len, reverse=True)
            if (fd := self._fds.get(rel_dir)) is not None
        ]
        self._dirty.clear()
        if batch_sync():
            if fds:
                sync_filesystems(fds)
            return
        for fd in fds:
            os.fsync(fd)
