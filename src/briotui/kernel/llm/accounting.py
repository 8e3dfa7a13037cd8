"""Tokens and money: prices per model, a ledger of every reply, totals and budgets.

Tokens come from the provider's own usage fields; cost is computed from the price table
(``[llm.prices]`` over :data:`~briotui.kernel.llm.config.DEFAULT_PRICES`). A model with no
price is counted in tokens only (its ``cost_usd`` is None); a provider marked ``free``
(Ollama by default) costs 0.

The :class:`UsageLedger` keeps one :class:`UsageRecord` per reply, in memory; the store
persists them through :meth:`UsageRecord.to_dict` / :meth:`UsageRecord.from_dict` and
reloads them with :meth:`UsageLedger.extend`. A :class:`Budget` checks the ledger against
limits per task, session and agent; the capabilities layer decides when to ask.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from briotui.kernel.errors import BudgetExceeded
from briotui.kernel.llm.config import BudgetAction, BudgetConfig, Price
from briotui.kernel.llm.types import Usage

_VERSION_SUFFIX = re.compile(r"[-@:](\d{8}|\d{4}-\d{2}-\d{2}|latest|v\d[\w.]*)$")


def price_for(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of ``model``: an exact entry, else the entry it is a dated version of.

    ``claude-sonnet-4-5-20250929`` and ``gpt-4o-2024-08-06`` match ``claude-sonnet-4-5``
    and ``gpt-4o``; ``gpt-4o-mini`` does not match ``gpt-4o``.

    Args:
        model: The model id the provider reported.
        prices: The price table.
    """
    if model in prices:
        return prices[model]
    best: str | None = None
    for name in prices:
        if (
            model.startswith(name)
            and _VERSION_SUFFIX.fullmatch(model[len(name) :])
            and (best is None or len(name) > len(best))
        ):
            best = name
    return prices[best] if best is not None else None


def cost_usd(usage: Usage, price: Price | None) -> float | None:
    """The cost of ``usage`` at ``price`` (USD per million tokens), or None without a price."""
    if price is None:
        return None
    return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1_000_000


@dataclass(frozen=True)
class UsageRecord:
    """One reply's usage and provenance.

    Attributes:
        request_id: The router's request id.
        agent: The asking agent.
        task_id: The task.
        session_id: The session.
        provider: The provider that wrote the reply.
        model: The model that wrote the reply.
        usage: Tokens in and out, as the provider counted them.
        cost_usd: The cost, or None when the model has no price.
        at: When the reply finished (Unix time).
        failed_attempts: What failed before this reply, e.g. ``"anthropic/x: overloaded"``.
    """

    request_id: str
    agent: str
    task_id: str
    session_id: str
    provider: str
    model: str
    usage: Usage
    cost_usd: float | None
    at: float = field(default_factory=time.time)
    failed_attempts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (no secrets: there are none here)."""
        return {
            "request_id": self.request_id,
            "agent": self.agent,
            "task_id": self.task_id,
            "session_id": self.session_id,
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost_usd,
            "at": self.at,
            "failed_attempts": list(self.failed_attempts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageRecord:
        """The inverse of :meth:`to_dict`."""
        cost = data.get("cost_usd")
        return cls(
            request_id=str(data["request_id"]),
            agent=str(data.get("agent", "")),
            task_id=str(data.get("task_id", "")),
            session_id=str(data.get("session_id", "")),
            provider=str(data["provider"]),
            model=str(data["model"]),
            usage=Usage(int(data.get("input_tokens", 0)), int(data.get("output_tokens", 0))),
            cost_usd=None if cost is None else float(cost),
            at=float(data.get("at", 0.0)),
            failed_attempts=tuple(str(a) for a in data.get("failed_attempts", ())),
        )


@dataclass(frozen=True)
class Totals:
    """Summed usage over some records.

    Attributes:
        requests: How many replies.
        input_tokens: Tokens in.
        output_tokens: Tokens out.
        cost_usd: The cost of the priced replies.
        unpriced: How many replies had no price (their tokens are still counted).
    """

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0

    @property
    def tokens(self) -> int:
        """Tokens in and out."""
        return self.input_tokens + self.output_tokens

    def add(self, record: UsageRecord) -> Totals:
        """These totals with ``record`` added."""
        return Totals(
            self.requests + 1,
            self.input_tokens + record.usage.input_tokens,
            self.output_tokens + record.usage.output_tokens,
            self.cost_usd + (record.cost_usd or 0.0),
            self.unpriced + (record.cost_usd is None),
        )


Scope = Literal["task", "session", "agent"]


class UsageLedger:
    """Every reply's usage, with running totals per agent, task and session."""

    def __init__(self) -> None:
        self._records: list[UsageRecord] = []
        self._by: dict[tuple[Scope, str], Totals] = {}
        self._all = Totals()

    def record(self, record: UsageRecord) -> None:
        """Add one reply's usage."""
        self._records.append(record)
        self._all = self._all.add(record)
        for scope, key in (
            ("agent", record.agent),
            ("task", record.task_id),
            ("session", record.session_id),
        ):
            if key:
                slot: tuple[Scope, str] = (scope, key)  # type: ignore[assignment]
                self._by[slot] = self._by.get(slot, Totals()).add(record)

    def extend(self, records: Iterable[UsageRecord]) -> None:
        """Add many records (e.g. reloaded from the store)."""
        for record in records:
            self.record(record)

    @property
    def records(self) -> tuple[UsageRecord, ...]:
        """Every record, oldest first."""
        return tuple(self._records)

    def totals(
        self, *, agent: str | None = None, task_id: str | None = None, session_id: str | None = None
    ) -> Totals:
        """Totals for one agent, task or session (give exactly one), or for everything.

        Raises:
            ValueError: more than one of ``agent``, ``task_id``, ``session_id`` was given.
        """
        given = [
            (s, k) for s, k in (("agent", agent), ("task", task_id), ("session", session_id)) if k
        ]
        if not given:
            return self._all
        if len(given) > 1:
            raise ValueError("give one of agent, task_id, session_id")
        scope, key = given[0]
        return self._by.get((scope, key), Totals())  # type: ignore[arg-type]

    def by(self, scope: Scope) -> dict[str, Totals]:
        """Totals for every agent, task or session seen."""
        return {key: totals for (s, key), totals in self._by.items() if s == scope}


@dataclass(frozen=True)
class BudgetVerdict:
    """The answer of a budget check.

    Attributes:
        ok: Whether spending may go on.
        action: What to do when not ok: "stop" the task or "pause" it for the user.
        scope: Which budget ran out ("task", "session", "agent"), or "" when ok.
        key: Which task, session or agent.
        spent: What was spent, in the budget's unit.
        limit: The limit, in the budget's unit.
        unit: "usd" or "tokens".
    """

    ok: bool
    action: BudgetAction = "stop"
    scope: str = ""
    key: str = ""
    spent: float = 0.0
    limit: float = 0.0
    unit: str = ""

    @property
    def message(self) -> str:
        """What ran out and what to do, for the user."""
        if self.ok:
            return "within budget"
        amount = (
            f"${self.spent:.4f} of ${self.limit:.4f}"
            if self.unit == "usd"
            else f"{int(self.spent)} of {int(self.limit)} tokens"
        )
        knob = f"{self.scope}_{'usd' if self.unit == 'usd' else 'tokens'}"
        return (
            f"The {self.scope} {self.key!r} has spent {amount}. Raise [llm.budget] {knob} "
            "in .brio/config.toml to continue, or end the task."
        )


class Budget:
    """Spending limits checked against a ledger.

    Args:
        config: The limits (``[llm.budget]``).
        ledger: The ledger to check.
    """

    def __init__(self, config: BudgetConfig, ledger: UsageLedger) -> None:
        self.config = config
        self.ledger = ledger

    def check(self, *, agent: str = "", task_id: str = "", session_id: str = "") -> BudgetVerdict:
        """Whether a request for this agent, task and session may be made now.

        A budget is exceeded once spending reaches its limit; the request that crosses
        it is allowed to finish (its cost is only known afterwards).
        """
        c = self.config
        checks: list[tuple[str, str, float | None, str]] = [
            ("task", task_id, c.task_usd, "usd"),
            ("session", session_id, c.session_usd, "usd"),
            ("agent", agent, c.agent_usd, "usd"),
            ("task", task_id, None if c.task_tokens is None else float(c.task_tokens), "tokens"),
            (
                "session",
                session_id,
                None if c.session_tokens is None else float(c.session_tokens),
                "tokens",
            ),
        ]
        for scope, key, limit, unit in checks:
            if not key or limit is None:
                continue
            totals = self.ledger.totals(**{_ARG[scope]: key})
            spent = totals.cost_usd if unit == "usd" else float(totals.tokens)
            if spent >= limit:
                return BudgetVerdict(False, c.action, scope, key, spent, limit, unit)
        return BudgetVerdict(True, c.action)

    def enforce(self, *, agent: str = "", task_id: str = "", session_id: str = "") -> None:
        """Like :meth:`check`, but raise when a budget is spent.

        Raises:
            BudgetExceeded: a limit was reached; ``action`` says stop or pause.
        """
        verdict = self.check(agent=agent, task_id=task_id, session_id=session_id)
        if not verdict.ok:
            raise BudgetExceeded(
                verdict.message,
                scope=verdict.scope,
                key=verdict.key,
                action=verdict.action,
                title="Model budget exceeded" if verdict.action == "stop" else "Paused: budget",
            )


_ARG = {"task": "task_id", "session": "session_id", "agent": "agent"}
