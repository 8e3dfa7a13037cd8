"""Measuring how large one agent instance's linear memories are, on Linux.

wasmtime-py does not expose a component's memories (a component instance exports no
memory object, and the store limiter has no Python callback), so the runtime finds
them the way the operating system sees them: each 32-bit linear memory is one
multi-GiB address-space reservation made when the instance is created (a guard, the
memory, a guard). The memory's current size is mapped read-write from its *base*
upwards, the rest of the reservation is inaccessible; growing the memory makes more of
it accessible, and the base never moves. An instance's memories are identified by
their bases, and a memory's size is the extent of the writable mappings from its base.

Both steps are O(1) in the number of live instances on Linux 6.11 and later, which
answer "which mapping covers this address" with the ``PROCMAP_QUERY`` ioctl on
``/proc/self/maps``:

- Finding the memories of a new instance (:func:`instantiate`, serialized by
  :data:`INSTANTIATE_LOCK`): just before instantiating, a reservation of the same size
  is mapped and unmapped again, which shows where the kernel places the next one (the
  highest gap that fits). After instantiating, the mapping at that place is checked to
  be a fresh reservation and claimed. If it is not (another thread mapped something in
  between, a component with several memories), the whole maps file is scanned instead
  and every reservation no live instance owns is claimed.
- Measuring (:func:`linear_bytes`): a few queries per memory, from its base up.

An instance's memories are dropped under the same lock (:func:`drop`), so a new
instance can never be given a dying one's memory, nor a live one's. Elsewhere than
Linux nothing is found and the meters read 0; on older Linux kernels each measure reads
the maps file (O(live instances)).
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

T = TypeVar("T")

INSTANTIATE_LOCK = threading.Lock()
"""Serializes instantiation and teardown so new reservations belong to one instance."""

RESERVATION_BYTES = (1 << 32) + 2 * (32 << 20)
"""One linear memory's reservation with wasmtime's defaults: 32 MiB guard before,
4 GiB, 32 MiB guard after, mapped at once (a wrong guess only costs a scan)."""

_MIN_TAIL = 1 << 30
"""An inaccessible mapping this large right above writable memory is a reservation."""

_MAPS = Path("/proc/self/maps")
_READ, _WRITE = 0x1, 0x2
_COVERING_OR_NEXT = 0x10


class Vma(NamedTuple):
    """One mapping: [start, end) and its protection bits (read 1, write 2, exec 4)."""

    start: int
    end: int
    prot: int


class _Query(ctypes.Structure):
    """``struct procmap_query`` (linux/fs.h)."""

    _fields_ = [
        ("size", ctypes.c_uint64),
        ("query_flags", ctypes.c_uint64),
        ("query_addr", ctypes.c_uint64),
        ("vma_start", ctypes.c_uint64),
        ("vma_end", ctypes.c_uint64),
        ("vma_flags", ctypes.c_uint64),
        ("vma_page_size", ctypes.c_uint64),
        ("vma_offset", ctypes.c_uint64),
        ("inode", ctypes.c_uint64),
        ("dev_major", ctypes.c_uint32),
        ("dev_minor", ctypes.c_uint32),
        ("vma_name_size", ctypes.c_uint32),
        ("build_id_size", ctypes.c_uint32),
        ("vma_name_addr", ctypes.c_uint64),
        ("build_id_addr", ctypes.c_uint64),
    ]


_PROCMAP_QUERY = (3 << 30) | (ctypes.sizeof(_Query) << 16) | (ord("f") << 8) | 17


class _Procmap:
    """``PROCMAP_QUERY`` on this process's maps file, reopened after a fork."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
        self._libc.mmap.restype = ctypes.c_void_p
        self._libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        self._libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._pid = -1
        self._fd = -1
        self._local = threading.local()

    def _handle(self) -> int:
        if self._pid != os.getpid():
            self._fd = os.open(_MAPS, os.O_RDONLY | os.O_CLOEXEC)
            self._pid = os.getpid()
        return self._fd

    def query(self, addr: int, *, next_ok: bool = False) -> Vma | None:
        """The mapping covering ``addr`` (or the next one above), or None."""
        q: _Query | None = getattr(self._local, "q", None)
        if q is None:
            q = self._local.q = _Query()
        q.size = ctypes.sizeof(_Query)
        q.query_flags = _COVERING_OR_NEXT if next_ok else 0
        q.query_addr = addr
        q.vma_name_size = q.build_id_size = 0
        if self._libc.ioctl(self._handle(), _PROCMAP_QUERY, ctypes.byref(q)) != 0:
            return None
        return Vma(q.vma_start, q.vma_end, q.vma_flags & 0x7)

    def next_placement(self, length: int) -> int | None:
        """Where the kernel would map ``length`` inaccessible bytes now (the end)."""
        prot_none, flags = 0, 0x02 | 0x20 | 0x4000  # MAP_PRIVATE | MAP_ANONYMOUS | NORESERVE
        addr = self._libc.mmap(None, length, prot_none, flags, -1, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            return None
        self._libc.munmap(addr, length)
        return int(addr) + length


def _open_procmap() -> _Procmap | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        procmap = _Procmap()
        here = id(procmap)  # an address inside the Python heap, always mapped
        found = procmap.query(here)
    except (OSError, AttributeError):
        return None
    return procmap if found is not None and found.start <= here < found.end else None


_procmap = _open_procmap()
_live: set[int] = set()
"""Bases of the memories of live instances."""
_dying: set[int] = set()
"""Bases of dropped instances whose memory was still mapped (a store not yet freed)."""


def supported() -> bool:
    """Whether per-instance memory can be measured here."""
    return sys.platform.startswith("linux") and _MAPS.exists()


def _read_maps() -> list[Vma]:
    found: list[Vma] = []
    for line in _MAPS.read_text().splitlines():
        span, _, rest = line.partition(" ")
        lo_s, _, hi_s = span.partition("-")
        prot = (rest[0] == "r") * _READ | (rest[1] == "w") * _WRITE
        found.append(Vma(int(lo_s, 16), int(hi_s, 16), prot))
    return found


def _lookup(maps: list[Vma]) -> Callable[[int], Vma | None]:
    """A covering-mapping query over a parsed maps file (older kernels)."""
    starts = [v.start for v in maps]

    def query(addr: int) -> Vma | None:
        i = bisect.bisect_right(starts, addr) - 1
        return maps[i] if i >= 0 and maps[i].end > addr else None

    return query


def _query_fn() -> Callable[[int], Vma | None]:
    if _procmap is not None:
        return _procmap.query
    return _lookup(_read_maps())


def _base_below(query: Callable[[int], Vma | None], tail_start: int) -> int | None:
    """The lowest address of the writable run that ends at ``tail_start``."""
    base = None
    addr = tail_start
    while (vma := query(addr - 1)) is not None and vma.prot & _WRITE and vma.end == addr:
        base = addr = vma.start
    return base


def _writable_from(query: Callable[[int], Vma | None], base: int) -> int:
    """The extent of the contiguous writable mappings starting at ``base``."""
    addr = base
    while (vma := query(addr)) is not None and vma.prot & _WRITE:
        addr = vma.end
    return addr - base


def _reservation_at(query: Callable[[int], Vma | None], top: int) -> int | None:
    """The base of a fresh reservation whose mapping ends at ``top``, if there is one."""
    tail = query(top - 1)
    if tail is None or tail.prot or tail.end < top or top - tail.start < _MIN_TAIL:
        return None
    base = _base_below(query, tail.start)
    if base is None or base < top - RESERVATION_BYTES:
        return None
    return base


def _all_bases(maps: list[Vma]) -> list[int]:
    """The bases of every linear-memory reservation in ``maps``."""
    query = _lookup(maps)
    bases = []
    for vma in maps:
        if not vma.prot and vma.end - vma.start >= _MIN_TAIL:
            base = _base_below(query, vma.start)
            if base is not None:
                bases.append(base)
    return bases


def _still_mapped(base: int) -> bool:
    vma = _query_fn()(base)
    return vma is not None and bool(vma.prot & _WRITE)


def instantiate(make: Callable[[], T], *, single: bool = True) -> tuple[T, tuple[int, ...]]:
    """Call ``make`` (which instantiates a component) and find its linear memories.

    Args:
        make: Creates the instance (its new reservations are what is claimed).
        single: The component is known to have one linear memory, so its place can be
            predicted; otherwise (or when the prediction misses) the maps are scanned.

    Returns:
        ``make``'s result and the bases of the new instance's memories.
    """
    if not supported():
        return make(), ()
    with INSTANTIATE_LOCK:
        if _dying:  # forget dropped memories that are gone by now
            _dying.difference_update([b for b in list(_dying) if not _still_mapped(b)])
        top = None
        if single and _procmap is not None:
            top = _procmap.next_placement(RESERVATION_BYTES)
        made = make()
        bases: tuple[int, ...] = ()
        if top is not None:
            base = _reservation_at(_procmap.query, top) if _procmap is not None else None
            if base is not None and base not in _live:
                _dying.discard(base)
                bases = (base,)
        if not bases:
            with contextlib.suppress(OSError):
                owned = _live | _dying
                bases = tuple(b for b in _all_bases(_read_maps()) if b not in owned)
        _live.update(bases)
    return made, bases


def drop(release: Callable[[], None], bases: tuple[int, ...]) -> None:
    """Run ``release`` (which frees the instance's store) and forget its memories."""
    if not supported():
        release()
        return
    with INSTANTIATE_LOCK:
        release()
        _live.difference_update(bases)
        with contextlib.suppress(OSError):
            _dying.update(b for b in bases if _still_mapped(b))


def linear_bytes(bases: tuple[int, ...]) -> int:
    """The current size of the linear memories starting at ``bases`` (0 if unknown)."""
    if not bases or not supported():
        return 0
    try:
        query = _query_fn()
    except OSError:
        return 0
    return sum(_writable_from(query, base) for base in bases)
