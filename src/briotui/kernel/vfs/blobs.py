"""Content-addressed file contents for sessions and the commit journal.

A blob is stored once under ``.brio/sessions/blobs/ab/cdef...`` named by its SHA-256,
written to a temp file, fsynced and renamed into place: a blob that exists is whole.
Sessions and forks share blobs, which is what makes a fork copy-free.

:meth:`BlobStore.put_many` stores a batch (a commit's old and new bytes) with the same
guarantee and two flushes in all: every temp file is written, the filesystem is synced
once (every temp is whole on disk), every temp is renamed, and it is synced once more
(every name is on disk) before it returns; see
:func:`~briotui.kernel.vfs.safefs.sync_filesystems`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from briotui.kernel.errors import StoreError
from briotui.kernel.vfs import safefs
from briotui.kernel.vfs.failpoints import failpoint


def blob_id(data: bytes) -> str:
    """The id (hex SHA-256) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or a new entry in it is durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Immutable blobs under one directory.

    Attributes:
        root: The blobs directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, bid: str) -> Path:
        """Where blob ``bid`` lives."""
        return self.root / bid[:2] / bid[2:]

    def put(self, data: bytes, *, durable: bool = True) -> str:
        """Store ``data``; returns its id. Idempotent.

        Args:
            data: The bytes.
            durable: fsync the file and its directory before returning.
        """
        bid = blob_id(data)
        target = self.path_of(bid)
        if target.exists():
            return bid
        target.parent.mkdir(parents=True, exist_ok=True)
        # A fresh name, created exclusively and never through a link.
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        failpoint("blob-written")
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
        return bid

    def has(self, bid: str) -> bool:
        """Whether blob ``bid`` is stored (a stored blob is whole: see :meth:`put`)."""
        return self.path_of(bid).exists()

    def put_many(self, datas: list[bytes], ids: list[str] | None = None) -> list[str]:
        """Store every one of ``datas`` durably, as :meth:`put` does each; returns their
        ids, in order. Two filesystem flushes in all instead of two fsyncs per blob
        (one per blob and one per directory) where the OS allows it, none when every
        blob is already stored.

        Args:
            datas: The bytes.
            ids: Their ids when the caller computed them already (not hashed again).
        """
        if ids is None:
            ids = [blob_id(d) for d in datas]
        if not safefs.batch_sync():
            for data in datas:
                self.put(data)
            return ids
        todo: dict[str, bytes] = {}
        for bid, data in zip(ids, datas, strict=True):
            if bid not in todo and not self.path_of(bid).exists():
                todo[bid] = data
        if not todo:
            return ids
        temps: list[tuple[Path, Path]] = []
        for bid in todo:
            target = self.path_of(bid)
            target.parent.mkdir(parents=True, exist_ok=True)
            temps.append((target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp"), target))

        def write(item: tuple[tuple[Path, Path], bytes]) -> None:
            (tmp, _target), data = item
            # A fresh name, created exclusively and never through a link.
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)

        try:
            failed = [
                e
                for e in safefs.each_parallel(write, list(zip(temps, todo.values(), strict=True)))
                if e is not None
            ]
            if failed:
                raise failed[0]
            self._sync()  # every temp is whole on disk before any is renamed

            def rename(pair: tuple[Path, Path]) -> None:
                failpoint("blob-written")
                os.replace(*pair)

            failed = [e for e in safefs.each_parallel(rename, temps) if e is not None]
            if failed:
                raise failed[0]
        except BaseException:
            for tmp, _target in temps:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            raise
        self._sync()  # every new name is on disk
        return ids

    def _sync(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            safefs.sync_filesystems([fd])
        finally:
            os.close(fd)

    def get(self, bid: str) -> bytes:
        """The bytes of blob ``bid``.

        Raises:
            StoreError: The blob is missing or does not match its id.
        """
        try:
            data = self.path_of(bid).read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"Session content {bid[:12]} is missing from {self.root}. The session "
                "data was damaged; discard the session and run the task again."
            ) from None
        if blob_id(data) != bid:
            raise StoreError(
                f"Session content {bid[:12]} in {self.root} is damaged (hash mismatch). "
                "Discard the session and run the task again."
            )
        return data
