"""File operations that never follow a symlink and never open a special file.

Directories that an untrusted process can change (a session's work directory, where
test commands run) or that the user controls (the project tree) may hold symlinks
planted to redirect the kernel, and FIFOs or devices that block or misbehave when
opened. Every read and write the kernel makes there goes through this module:

* paths are walked component by component from a trusted root with directory fds
  opened ``O_DIRECTORY | O_NOFOLLOW``: a symlinked parent is never followed;
* a file is read only if ``lstat`` says it is a regular file, then opened
  ``O_NOFOLLOW | O_NONBLOCK`` and confirmed regular with ``fstat`` before reading,
  never more than the size limit;
* a file is written to a fresh unpredictable temp name created
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` in the directory fd, ``fchmod``-ed on its fd and
  renamed over the target with the same directory fd (a symlink at the target is
  replaced, never written through); removals use the directory fd too.

A symlink is content (its target bytes), as in git: :func:`readlink_at` and
:func:`symlink_at` handle it without resolving it.

Durability of a batch: :func:`sync_filesystems` makes everything written to the
filesystems holding some descriptors durable with one ``syncfs(2)`` per filesystem,
instead of one ``fsync`` per file and directory (each ``fsync`` waits for its own
journal commit: 100 files cost 100 commits). ``syncfs`` writes back and waits for
every dirty page and inode of that filesystem, which includes the files and directory
entries of the batch, so "all of them were fsynced" holds after it just as after the
``fsync`` calls. It is used only where it reports write-back errors (Linux 5.8 and
later, see ``syncfs(2)``); elsewhere :func:`batch_sync` is false and callers fsync
each file and directory.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from briotui.kernel.errors import FileTooLarge, PathDenied, WorkspaceFileNotFound

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_T = TypeVar("_T")

MAX_DEPTH = 128
"""Directories nested deeper than this are not entered by :func:`walk` (reported)."""
_MAX_CACHED = 64

TMP_RE = re.compile(r"^\.brio-[0-9a-f]{16}\.tmp$")
"""The names of this module's temp files (skipped when scanning a directory)."""


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` where it reports write-back errors (Linux >= 5.8), else None.

    Looked up on first use: ctypes is not imported with the kernel.
    """
    uname = os.uname()
    if uname.sysname != "Linux":
        return None
    try:
        major, minor = (int(x) for x in uname.release.split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def call(fd: int) -> int:
        if fn(fd) == 0:
            return 0
        return ctypes.get_errno() or 5  # EIO if libc set none

    return call


def batch_sync() -> bool:
    """Whether :func:`sync_filesystems` can make a batch durable at once; when false,
    callers fsync every file and directory themselves."""
    return _syncfs() is not None


def sync_filesystems(fds: Iterable[int]) -> None:
    """Make everything written to the filesystems holding ``fds`` durable: one
    ``syncfs`` per filesystem (see the module docstring). Needs :func:`batch_sync`.

    Raises:
        OSError: A write-back failed (the data may not be on disk).
    """
    syncfs = _syncfs()
    assert syncfs is not None
    done: set[int] = set()
    for fd in fds:
        dev = os.fstat(fd).st_dev
        if dev in done:
            continue
        err = syncfs(fd)
        if err:
            raise OSError(err, os.strerror(err))
        done.add(dev)


PARALLEL_IO = 8
"""How many renames :func:`each_parallel` runs at once."""


def each_parallel(fn: Callable[[_T], None], items: list[_T]) -> list[BaseException | None]:
    """Call ``fn`` on every item, up to :data:`PARALLEL_IO` at a time; returns each
    call's exception, or None, in the order of ``items``.

    For independent file system calls that mostly wait on the disk (renames after a
    flush wait for the journal one by one): their waits overlap. The calls must not
    depend on each other's order.
    """
    if len(items) < 4:
        out: list[BaseException | None] = []
        for item in items:
            try:
                fn(item)
            except Exception as exc:
                out.append(exc)
            else:
                out.append(None)
        return out

    def call(item: _T) -> BaseException | None:
        try:
            fn(item)
        except Exception as exc:
            return exc
        return None

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(PARALLEL_IO, len(items))) as pool:
        return list(pool.map(call, items))


def tmp_name() -> str:
    """A fresh, unpredictable temp file name."""
    return f".brio-{secrets.token_hex(8)}.tmp"


def kind_of(mode: int) -> str:
    """A short name for the file type in ``mode`` ("file", "symlink", "fifo"...)."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def special_reason(kind: str) -> str:
    """Why a special file (FIFO, device, socket) was left out."""
    return f"{kind}: special files are never opened or copied"


def too_large_reason(size: int, limit: int) -> str:
    """Why a file over the size limit was left out."""
    return f"too large: {size} bytes, the limit is {limit} bytes"


def split(rel: str) -> tuple[str, str]:
    """``("a/b", "c")`` for ``"a/b/c"``; ``("", "c")`` for ``"c"``."""
    head, _, tail = rel.rpartition("/")
    return head, tail


class FdCache:
    """Directory fds cached by their relative path ("" is the root), all closed on exit.

    The base of :class:`DirFds` and of the working tree's
    :class:`~briotui.kernel.vfs.worktree.WorkTree`, which open their directories
    differently (what a missing directory or a symlink on the way means) but own
    their fds the same way. Use as a context manager.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every fd."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


class DirFds(FdCache):
    """Directory fds under one root, opened without following links, cached for a pass.

    Use as a context manager; every fd is closed on exit.

    Attributes:
        root: The trusted root directory.
    """

    def __init__(self, root: Path, *, nofollow_root: bool = False) -> None:
        super().__init__()
        self.root = Path(root)
        flags = DIR_FLAGS if nofollow_root else DIR_FLAGS & ~os.O_NOFOLLOW
        self._fds[""] = os.open(self.root, flags)

    def forget(self, rel_dir: str) -> None:
        """Drop cached fds of ``rel_dir`` and below (after it was removed or replaced)."""
        prefix = rel_dir + "/"
        for key in [k for k in self._fds if k and (k == rel_dir or k.startswith(prefix))]:
            with contextlib.suppress(OSError):
                os.close(self._fds.pop(key))

    def dir(self, rel_dir: str, *, create: bool = False) -> int | None:
        """The fd of directory ``rel_dir`` ("" is the root), or None if it is missing.

        Args:
            rel_dir: A normalized relative directory path.
            create: Make missing directories; a symlink or other non-directory in
                the way is removed first (the caller wants a directory there).

        Returns:
            The fd (owned by this object, valid until the next call), or None when it
            does not exist as a real directory (a symlink on the way counts as not
            existing) and ``create`` is false.
        """
        fd = self._fds.get(rel_dir)
        if fd is not None:
            return fd
        self._trim(rel_dir)
        parts = rel_dir.split("/")
        # the deepest cached ancestor, then one component at a time (no recursion)
        i = len(parts) - 1
        while i > 0 and "/".join(parts[:i]) not in self._fds:
            i -= 1
        pfd = self._fds["/".join(parts[:i])]
        for j in range(i, len(parts)):
            child = self._open_child(pfd, parts[j], create)
            if child is None:
                return None
            pfd = self._fds["/".join(parts[: j + 1])] = child
        return pfd

    def _open_child(self, pfd: int, name: str, create: bool) -> int | None:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(name, 0o755, dir_fd=pfd)
            return os.open(name, DIR_FLAGS, dir_fd=pfd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if not create:
                return None  # a symlink or a file where a directory is expected
            remove_at(pfd, name)
            os.mkdir(name, 0o755, dir_fd=pfd)
            return os.open(name, DIR_FLAGS, dir_fd=pfd)

    def _trim(self, rel_dir: str) -> None:
        """Keep the cache small: close fds that are not ancestors of ``rel_dir``."""
        if len(self._fds) < _MAX_CACHED:
            return
        for key in list(self._fds):
            if key and not (rel_dir == key or rel_dir.startswith(key + "/")):
                with contextlib.suppress(OSError):
                    os.close(self._fds.pop(key))

    def parent(self, rel: str, *, create: bool = False) -> tuple[int | None, str]:
        """The fd of ``rel``'s directory (None if missing) and its last component."""
        head, name = split(rel)
        return self.dir(head, create=create), name

    def lstat(self, rel: str) -> os.stat_result | None:
        """``lstat`` of ``rel``, or None if it (or a real directory on its way) is missing."""
        fd, name = self.parent(rel)
        if fd is None:
            return None
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None


def read_regular_at(dir_fd: int, name: str, max_size: int, *, shown: str = "") -> bytes:
    """The bytes of regular file ``name`` in ``dir_fd``, never following a link.

    Raises:
        WorkspaceFileNotFound: It does not exist.
        PathDenied: It is not a regular file (a symlink, FIFO, device, socket...).
        FileTooLarge: It is over ``max_size`` bytes (nothing more is read).
    """
    shown = shown or name
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        raise WorkspaceFileNotFound(f"{shown!r} does not exist.") from None
    if not stat.S_ISREG(st.st_mode):
        raise PathDenied(f"{shown!r} is a {kind_of(st.st_mode)}, not a regular file.")
    if st.st_size > max_size:
        raise FileTooLarge(f"{shown!r} is {st.st_size} bytes; the limit is {max_size} bytes.")
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise WorkspaceFileNotFound(f"{shown!r} does not exist.") from None
    except OSError as exc:  # ELOOP: replaced by a symlink since the lstat
        raise PathDenied(f"{shown!r} changed into something that is not a file.") from exc
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise PathDenied(f"{shown!r} is a {kind_of(fst.st_mode)}, not a regular file.")
        if fst.st_size > max_size:
            raise FileTooLarge(f"{shown!r} is {fst.st_size} bytes; the limit is {max_size} bytes.")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_size + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_size:
                raise FileTooLarge(f"{shown!r} grew over the limit of {max_size} bytes.")
        return b"".join(chunks)
    finally:
        os.close(fd)


def readlink_at(dir_fd: int, name: str) -> bytes:
    """The target bytes of symlink ``name`` in ``dir_fd`` (never resolved)."""
    return os.readlink(os.fsencode(name), dir_fd=dir_fd)


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _replace(dir_fd: int, tmp: str, name: str) -> None:
    """Rename ``tmp`` over ``name``; a directory in the way is removed first."""
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        shutil.rmtree(name, dir_fd=dir_fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def write_file_at(dir_fd: int, name: str, data: bytes, mode: int, *, durable: bool = False) -> None:
    """Create or replace ``name`` in ``dir_fd`` with ``data`` and permission ``mode``.

    The bytes go to a fresh temp file (``O_EXCL | O_NOFOLLOW``), then a rename replaces
    whatever was at ``name`` (a symlink there is replaced, not followed).
    """
    tmp = tmp_name()
    fd = os.open(tmp, CREATE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        _write_fd(fd, data)
        os.fchmod(fd, mode)
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    _replace(dir_fd, tmp, name)


def symlink_at(dir_fd: int, name: str, target: bytes) -> None:
    """Create or replace ``name`` in ``dir_fd`` with a symlink to ``target`` (not resolved)."""
    tmp = tmp_name()
    os.symlink(target, os.fsencode(tmp), dir_fd=dir_fd)
    _replace(dir_fd, tmp, name)


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` from ``dir_fd`` (a file, a link, or a whole directory); missing is fine."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.EPERM):
            raise
        shutil.rmtree(name, dir_fd=dir_fd)


@dataclass(frozen=True)
class Found:
    """One non-directory entry met by :func:`walk`.

    Attributes:
        rel: Its relative path.
        st: Its ``lstat``.
        dir_fd: The fd of its directory (valid during the walk only).
        name: Its name in that directory.
    """

    rel: str
    st: os.stat_result
    dir_fd: int
    name: str

    @property
    def kind(self) -> str:
        """ "file", "symlink", "fifo"..."""
        return kind_of(self.st.st_mode)


def walk(
    root: Path,
    *,
    skip_dir: Callable[[str], bool],
    nofollow_root: bool = False,
    too_deep: Callable[[str], None] | None = None,
) -> Iterator[Found]:
    """Every non-directory entry under ``root``, depth first; never follows a symlink.

    Args:
        root: The trusted root directory.
        skip_dir: Called with a directory's name; true means do not enter it.
        nofollow_root: Refuse a root that is itself a symlink.
        too_deep: Called with each directory not entered because it is nested more
            than :data:`MAX_DEPTH` levels deep.
    """
    flags = DIR_FLAGS if nofollow_root else DIR_FLAGS & ~os.O_NOFOLLOW
    fd = os.open(root, flags)
    try:
        yield from _walk_fd(fd, "", skip_dir, too_deep, 0)
    finally:
        os.close(fd)


def _walk_fd(
    fd: int,
    prefix: str,
    skip_dir: Callable[[str], bool],
    too_deep: Callable[[str], None] | None,
    depth: int,
) -> Iterator[Found]:
    with os.scandir(fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        rel = prefix + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if skip_dir(entry.name):
                continue
            if depth >= MAX_DEPTH:
                if too_deep is not None:
                    too_deep(rel)
                continue
            try:
                sub = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # replaced since the listing
            try:
                yield from _walk_fd(sub, rel + "/", skip_dir, too_deep, depth + 1)
            finally:
                os.close(sub)
        else:
            yield Found(rel, st, fd, entry.name)
