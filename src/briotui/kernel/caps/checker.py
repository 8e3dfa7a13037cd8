"""The check at every host call: grants first, then the user (or the approve policy).

:meth:`Capabilities.check` runs on an agent's worker thread. A call inside the agent's
grants is allowed at once; outside them, the approve mode decides: ``never`` denies,
``all`` allows once, ``ask`` suspends the agent and asks the user through the prompt
callback on the event loop. Answers are remembered for their lifetime — once, this
task, this session, this project — and identical prompts arriving together are asked
once. Every decision goes to the audit log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from briotui.kernel.caps.audit import AuditLog
from briotui.kernel.caps.model import (
    Answer,
    Answered,
    ApproveMode,
    Capability,
    CapabilityRequest,
    Delegator,
    Grant,
    Lifetime,
    Source,
    covers,
    matches,
    path_matches,
)
from briotui.kernel.errors import CapabilityDenied
from briotui.kernel.store import Store

log = logging.getLogger(__name__)

PromptFn = Callable[[CapabilityRequest], Coroutine[Any, Any, Answer | Answered]]
"""Asks the user about a request; returns their answer (with who gave it, if known)."""

_STOP_POLL_S = 0.05
"""How often a waiting prompt looks whether the asking agent's run was stopped."""

_LIFETIME: dict[Answer, Lifetime] = {"once": "once", "session": "session", "project": "project"}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check."""

    allowed: bool
    decided_by: str
    reason: str = ""


class Capabilities:
    """Grants, prompts and audit for one project.

    Args:
        store: The project database (grants are rows in it).
        audit: The audit log.
        profiles: Each agent's profile grants (see :mod:`.profiles`).
        mode: What a call outside the grants gets.
        prompt: Asks the user (the TUI's modal, or a terminal prompt); needed for "ask".
        loop: The event loop the prompt runs on.
        prompt_timeout_s: An unanswered prompt is denied after this long.
    """

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        profiles: dict[str, list[Grant]],
        *,
        mode: ApproveMode = "never",
        prompt: PromptFn | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        prompt_timeout_s: float = 300.0,
    ) -> None:
        self.store = store
        self.audit = audit
        self.profiles = profiles
        self.mode = mode
        self.prompt = prompt
        self.loop = loop
        self.prompt_timeout_s = prompt_timeout_s
        self._lock = threading.Lock()
        self._asking: dict[tuple[str, str, str], concurrent.futures.Future[Answer | Answered]] = {}
        self._denied: set[tuple[str, str, str, str]] = set()
        self._confirmed: set[tuple[str, str, str]] = set()

    # -- grants ------------------------------------------------------------------------

    def active_grants(self, agent: str, capability: Capability | None = None) -> list[Grant]:
        """The agent's stored grants that are not revoked (any scope)."""
        sql = "SELECT * FROM grants WHERE agent = ? AND revoked IS NULL"
        params: list[Any] = [agent]
        if capability:
            sql += " AND capability = ?"
            params.append(capability)
        return [
            Grant(
                r["id"],
                r["agent"],
                r["capability"],
                r["pattern"],
                r["lifetime"],
                r["scope_id"],
                r["source"],
                r["parent_id"],
            )
            for r in self.store.query(sql + " ORDER BY created", params)
            if not (r["lifetime"] == "once" and r["used"])
        ]

    def grant(
        self,
        agent: str,
        capability: Capability,
        pattern: str,
        *,
        lifetime: Lifetime = "project",
        scope_id: str = "",
        source: Source = "user",
        parent_id: str | None = None,
    ) -> Grant:
        """Store a new grant."""
        grant = Grant(
            "g-" + secrets.token_hex(5),
            agent,
            capability,
            pattern,
            lifetime,
            scope_id,
            source,
            parent_id,
        )
        self.store.execute(
            "INSERT INTO grants (id, agent, capability, pattern, lifetime, scope_id, source,"
            " parent_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                grant.id,
                agent,
                capability,
                pattern,
                lifetime,
                scope_id,
                source,
                parent_id,
                time.time(),
            ),
        )
        return grant

    def revoke(self, grant_id: str) -> int:
        """Revoke a grant and everything delegated from it; returns how many."""
        with self.store.transaction() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    "WITH RECURSIVE tree(id) AS (SELECT ? UNION"
                    " SELECT g.id FROM grants g JOIN tree t ON g.parent_id = t.id)"
                    " SELECT id FROM tree",
                    (grant_id,),
                )
            ]
            conn.executemany(
                "UPDATE grants SET revoked = ? WHERE id = ? AND revoked IS NULL",
                [(time.time(), i) for i in ids],
            )
        return len(ids)

    def delegate(
        self,
        parent_agent: str,
        child_agent: str,
        wanted: Sequence[tuple[Capability, str]],
        *,
        task_id: str,
    ) -> list[Grant]:
        """Give ``child_agent`` a subset of ``parent_agent``'s grants for one task.

        Raises:
            CapabilityDenied: an asked grant is not covered by any of the parent's
                stored grants (profile grants cannot be delegated: they are not
                revocable).
        """
        parents = self.active_grants(parent_agent)
        made: list[Grant] = []
        for capability, pattern in wanted:
            probe = Grant("?", child_agent, capability, pattern)
            parent = next((g for g in parents if covers(g, probe)), None)
            if parent is None:
                raise CapabilityDenied(
                    f"{parent_agent!r} cannot delegate {capability} {pattern!r} to "
                    f"{child_agent!r}: it holds no grant that covers it.",
                    agent=parent_agent,
                )
            made.append(
                self.grant(
                    child_agent,
                    capability,
                    pattern,
                    lifetime="task",
                    scope_id=task_id,
                    source="delegated",
                    parent_id=parent.id,
                )
            )
        return made

    # -- checks ------------------------------------------------------------------------

    def _covering(self, request: CapabilityRequest, *, use: bool = True) -> Grant | None:
        """The agent's own grant that covers ``request`` (a "once" grant is used up
        unless ``use`` is False)."""
        for grant in self.profiles.get(request.agent, []):
            if matches(grant, request.capability, request.target):
                return grant
        for grant in self.active_grants(request.agent, request.capability):
            in_scope = (
                grant.lifetime in ("project", "once")
                or (grant.lifetime == "session" and grant.scope_id == request.session_id)
                or (grant.lifetime == "task" and grant.scope_id == request.task_id)
            )
            if in_scope and matches(grant, request.capability, request.target):
                if grant.lifetime == "once" and use:
                    self.store.execute("UPDATE grants SET used = 1 WHERE id = ?", (grant.id,))
                return grant
        return None

    def _uncovered_delegator(self, request: CapabilityRequest) -> Delegator | None:
        """The first agent above a subtask whose grants do not cover ``request``.

        This is how ``tasks.spawn-subtask`` keeps its promise that the child gets a
        subset of its parent's grants: the child's grants count only where every
        agent above it (in that agent's own task and session) holds one too.
        """
        for above in request.ceiling:
            as_parent = replace(
                request,
                agent=above.agent,
                task_id=above.task_id,
                session_id=above.session_id,
                scope=(),
                ceiling=(),
            )
            if self._covering(as_parent, use=False) is None:
                return above
        return None

    def allows(self, request: CapabilityRequest) -> bool:
        """Whether the agent's grants (and those of every agent above it) cover
        ``request``, without asking anyone, using up a "once" grant or auditing.

        For what the kernel shows an agent on its behalf (its repository map): only
        what the agent could read itself without a prompt.
        """
        if (
            request.scope
            and request.capability == "write"
            and not any(path_matches(g, request.target) for g in request.scope)
        ):
            return False
        return (
            self._covering(request, use=False) is not None
            and self._uncovered_delegator(request) is None
        )

    def refuse(self, request: CapabilityRequest, by: str, reason: str) -> Verdict:
        """Deny ``request`` without asking (a hard rule said no), and audit it."""
        verdict = Verdict(False, by, reason)
        self.audit.record(request, "denied", by, reason)
        return verdict

    def check(
        self, request: CapabilityRequest, *, should_stop: Callable[[], bool] | None = None
    ) -> Verdict:
        """Decide ``request``; blocks the calling worker thread while the user decides.

        Args:
            request: The call to decide.
            should_stop: Polled while the user is being asked (the agent's deadline
                and cancel); when it returns True the question is withdrawn and the
                request denied.
        """
        verdict = self._decide(request, should_stop)
        self.audit.record(
            request, "allowed" if verdict.allowed else "denied", verdict.decided_by, verdict.reason
        )
        return verdict

    def confirm(
        self,
        request: CapabilityRequest,
        *,
        refusal: str,
        should_stop: Callable[[], bool] | None = None,
    ) -> Verdict:
        """Ask about something no grant can allow (a command without an OS sandbox).

        Grants and profiles are not consulted: only the approve mode and the user.
        ``never`` denies with ``refusal``; ``all`` allows once; ``ask`` prompts. An
        answer "session" or "project" is remembered for this command line while this
        kernel runs (never stored: it is asked again after a restart). Audited.

        Args:
            request: The request (``unsandboxed=True`` for the prompt's risk line).
            refusal: Why it is denied without asking, and how to fix that.
            should_stop: Whether the asking run was stopped (the prompt is withdrawn).
        """
        verdict = self._confirm(request, refusal, should_stop)
        self.audit.record(
            request, "allowed" if verdict.allowed else "denied", verdict.decided_by, verdict.reason
        )
        return verdict

    def _confirm(
        self,
        request: CapabilityRequest,
        refusal: str,
        should_stop: Callable[[], bool] | None,
    ) -> Verdict:
        for scope in ("", request.session_id):
            if (request.agent, request.target, scope) in self._confirmed:
                return Verdict(True, "user:remembered")
        denied_key = (request.agent, "unsandboxed", request.target, request.task_id)
        if denied_key in self._denied:
            return Verdict(False, "user:deny", "the user already said no to this in this task")
        if self.mode == "never":
            return Verdict(False, "policy:never", refusal)
        if self.mode == "all":
            return Verdict(True, "policy:all", "--approve all")
        answer, by = self._ask(request, should_stop)
        said = f" (answered by {by})" if by else ""
        if answer == "stopped":
            return Verdict(False, "stopped", "the agent's run was stopped while asking")
        if answer == "deny":
            self._denied.add(denied_key)
            return Verdict(False, "user:deny", "the user said no" + said)
        if answer != "once":
            scope = request.session_id if answer == "session" else ""
            self._confirmed.add((request.agent, request.target, scope))
        return Verdict(True, f"user:{answer}", said.strip(" ()"))

    def _decide(
        self, request: CapabilityRequest, should_stop: Callable[[], bool] | None = None
    ) -> Verdict:
        if (
            request.scope
            and request.capability == "write"
            and not any(path_matches(g, request.target) for g in request.scope)
        ):
            return Verdict(
                False,
                "scope",
                f"outside this subtask's scope ({', '.join(request.scope)}), which its parent "
                "delegated",
            )
        grant = self._covering(request)
        outside = f"outside {request.agent}'s grants"
        if grant is not None and (above := self._uncovered_delegator(request)) is not None:
            grant = None
            outside = (
                f"outside the grants of {above.agent!r}, which started this subtask: a "
                "subtask may only do what its parent may"
            )
        if grant is not None:
            by = grant.id if ":" in grant.id else f"{grant.source}:{grant.id}"
            return Verdict(True, by)
        denied_key = (request.agent, request.capability, request.target, request.task_id)
        if denied_key in self._denied:
            return Verdict(False, "user:deny", "the user already said no to this in this task")
        if self.mode == "never":
            return Verdict(
                False,
                "policy:never",
                f"{outside}; run with --approve ask to be asked",
            )
        if self.mode == "all":
            return Verdict(True, "policy:all", "--approve all")
        answer, by = self._ask(request, should_stop)
        said = f"answered by {by}" if by else ""
        if answer == "stopped":
            return Verdict(False, "stopped", "the agent's run was stopped while asking")
        if answer == "deny":
            self._denied.add(denied_key)
            return Verdict(False, "user:deny", said)
        pattern = request.target if request.capability != "sql" else "*"
        if answer != "once":
            scope = request.session_id if answer == "session" else ""
            self.grant(
                request.agent,
                request.capability,
                pattern,
                lifetime=_LIFETIME[answer],
                scope_id=scope,
                source="user",
            )
        return Verdict(True, f"user:{answer}", said)

    def _ask(
        self, request: CapabilityRequest, should_stop: Callable[[], bool] | None = None
    ) -> tuple[Answer | Literal["stopped"], str]:
        """The user's answer and who gave it ("" when the prompt does not say)."""
        given = self._wait_answer(request, should_stop)
        if isinstance(given, Answered):
            return given.answer, given.by
        return given, ""

    def _wait_answer(
        self, request: CapabilityRequest, should_stop: Callable[[], bool] | None = None
    ) -> Answer | Answered | Literal["stopped"]:
        prompt, loop = self.prompt, self.loop
        if prompt is None or loop is None:
            return "deny"
        key = (
            request.agent,
            request.capability + ("!" if request.unsandboxed else ""),
            request.target,
        )
        with self._lock:
            pending = self._asking.get(key)
            owner = pending is None
            if pending is None:
                pending = asyncio.run_coroutine_threadsafe(prompt(request), loop)
                self._asking[key] = pending
        end = time.monotonic() + self.prompt_timeout_s
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise concurrent.futures.TimeoutError
                try:
                    return pending.result(timeout=min(left, _STOP_POLL_S))
                except concurrent.futures.TimeoutError:
                    if should_stop is not None and should_stop():
                        if owner:
                            pending.cancel()
                        return "stopped"
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            pending.cancel()
            return "deny"
        except Exception:  # a broken prompt must not allow anything
            log.exception("the capability prompt failed; denying %s", request)
            return "deny"
        finally:
            if owner:
                with self._lock:
                    self._asking.pop(key, None)
