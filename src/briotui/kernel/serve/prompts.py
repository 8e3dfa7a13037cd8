"""Questions for the user as state: capability prompts and agents' questions under
``/prompts``, answered by whichever attached client answers first.

Locally the TUI asks through a modal (``Kernel.set_approvals`` / ``set_answerer`` hand
it the agent's request). A served kernel has no screen: :class:`PromptBoard` is the
prompt function instead. It publishes each waiting question in the state tree (a
:class:`~briotui.kernel.contract.PromptView`), waits for :meth:`PromptBoard.answer`,
and removes it when answered or withdrawn (the asking agent stopped, or the checker's
timeout denied it). The answer carries the client's id, which the capability checker
writes to the audit row.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import cast

from briotui.kernel import contract
from briotui.kernel.caps.model import Answer, Answered, CapabilityRequest
from briotui.kernel.errors import PromptNotFound, RemoteProtocolError
from briotui.kernel.serve.protocol import ANSWERS
from briotui.kernel.state import StateTree


class PromptBoard:
    """Waiting questions published under ``/prompts``; the first answer wins.

    Args:
        state: The kernel's state tree.
    """

    def __init__(self, state: StateTree) -> None:
        self.state = state
        self._waiting: dict[str, tuple[contract.PromptKind, asyncio.Future[Answered | str]]] = {}

    @property
    def waiting(self) -> list[str]:
        """The ids of the prompts waiting for an answer."""
        return list(self._waiting)

    async def _ask(
        self, view_of: str, kind: contract.PromptKind, view: contract.PromptView
    ) -> Answered | str:
        future: asyncio.Future[Answered | str] = asyncio.get_running_loop().create_future()
        self._waiting[view_of] = (kind, future)
        self.state.set(["prompts", view_of], view, parents=True)
        try:
            return await future
        finally:
            self._waiting.pop(view_of, None)
            self._unpublish(view_of)

    def _unpublish(self, prompt_id: str) -> None:
        if self.state.exists(["prompts", prompt_id]):
            self.state.remove(["prompts", prompt_id])

    async def ask_capability(self, request: CapabilityRequest) -> Answer | Answered:
        """The kernel's capability prompt: ``set_approvals("ask", board.ask_capability)``."""
        prompt_id = "p-" + secrets.token_hex(5)
        view = contract.prompt_view(
            prompt_id,
            kind="capability",
            agent=request.agent,
            task=request.task_id,
            session=request.session_id,
            capability=request.capability,
            target=request.target,
            reason=request.reason,
            unsandboxed=request.unsandboxed,
            at=time.time(),
        )
        got = await self._ask(prompt_id, "capability", view)
        return got if isinstance(got, Answered) else "deny"

    async def ask_question(self, agent: str, question: str) -> str | None:
        """The kernel's answerer (``Kernel.set_answerer(board.ask_question)``)."""
        prompt_id = "q-" + secrets.token_hex(5)
        view = contract.prompt_view(
            prompt_id, kind="question", agent=agent, target=question, at=time.time()
        )
        got = await self._ask(prompt_id, "question", view)
        return got if isinstance(got, str) else None

    def answer(self, prompt_id: str, answer: str, by: str) -> None:
        """Answer a waiting prompt (first answer wins).

        Args:
            prompt_id: The prompt's id (its key under ``/prompts``).
            answer: ``once``, ``session``, ``project`` or ``deny`` for a capability
                prompt; the answer's text for a question.
            by: Who answered (a client id), for the audit log.

        Raises:
            PromptNotFound: no such prompt waits (answered already, or withdrawn).
            RemoteProtocolError: not an answer a capability prompt takes.
        """
        waiting = self._waiting.get(prompt_id)
        if waiting is None or waiting[1].done():
            raise PromptNotFound(
                f"No prompt {prompt_id!r} is waiting: another client answered it first, or "
                "the agent stopped asking."
            )
        kind, future = waiting
        if kind == "capability":
            if answer not in ANSWERS:
                raise RemoteProtocolError(
                    f"A capability prompt takes one of {', '.join(ANSWERS)}; got {answer[:40]!r}."
                )
            future.set_result(Answered(cast(Answer, answer), by))
        else:
            future.set_result(answer)
        self._waiting.pop(prompt_id, None)
        self._unpublish(prompt_id)  # every client sees at once that it is answered


__all__ = ["PromptBoard"]
