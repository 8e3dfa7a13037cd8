"""Wall-clock deadlines and cancellation for a running guest, through epoch callbacks.

The store's epoch deadline is set a few ticks ahead; each time it is reached,
wasmtime calls :class:`DeadlineGuard` on the guest's own thread, which either traps
the guest (deadline passed, or the task was cancelled) or lets it continue for a few
more ticks. That keeps cancellation responsive (within a few ticks) without touching
the store from another thread. wasmtime-py has no Python API for the callback, so
this module is the one place that calls the C API for it.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

CHECK_TICKS = 5
"""How many epoch ticks a guest runs between checks of its deadline and cancel flag."""

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_CONTINUE = 0


def _no_finalizer(_env: Any) -> None:
    return None


_finalize = _FINALIZER(_no_finalizer)


class DeadlineGuard:
    """Decides, at each epoch check, whether a guest may go on.

    Attributes:
        deadline_at: ``time.monotonic()`` value after which the guest is stopped.
        reason: Why the guest was stopped ("deadline" or "cancelled"), once it was.
    """

    def __init__(self, store: wasmtime.Store, cancelled: threading.Event) -> None:
        self.deadline_at = float("inf")
        self.reason: str | None = None
        self.on_check: Callable[[], None] | None = None
        """Called at each check the guest passes (on its thread): the meters' sampler."""
        self._cancelled = cancelled
        self._callback = _CALLBACK(self._check)
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, _finalize)

    def arm(self, store: wasmtime.Store, deadline_at: float) -> None:
        """Start guarding a call that must end by ``deadline_at``."""
        self.deadline_at = deadline_at
        self.reason = None
        store.set_epoch_deadline(1)

    def _check(self, _ctx: Any, _env: Any, delta: Any, kind: Any) -> int:
        try:
            if self._cancelled.is_set():
                self.reason = "cancelled"
            elif time.monotonic() >= self.deadline_at:
                self.reason = "deadline"
            if self.reason is not None:
                message = ctypes.create_string_buffer(f"brio: {self.reason}".encode())
                error = ffi.wasmtime_error_new(message)
                return int(ctypes.cast(error, ctypes.c_void_p).value or 0)
            delta[0] = CHECK_TICKS
            kind[0] = _CONTINUE
            if self.on_check is not None:
                self.on_check()
            return 0
        except BaseException:  # never unwind through the C frame
            delta[0] = 1
            kind[0] = _CONTINUE
            return 0
