"""Capability prompts on a terminal, for ``briotui run --approve ask``."""

from __future__ import annotations

import asyncio
import sys

from briotui.cli.output import say
from briotui.kernel.caps.model import Answer, CapabilityRequest
from briotui.kernel.text import sanitize

_KEYS: dict[str, Answer] = {"y": "once", "s": "session", "a": "project", "n": "deny"}


def describe(request: CapabilityRequest) -> str:
    """The prompt's text: who asks for what, why, and the risk."""
    lines = [
        f"Agent {sanitize(request.agent)!r} asks for {request.capability}: "
        f"{sanitize(request.target)!r}",
    ]
    if request.reason:
        lines.append(f"  why:  {sanitize(request.reason)}")
    lines.append(f"  risk: {request.risk}")
    return "\n".join(lines)


async def terminal_prompt(request: CapabilityRequest) -> Answer:
    """Ask on stderr, read one answer line from stdin; end of input denies."""
    say(describe(request), err=True)
    while True:
        say(
            "  [y] allow once  [s] for this session  [a] always for this project  [n] deny: ",
            end="",
            err=True,
            flush=True,
        )
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            say("n (no input)", err=True)
            return "deny"
        key = line.strip().lower()[:1]
        if key in _KEYS:
            return _KEYS[key]
