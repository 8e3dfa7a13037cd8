"""A guest's stdout and stderr, carried to its bounded log through pipes, never callbacks.

wasmtime's WASI calls a *custom* output (``WasiConfig.stdout_custom``) from a tokio
runtime worker thread, a thread Python did not start, and drops it there too. A Python
callback entered on such a thread while the interpreter shuts down is ended by
CPython with ``pthread_exit``; the forced unwind meets a Rust frame that cannot unwind
and the process aborts ("panic in a function that cannot unwind", exit 134). A guest
that trapped mid-write made that likely at every exit.

So a guest writes into a pipe instead: wasmtime opens the pipe's write end as a plain
file (``/dev/fd/N``) and writes to it synchronously on the instance's own thread, with
no Python on the way. The read end is watched by the event loop, which feeds whole lines
into the instance's :class:`~briotui.kernel.runtime.context.BoundedLog` as they come
(so the UI sees output live); the instance's thread drains what is left before it reads
the log's tail (a trap's last words). A full pipe makes the guest's write wait, so a
guest printing in a loop is held back rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable

import wasmtime

_CHUNK = 1 << 16


class _Stream:
    """One pipe: the guest writes to ``path``; the loop reads ``fd``."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        self.fd: int | None = read
        self.write_fd: int | None = write
        self.path = f"/dev/fd/{write}"
        self.sink = sink


class GuestOutput:
    """The pipes that carry one instance's stdout and stderr to its log.

    Created on the event loop (its read ends are registered there); attached to the
    instance's WASI config on the instance's thread; closed when the instance ends.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stdout: Callable[[bytes], None],
        stderr: Callable[[bytes], None],
    ) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._streams = (_Stream(stdout), _Stream(stderr))
        self._closed = False
        for stream in self._streams:
            fd = stream.fd
            assert fd is not None
            loop.add_reader(fd, self._readable, stream)

    def _watch(self, stream: _Stream) -> None:
        """Have the loop read ``stream`` (on the loop)."""
        with self._lock:
            fd = stream.fd
        if fd is not None and not self._closed:
            self._loop.add_reader(fd, self._readable, stream)

    def _renew(self) -> None:
        """New pipes for a store made again on the instance's thread: the write ends of
        the old ones were closed at their attach, and ``/dev/fd/N`` of a closed N may by
        now be any file this process opened since (a database, say)."""
        old = self._streams
        self.drain()  # what the old store wrote stays in the log
        fresh = (_Stream(old[0].sink), _Stream(old[1].sink))
        with self._lock:
            self._streams = fresh
        try:
            for stream in old:
                self._loop.call_soon_threadsafe(self._forget, stream)
            for stream in fresh:
                self._loop.call_soon_threadsafe(self._watch, stream)
        except RuntimeError:  # the loop is closed: drain() reads them, close() closes them
            for stream in old:
                self._forget(stream)

    def attach(self, wasi: wasmtime.WasiConfig) -> None:
        """Point ``wasi``'s stdout and stderr at the pipes; wasmtime opens its own ends.

        Where ``/dev/fd`` is missing, the output falls back to wasmtime's callbacks.
        Attached again (a store made again), it first makes new pipes.
        """
        if any(stream.write_fd is None for stream in self._streams):
            self._renew()
        out, err = self._streams
        try:
            wasi.stdout_file = out.path
            wasi.stderr_file = err.path
        except wasmtime.WasmtimeError:  # no /dev/fd here: callbacks, safe until exit
            wasi.stdout_custom = out.sink
            wasi.stderr_custom = err.sink
        for stream in self._streams:  # wasmtime holds its own descriptors now
            if stream.write_fd is not None:
                os.close(stream.write_fd)
                stream.write_fd = None

    def _read(self, stream: _Stream) -> bool:
        """Read what the pipe holds into its sink (lock held); False at end of file."""
        while stream.fd is not None:
            try:
                data = os.read(stream.fd, _CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            stream.sink(data)
        return False

    def _readable(self, stream: _Stream) -> None:
        """The loop's reader: feed the log; stop watching at end of file."""
        with self._lock:
            open_ = self._read(stream)
        if not open_:
            self._forget(stream)

    def drain(self) -> None:
        """Feed everything the guest has written so far (from any thread)."""
        with self._lock:
            for stream in self._streams:
                self._read(stream)

    def _forget(self, stream: _Stream) -> None:
        """Stop watching and close one pipe (on the loop, or anywhere once it is closed)."""
        with self._lock:
            fd, stream.fd = stream.fd, None
            write_fd, stream.write_fd = stream.write_fd, None
        if fd is not None:
            with contextlib.suppress(Exception):  # the loop is already closed
                self._loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        if write_fd is not None:
            with contextlib.suppress(OSError):
                os.close(write_fd)

    def _close_all(self) -> None:
        for stream in self._streams:
            self._forget(stream)

    def close(self) -> None:
        """Drain and close the pipes (from any thread; done on the loop when it runs)."""
        if self._closed:
            return
        self._closed = True
        self.drain()
        try:
            self._loop.call_soon_threadsafe(self._close_all)
        except RuntimeError:  # the loop is closed: no reader is registered any more
            self._close_all()
