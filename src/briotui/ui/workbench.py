"""The UI's one door to the kernel: state tree, submitting tasks, sessions, transcripts.

The kernel publishes everything the UI shows in its state tree (``kernel.state``) and
starts tasks with ``kernel.submit``. While a kernel without those is in use, this
adapter fills the gap with the pieces that exist: its own :class:`StateTree` fed from
``kernel.run_agent`` and the runtime's events, running the Coder in a fresh session.
Nothing else in the UI knows the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any, Final, cast

from briotui.kernel.errors import BrioError
from briotui.kernel.kernel import Kernel
from briotui.kernel.llm.types import Provider
from briotui.kernel.runtime.context import RunBindings
from briotui.kernel.runtime.events import Event, Milestone, Progress, StateChanged
from briotui.kernel.runtime.instance import RunFailed, RunOutcome
from briotui.kernel.state import StateTree, TaskTree
from briotui.kernel.text import sanitize
from briotui.kernel.vfs import Session, SessionManager

FALLBACK_AGENT: Final = "coder"
"""The agent a request runs when the kernel has no pipeline of its own."""


def provider_info(provider: Provider | None) -> dict[str, Any]:
    """``/provider`` for ``provider``: name, model, whether it can answer, and why not."""
    if provider is None:
        return {
            "name": "none",
            "model": "",
            "ok": False,
            "detail": "No model provider is configured.",
        }
    name = str(getattr(provider, "name", type(provider).__name__))
    config = getattr(provider, "config", None)
    if name == "router" and config is not None:
        chain = list(getattr(config, "fallback", ()))
        unconfigured: dict[str, str] = dict(getattr(provider, "unconfigured", {}))
        usable = [t for t in chain if t.provider not in unconfigured]
        if usable:
            first = usable[0]
            return {"name": first.provider, "model": first.model, "ok": True, "detail": ""}
        detail = "; ".join(unconfigured.values()) or "No provider in the fallback chain."
        first_name = chain[0].provider if chain else "none"
        first_model = chain[0].model if chain else ""
        return {"name": first_name, "model": first_model, "ok": False, "detail": detail}
    if name == "scripted":
        return {"name": "scripted", "model": "scripted", "ok": True, "detail": "scripted replies"}
    return {"name": name, "model": str(getattr(provider, "model", "")), "ok": True, "detail": ""}


class Workbench:
    """The kernel as the UI uses it.

    Args:
        kernel: The project's kernel.
        provider: Where model requests go (None: nothing answers).
    """

    def __init__(self, kernel: Kernel, provider: Provider | None) -> None:
        self.kernel = kernel
        self.provider = provider
        native = getattr(kernel, "state", None)
        self.native = isinstance(native, StateTree) and hasattr(kernel, "submit")
        """Whether the kernel runs tasks and publishes state itself."""
        self.state: StateTree = (
            cast(StateTree, native) if self.native else StateTree(loop=kernel.loop)
        )
        self.tasks = TaskTree(self.state)
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._instance_task: dict[str, str] = {}
        self._unsubscribe: Callable[[], None] | None = None
        if not self.native or not self.state.get("/provider"):
            # Until the first reply says which model answered, show the configured one.
            self.state.set("/provider", provider_info(provider))
        if not self.native:
            self._unsubscribe = kernel.events.subscribe(self._on_event)

    # -- commands ----------------------------------------------------------------------

    async def submit(self, goal: str, *, agent: str | None = None) -> str:
        """Start a task for ``goal``; returns its id at once (the work runs in the background)."""
        if self.native:
            submit = getattr(self.kernel, "submit")  # noqa: B009 - the kernel's newer API
            task_id: str = await submit(goal, agent=agent, provider=self.provider)
            return task_id
        name = agent or FALLBACK_AGENT
        task_id = uuid.uuid4().hex[:8]
        session = await asyncio.to_thread(self.kernel.sessions().create, label=name, task=goal)
        self.tasks.add_task(task_id, title=goal, agent=name, session=session.id, status="running")
        self.state.set(["sessions", session.id], self._session_dict(session, task_id, name))
        self._jobs[task_id] = asyncio.create_task(self._run(task_id, name, goal, session))
        return task_id

    async def outcome(self, task_id: str) -> tuple[str, str, str] | None:
        """How ``task_id`` ended — (status, summary, error title) — once it ends.

        None when the kernel cannot say (the task tree still shows the status).
        """
        wait = getattr(self.kernel, "wait", None)
        if self.native and wait is not None:
            result = await wait(task_id)
            error = getattr(result, "error", None) or {}
            title = str(error.get("title", "")) if isinstance(error, dict) else ""
            return str(result.status), sanitize(str(result.summary or "")), sanitize(title)
        job = self._jobs.get(task_id)
        if job is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(job)
        node = self.state.get(["tasks", task_id]) or {}
        if not node:
            return None
        summary = str(node.get("summary") or node.get("error") or "")
        return str(node.get("status", "")), sanitize(summary), ""

    def cancel(self, task_id: str) -> bool:
        """Stop ``task_id`` (and its subtasks); returns whether something was running."""
        native_cancel = getattr(self.kernel, "cancel", None)
        stopped = bool(native_cancel(task_id)) if native_cancel is not None else False
        if not self.native and self.state.exists(["tasks", task_id]):
            for tid in self.tasks.cancel_subtree(task_id, mark=True):
                stopped = self.kernel.cancel(tid) or stopped
        return stopped

    def running(self) -> list[str]:
        """Ids of the tasks not finished yet."""
        tasks: dict[str, Any] = self.state.get("/tasks", {}) or {}
        return [
            tid
            for tid, node in tasks.items()
            if node.get("status") in ("pending", "running", "waiting")
        ]

    def sessions(self) -> SessionManager:
        """The project's sessions."""
        return self.kernel.sessions()

    def transcript(self, task_id: str) -> str:
        """What the models said in ``task_id`` so far, as stored by the kernel ("" if none)."""
        stored = getattr(self.kernel, "transcript", None)
        if stored is None:
            return ""
        try:
            messages = stored(task_id)
        except BrioError:
            return ""
        parts: list[str] = []
        for message in messages or ():
            if not isinstance(message, dict) or message.get("role") != "assistant":
                continue
            text = sanitize(str(message.get("content") or message.get("text") or ""))
            who = sanitize(str(message.get("agent", "")))
            model = "/".join(
                sanitize(str(message[k])) for k in ("provider", "model") if message.get(k)
            )
            head = f"**{who}**" + (f" · _{model}_" if model else "")
            parts.append(f"{head}\n\n{text}")
        return "\n\n---\n\n".join(parts)

    async def close(self) -> None:
        """Stop running tasks (waiting briefly for them to record how they ended)."""
        wait = getattr(self.kernel, "wait", None)
        if self.native and wait is not None:
            running = self.running()
            for task_id in running:
                self.cancel(task_id)
            for task_id in running:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(wait(task_id), timeout=5)
        for job in self._jobs.values():
            job.cancel()
        for job in self._jobs.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        if self._unsubscribe is not None:
            self._unsubscribe()

    # -- the fallback pipeline -----------------------------------------------------------

    def _session_dict(self, session: Session, task_id: str, agent: str) -> dict[str, Any]:
        diff = session.diff()
        return {
            "id": session.id,
            "task": task_id,
            "state": session.state,
            "files": [
                {"path": f.path, "status": f.status, "hunks": len(f.hunks)} for f in diff.files
            ],
            "hunks": [
                {"id": h.id, "path": h.path, "agent": agent, "model": ""} for h in diff.hunks()
            ],
            "verified": None,
            "review": None,
        }

    async def _run(self, task_id: str, agent: str, goal: str, session: Session) -> None:
        bindings = RunBindings(task_id=task_id, provider=self.provider, workspace=session)
        try:
            outcome: RunOutcome = await self.kernel.run_agent(
                agent, goal, bindings=bindings, task_id=task_id
            )
        except RunFailed as failure:
            self._finish(task_id, "failed", failure.error.title, session, agent)
            self.tasks.add_usage(
                task_id,
                input_tokens=failure.usage.tokens.input_tokens,
                output_tokens=failure.usage.tokens.output_tokens,
                fuel=failure.usage.fuel,
                wall_ms=failure.usage.wall_ms,
                coalesce=False,
            )
            self.state.set(["tasks", task_id, "error"], sanitize(failure.error.message))
            return
        except BrioError as exc:
            self._finish(task_id, "failed", exc.title, session, agent)
            self.state.set(["tasks", task_id, "error"], sanitize(exc.message))
            return
        except asyncio.CancelledError:
            self._finish(task_id, "cancelled", "cancelled", session, agent)
            raise
        finally:
            self._jobs.pop(task_id, None)
        usage = outcome.usage
        model = "/".join(outcome.models[0]) if outcome.models else ""
        with self.state.batch():
            self.tasks.add_usage(
                task_id,
                input_tokens=usage.tokens.input_tokens,
                output_tokens=usage.tokens.output_tokens,
                fuel=usage.fuel,
                wall_ms=usage.wall_ms,
                coalesce=False,
            )
            self.state.update(
                "/usage",
                lambda u: {
                    "input_tokens": (u or {}).get("input_tokens", 0) + usage.tokens.input_tokens,
                    "output_tokens": (u or {}).get("output_tokens", 0) + usage.tokens.output_tokens,
                    "cost_usd": (u or {}).get("cost_usd", 0.0),
                },
                default={},
            )
            self.state.set(["tasks", task_id, "summary"], sanitize(outcome.summary))
            self._finish(task_id, "done", "done", session, agent, model=model)

    def _finish(
        self, task_id: str, status: str, note: str, session: Session, agent: str, *, model: str = ""
    ) -> None:
        with self.state.batch():
            if self.state.exists(["tasks", task_id]):
                self.tasks.set_progress(
                    task_id, 100 if status == "done" else 0, note, coalesce=False
                )
                self.tasks.set_status(task_id, status)  # type: ignore[arg-type]
            summary = self._session_dict(session, task_id, agent)
            for hunk in summary["hunks"]:
                hunk["model"] = model
            self.state.set(["sessions", session.id], summary)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            path = ["agents", event.instance]
            if event.state.value in ("stopped", "unloaded"):
                if self.state.exists(path):
                    self.state.remove(path)
                return
            self.state.set(
                path,
                {
                    "agent": event.agent,
                    "state": event.state.value,
                    "fuel": 0,
                    "memory": 0,
                },
            )
        elif isinstance(event, Progress) and self.state.exists(["tasks", event.task]):
            self.tasks.set_progress(event.task, event.percent, sanitize(event.note))
        elif isinstance(event, Milestone) and self.state.exists(["tasks", event.task]):
            self.tasks.add_milestone(event.task, sanitize(event.name))
