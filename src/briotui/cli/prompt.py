"""Prompts on a terminal: capability requests (``briotui run --approve ask``) and the
agents' clarifying questions (answered on the terminal, by ``--answer``, or not at all)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from briotui.cli.output import say
from briotui.kernel.caps.model import Answer, CapabilityRequest
from briotui.kernel.text import sanitize

if TYPE_CHECKING:
    from briotui.kernel.kernel import Kernel

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


def question_answerer(
    given: str | None, *, interactive: bool | None = None
) -> Callable[[str, str], Awaitable[str | None]]:
    """Answers an agent's clarifying question for ``briotui run``.

    Args:
        given: The ``--answer`` text: every question gets it.
        interactive: Ask on the terminal (default: when stdin is a terminal).

    Returns:
        The kernel's answerer. Without ``--answer`` and without a terminal it says on
        stderr that the run needs an answer and how to give it, and gives none (the
        agent decides itself and says what it assumed).
    """
    tty = sys.stdin.isatty() if interactive is None else interactive

    async def answer(agent: str, question: str) -> str | None:
        say(f"The {sanitize(agent)} asks: {sanitize(question)}", err=True)
        if given is not None:
            say(f"  answer (--answer): {sanitize(given)}", err=True)
            return given
        if not tty:
            say(
                '  This run needs an answer: run it again with --answer "..." (or from a '
                "terminal). For now it decides itself and says what it assumed.",
                err=True,
            )
            return None
        say("  your answer (empty: none, it decides itself): ", end="", err=True, flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        return line.strip() or None

    return answer


def add_answer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--approve`` and ``--answer``, for every command that runs agents headless
    (``briotui run``, ``briotui tasks resume``); see :func:`use_answers`."""
    parser.add_argument(
        "--approve",
        choices=("never", "ask", "all"),
        default="never",
        help=(
            "what a call outside the agent's grants gets: never (deny, the default), ask "
            "(prompt on the terminal), all (allow once; every decision is audited)"
        ),
    )
    parser.add_argument(
        "--answer",
        metavar="TEXT",
        help="the answer to an agent's clarifying question (default: asked on the terminal; "
        "without a terminal the agent decides itself)",
    )


def use_answers(kernel: Kernel, args: argparse.Namespace) -> None:
    """Give the kernel the approvals and answerer that ``--approve`` / ``--answer`` ask for."""
    kernel.set_approvals(args.approve, terminal_prompt if args.approve == "ask" else None)
    kernel.set_answerer(question_answerer(args.answer))
