"""Measuring how much memory one agent instance's linear memories hold, on Linux.

wasmtime-py does not expose a component's memories, so the runtime finds them the way
the kernel sees them: each 32-bit linear memory is one multi-GiB address-space
reservation made when the instance is created. :func:`claim_reservations` (called
right after instantiation, under :data:`INSTANTIATE_LOCK`) attributes the new
reservations to the instance; :func:`resident_bytes` sums the resident pages in them.
Wasm memories never shrink, so the resident size after a run is its high-water mark.
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
_SMAPS = Path("/proc/self/smaps")


def supported() -> bool:
    """Whether per-instance memory can be measured here."""
    return sys.platform.startswith("linux") and _MAPS.exists()


def _reservations() -> list[tuple[int, int]]:
    found = []
    with _MAPS.open() as handle:
        for line in handle:
            span = line.split(" ", 1)[0]
            lo_s, hi_s = span.split("-")
            lo, hi = int(lo_s, 16), int(hi_s, 16)
            if hi - lo >= _MIN_RESERVATION:
                found.append((lo, hi))
    return found


def claim_reservations() -> tuple[tuple[int, int], ...]:
    """Attribute every unclaimed linear-memory reservation to the caller's instance."""
    if not supported():
        return ()
    mine = []
    with _claimed_lock:
        for lo, hi in _reservations():
            if lo not in _claimed:
                _claimed.add(lo)
                mine.append((lo, hi))
    return tuple(mine)


def release(ranges: tuple[tuple[int, int], ...]) -> None:
    """Forget ``ranges`` (the instance is gone; the addresses may be reused)."""
    with _claimed_lock:
        for lo, _ in ranges:
            _claimed.discard(lo)


def resident_bytes(ranges: tuple[tuple[int, int], ...]) -> int:
    """Resident bytes inside ``ranges`` (0 if unsupported or nothing is claimed)."""
    if not ranges or not supported():
        return 0
    total = 0
    inside = False
    with _SMAPS.open() as handle:
        for line in handle:
            first = line[0]
            if first in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                lo_s, hi_s = line.split(" ", 1)[0].split("-")
                lo, hi = int(lo_s, 16), int(hi_s, 16)
                inside = any(lo < r_hi and hi > r_lo for r_lo, r_hi in ranges)
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total
