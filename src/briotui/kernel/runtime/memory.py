"""Measuring how large one agent instance's linear memories are, on Linux.

wasmtime-py does not expose a component's memories (a component instance exports no
memory object, and the store limiter has no Python callback), so the runtime finds
them the way the kernel sees them: each 32-bit linear memory is one multi-GiB
address-space reservation made when the instance is created. Its accessible part (the
memory's current size) is mapped read-write, the rest is inaccessible; growing the
memory makes more of it accessible. :func:`claim_reservations` (called right after
instantiation, under :data:`INSTANTIATE_LOCK`) attributes the new reservations to the
instance by their end address, which never moves; :func:`linear_bytes` reads
``/proc/self/maps`` once and sums the accessible parts. That is one cheap read (no
per-page statistics as ``smaps`` would compute), so it can be sampled during a run.
Wasm memories never shrink, so the size at the end of a run is its high-water mark.
Elsewhere than Linux both return nothing and the meters read 0.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

INSTANTIATE_LOCK = threading.Lock()
"""Serializes instantiation so new reservations can be attributed to one instance."""

_MIN_RESERVATION = 1 << 32
_claimed: set[int] = set()
_claimed_lock = threading.Lock()
_MAPS = Path("/proc/self/maps")

Mapping = tuple[int, int, str]
"""One line of the maps file: start, end, permissions."""


def supported() -> bool:
    """Whether per-instance memory can be measured here."""
    return sys.platform.startswith("linux") and _MAPS.exists()


def _mappings() -> list[Mapping]:
    found: list[Mapping] = []
    for line in _MAPS.read_text().splitlines():
        span, _, rest = line.partition(" ")
        lo_s, _, hi_s = span.partition("-")
        found.append((int(lo_s, 16), int(hi_s, 16), rest[:4]))
    return found


def claim_reservations() -> tuple[tuple[int, int], ...]:
    """Attribute every unclaimed linear-memory reservation to the caller's instance.

    Returns:
        The reservations' inaccessible tails as (start, end); the end identifies one.
    """
    if not supported():
        return ()
    mine = []
    with _claimed_lock:
        for lo, hi, _ in _mappings():
            if hi - lo >= _MIN_RESERVATION and hi not in _claimed:
                _claimed.add(hi)
                mine.append((lo, hi))
    return tuple(mine)


def release(ranges: tuple[tuple[int, int], ...]) -> None:
    """Forget ``ranges`` (the instance is gone; the addresses may be reused)."""
    with _claimed_lock:
        for _, hi in ranges:
            _claimed.discard(hi)


def linear_bytes(ranges: tuple[tuple[int, int], ...]) -> int:
    """The current size of the linear memories whose reservations are ``ranges``.

    For each reservation, the accessible (read-write) mappings right below its
    inaccessible tail are its memory's current size. 0 if unsupported or nothing is
    claimed.
    """
    if not ranges or not supported():
        return 0
    try:
        maps = _mappings()
    except OSError:
        return 0
    index = {hi: i for i, (_, hi, _) in enumerate(maps)}
    total = 0
    for _, end in ranges:
        i = index.get(end)
        if i is None:
            continue
        if maps[i][2].startswith("rw"):  # grown to the whole reservation
            edge = maps[i][1]
        else:  # the inaccessible tail: the memory ends where it starts
            edge = maps[i][0]
            i -= 1
        while i >= 0 and maps[i][1] == edge and maps[i][2].startswith("rw"):
            total += maps[i][1] - maps[i][0]
            edge = maps[i][0]
            i -= 1
    return total
