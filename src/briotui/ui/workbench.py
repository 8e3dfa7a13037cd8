"""The UI's one door to the kernel: state tree, submitting tasks, sessions, transcripts.

The kernel publishes everything the UI shows in its state tree (``kernel.state``), in
the shapes of :mod:`briotui.kernel.contract`, and runs tasks with ``kernel.submit``.
The UI reads the tree only through the contract's accessors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from briotui.kernel import contract
from briotui.kernel.errors import BrioError, PromptNotFound
from briotui.kernel.llm.router import Router
from briotui.kernel.llm.types import Provider
from briotui.kernel.text import sanitize
from briotui.ui.port import KernelPort, SessionsPort, StatePort


def provider_info(provider: Provider | None, *, demo: bool = False) -> contract.ProviderView:
    """``/provider`` for ``provider``: name, model, whether it can answer, and why not."""
    if provider is None:
        return contract.no_provider()
    if demo:
        return contract.provider_view("demo", model="scripted", detail="scripted replies")
    if isinstance(provider, Router):
        chain = list(provider.config.fallback)
        usable = [t for t in chain if t.provider not in provider.unconfigured]
        if usable:
            return contract.provider_view(usable[0].provider, model=usable[0].model)
        detail = "; ".join(provider.unconfigured.values()) or "No provider in the fallback chain."
        return contract.provider_view(
            chain[0].provider if chain else "none",
            model=chain[0].model if chain else "",
            ok=False,
            detail=detail,
        )
    if provider.name == "scripted":
        return contract.provider_view("scripted", model="scripted", detail="scripted replies")
    return contract.provider_view(provider.name)  # the first reply says which model


class Workbench:
    """The kernel as the UI uses it.

    Args:
        kernel: The project's kernel, local or attached (``briotui attach``).
        provider: Where model requests go (None: nothing answers, or the served
            kernel's own provider when attached).
        attached: The kernel is served elsewhere: its provider and its tasks are its
            own (nothing published here; closing the UI leaves its tasks running).
        answer: Answers a served kernel's published prompt (``/prompts``).
    """

    def __init__(
        self,
        kernel: KernelPort,
        provider: Provider | None,
        *,
        attached: bool = False,
        answer: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.kernel = kernel
        self._answer = answer
        self.provider = provider
        self.attached = attached
        self.state: StatePort = kernel.state
        if not attached and not contract.provider(self.state.get("")).get("name"):
            # Until the first reply says which model answered, show the configured one.
            self.use_provider(provider)

    def use_provider(self, provider: Provider | None, *, demo: bool = False) -> None:
        """Send requests to ``provider`` from now on, and publish it at ``/provider``."""
        self.provider = provider
        self.state.set("/provider", provider_info(provider, demo=demo))

    # -- commands ----------------------------------------------------------------------

    async def submit(
        self, goal: str, *, agent: str | None = None, session_id: str | None = None
    ) -> str:
        """Start a task for ``goal``; returns its id at once (the work runs in the background).

        With ``session_id`` the request continues that open session (a follow-up).
        """
        return await self.kernel.submit(
            goal, agent=agent, provider=self.provider, session_id=session_id
        )

    async def outcome(self, task_id: str) -> tuple[str, str, str, str]:
        """How ``task_id`` ended — (status, summary, error title, outcome kind: see
        :data:`briotui.kernel.supervisor.OUTCOMES`) — once it ends."""
        result = await self.kernel.wait(task_id)
        title = str((result.error or {}).get("title", ""))
        return (
            str(result.status),
            sanitize(result.summary or ""),
            sanitize(title),
            result.final_outcome,
        )

    def cancel(self, task_id: str) -> bool:
        """Stop ``task_id`` (and its subtasks); returns whether something was running."""
        return self.kernel.cancel(task_id)

    async def answer(self, prompt_id: str, answer: str) -> None:
        """Answer a prompt a served kernel published (the first answer wins).

        Raises:
            PromptNotFound: another client answered it first, or it was withdrawn.
        """
        if self._answer is None:
            raise PromptNotFound("This kernel publishes no prompts; it asks in a dialog.")
        await self._answer(prompt_id, answer)

    def running(self) -> list[str]:
        """Ids of the tasks not finished yet."""
        return [
            tid
            for tid, node in contract.tasks(self.state.get("")).items()
            if node["status"] in ("pending", "running", "waiting")
        ]

    def sessions(self) -> SessionsPort:
        """The project's sessions."""
        return self.kernel.sessions()

    def transcript(self, task_id: str) -> str:
        """What the models said in ``task_id`` so far, as stored by the kernel ("" if none)."""
        try:
            messages = self.kernel.transcript(task_id)
        except BrioError:
            return ""
        parts: list[str] = []
        for message in messages:
            if message.get("role") != "assistant":
                continue
            text = sanitize(str(message.get("content") or ""))
            who = sanitize(str(message.get("agent", "")))
            model = "/".join(
                sanitize(str(message[k])) for k in ("provider", "model") if message.get(k)
            )
            head = f"**{who}**" + (f" · _{model}_" if model else "")
            parts.append(f"{head}\n\n{text}")
        return "\n\n---\n\n".join(parts)
