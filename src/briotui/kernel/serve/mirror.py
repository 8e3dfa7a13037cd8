"""Waiting on a mirror of a kernel's state tree: what every follower of the feed shares.

The WebSocket client (:mod:`.client`) and the NATS follower
(:mod:`briotui.kernel.cluster.follower`) both keep ``tree`` and ``seq`` and set
``_changed`` after each applied patch; waiting on them is the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class MirrorWaits:
    """``wait_for`` and ``wait_seq`` over a mirror's ``tree``, ``seq`` and ``_changed``."""

    tree: dict[str, Any]
    seq: int
    _changed: asyncio.Event

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, within_s: float = 30.0
    ) -> dict[str, Any]:
        """Wait until ``predicate(tree)`` holds; the tree.

        Raises:
            TimeoutError: it did not hold within ``within_s`` seconds.
        """
        async with asyncio.timeout(within_s):
            while not predicate(self.tree):
                self._changed.clear()
                await self._changed.wait()
        return self.tree

    async def wait_seq(self, seq: int, *, within_s: float = 30.0) -> None:
        """Wait until the mirror has applied patch ``seq``."""
        await self.wait_for(lambda _tree: self.seq >= seq, within_s=within_s)
