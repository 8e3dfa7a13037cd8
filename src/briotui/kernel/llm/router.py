"""The one Provider agents talk to: model per role, retries, fallback across vendors, accounting.

:class:`Router` is itself a :class:`~briotui.kernel.llm.types.Provider`. For each request
it walks the chain for the asking agent's role (``[llm.roles]``, then ``[llm] fallback``),
tries each entry up to ``retry.max_attempts`` times with backoff on a retryable failure,
and moves to the next entry when retries run out. A non-retryable failure (bad key,
unknown model, bad request) stops at once with a clear error: falling back would hide a
configuration mistake. A chain entry whose key is unset is skipped when
``skip_unconfigured`` is on (the default chain names all three vendors).

Streaming and fallback. Deltas are forwarded live, from whichever attempt is running;
waiting for the winner would mean no streaming at all. When an attempt fails after it
streamed something, the router says so explicitly before the next attempt starts:
subscribers get a :class:`~briotui.kernel.llm.events.ReplyReset` and the caller's
``on_reset`` is called, so the partial text is discarded rather than shown or stored as
part of the answer. The returned :class:`Completion` holds only the winning attempt's
text, with its provider and model, and ``failed_attempts`` lists what failed before.

Every finished reply is recorded in the :class:`UsageLedger` (tokens from the provider,
cost from the price table). A :class:`Budget` is checked before each request.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from briotui.kernel.errors import ProviderError
from briotui.kernel.llm.accounting import Budget, UsageLedger, UsageRecord, cost_usd, price_for
from briotui.kernel.llm.config import (
    ModelsConfig,
    ProviderConfig,
    Target,
    load_models_config,
)
from briotui.kernel.llm.events import (
    ReplyDelta,
    ReplyEvents,
    ReplyFailed,
    ReplyFinished,
    ReplyReset,
    ReplyStarted,
)
from briotui.kernel.llm.retry import backoff_delay
from briotui.kernel.llm.types import (
    Completion,
    CompletionRequest,
    DeltaCallback,
    FailedAttempt,
    Provider,
)
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.settings import Settings

ResetCallback = Callable[[], None]
"""Called when the deltas streamed so far belong to a failed attempt and must be dropped."""

FailureCallback = Callable[[FailedAttempt], None]
"""Called with each attempt that failed (before the router retries or falls back)."""

Sleep = Callable[[float], Awaitable[None]]


def make_provider(config: ProviderConfig, env: Mapping[str, str]) -> Provider:
    """Build the provider ``config`` describes, reading its key from ``env``.

    Args:
        config: The provider's settings.
        env: The environment (keys, ``OLLAMA_HOST``).

    Raises:
        ConfigError: a scripted provider's replies file is unusable.
    """
    key = env.get(config.api_key_env) if config.api_key_env else None
    if config.kind == "anthropic":
        from briotui.kernel.llm.anthropic_provider import AnthropicProvider

        return AnthropicProvider(config, key)
    if config.kind == "openai":
        from briotui.kernel.llm.openai_provider import OpenAIProvider

        return OpenAIProvider(config, key)
    if config.kind == "ollama":
        from briotui.kernel.llm.ollama_provider import OllamaProvider

        return OllamaProvider(config, key, host=env.get("OLLAMA_HOST") or None)
    from briotui.kernel.llm.scripted import ScriptedProvider

    # Labelled "scripted" whatever its config name, so its replies never pass for a model's.
    return ScriptedProvider.from_file(config.replies or "", tools=config.tools)


def missing_key(config: ProviderConfig, env: Mapping[str, str]) -> str | None:
    """Why ``config`` cannot be used as it stands (its key is unset), or None."""
    if config.needs_key and not env.get(config.api_key_env):
        return f"{config.api_key_env} is not set"
    return None


class LazyProviders(Mapping[str, Provider]):
    """Providers built on first use: importing a vendor SDK costs up to a second, and
    most runs talk to one provider of the chain."""

    def __init__(self, config: ModelsConfig, env: Mapping[str, str]) -> None:
        self._configs = dict(config.providers)
        self._env = env
        self._built: dict[str, Provider] = {}

    def __getitem__(self, name: str) -> Provider:
        if name not in self._built:
            self._built[name] = make_provider(self._configs[name], self._env)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._configs)

    def __len__(self) -> int:
        return len(self._configs)

    def __contains__(self, name: object) -> bool:
        return name in self._configs

    def built(self) -> list[Provider]:
        """The providers made so far (what there is to close)."""
        return list(self._built.values())


class Router:
    """Routes completions to providers, with retries, fallback, streaming and accounting.

    Args:
        config: The models config.
        providers: Provider instances by name (built with :func:`make_provider`).
        unconfigured: Providers that cannot work as configured, with why (a missing key).
        ledger: Where usage is recorded; a new one by default.
        budget: The budget checked before each request; from ``config.budget`` by default.
        sleep: The backoff sleep (tests may pass a recorder).
        rng: The jitter source.
    """

    name = "router"

    def __init__(
        self,
        config: ModelsConfig,
        providers: Mapping[str, Provider],
        *,
        unconfigured: Mapping[str, str] | None = None,
        ledger: UsageLedger | None = None,
        budget: Budget | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.providers = providers
        self.unconfigured = dict(unconfigured or {})
        self.ledger = ledger or UsageLedger()
        self.budget = budget or Budget(config.budget, self.ledger)
        self.events = ReplyEvents()
        """Subscribe here for :mod:`~briotui.kernel.llm.events` (the UI, the transcript)."""
        self._sleep = sleep
        self._rng = rng or random.Random()

    def chain(self, request: CompletionRequest) -> tuple[Target, ...]:
        """The targets tried for ``request``, in order.

        ``request.model`` may name ``"provider/model"`` (tried first) or just a model
        for the first entry of the role's chain.
        """
        chain = self.config.chain_for(request.agent)
        if not request.model:
            return chain
        provider, _, model = request.model.partition("/")
        if provider in self.providers and model:
            first = Target(provider, model)
        elif chain:
            first = Target(chain[0].provider, request.model)
        else:
            return chain
        return (first, *(t for t in chain if t != first))

    async def complete(
        self,
        request: CompletionRequest,
        on_delta: DeltaCallback | None = None,
        *,
        on_reset: ResetCallback | None = None,
        on_failure: FailureCallback | None = None,
    ) -> Completion:
        """Answer ``request`` from the first provider in its chain that can.

        Args:
            request: The request; ``agent`` picks the role's chain, ``task_id`` and
                ``session_id`` are used for accounting and budgets.
            on_delta: Receives text deltas live, from the attempt in progress.
            on_reset: Called when an attempt fails after streaming: drop what
                ``on_delta`` received since the attempt started.
            on_failure: Called with every attempt that fails (after ``on_reset``),
                so the caller can record it and announce a fallback.

        Returns:
            The complete reply of the attempt that succeeded, with its provider,
            model, usage, cost, request id and the failed attempts before it.

        Raises:
            BudgetExceeded: a budget for this task, session or agent is spent.
            ProviderError: no provider could answer; the message lists every attempt.
            asyncio.CancelledError: the task was cancelled; the request in flight is
                closed and nothing is recorded.
        """
        self.budget.enforce(
            agent=request.agent, task_id=request.task_id, session_id=request.session_id
        )
        request_id = uuid.uuid4().hex[:16]
        events = self.events
        failures: list[str] = []
        last: ProviderError | None = None
        attempt = 0
        target = Target("")
        try:
            for target in self.chain(request):
                reason = self.unconfigured.get(target.provider)
                if reason and self.config.skip_unconfigured:
                    failures.append(f"{target}: skipped ({reason})")
                    continue
                provider = self.providers.get(target.provider)
                if provider is None:
                    failures.append(f"{target}: skipped (no such provider)")
                    continue
                sub = replace(request, model=target.model)
                for retry in range(self.config.retry.max_attempts):
                    if retry:
                        await self._sleep(backoff_delay(self.config.retry, retry, self._rng))
                    attempt += 1
                    if events.active:
                        events.publish(
                            ReplyStarted(
                                request_id,
                                request.agent,
                                request.task_id,
                                request.session_id,
                                target.provider,
                                target.model,
                                attempt,
                                request.purpose,
                            )
                        )
                    streamed = False

                    def forward(text: str) -> None:
                        nonlocal streamed
                        streamed = True
                        if events.active:
                            events.publish(ReplyDelta(request_id, text))
                        if on_delta is not None:
                            on_delta(text)

                    try:
                        completion = await provider.complete(sub, forward)
                    except ProviderError as error:
                        last = error
                        failures.append(f"{target}: {error.cause}")
                        if streamed:
                            if events.active:
                                events.publish(
                                    ReplyReset(
                                        request_id, target.provider, target.model, error.cause
                                    )
                                )
                            if on_reset is not None:
                                on_reset()
                        if on_failure is not None:
                            on_failure(
                                FailedAttempt(
                                    target.provider,
                                    target.model,
                                    error.cause,
                                    error.message,
                                    streamed,
                                )
                            )
                        if not error.retryable:
                            raise self._final_error(error, failures[:-1]) from None
                        continue
                    return self._finish(request, request_id, target, completion, failures)
        except asyncio.CancelledError:
            if events.active:
                events.publish(
                    ReplyFailed(
                        request_id, target.provider, target.model, "cancelled", "task cancelled"
                    )
                )
            raise
        except ProviderError as error:
            if events.active:
                events.publish(
                    ReplyFailed(request_id, error.provider, error.model, error.cause, error.message)
                )
            raise
        exhausted = self._exhausted(request, last, failures)
        if events.active:
            events.publish(
                ReplyFailed(
                    request_id,
                    exhausted.provider,
                    exhausted.model,
                    exhausted.cause,
                    exhausted.message,
                )
            )
        raise exhausted

    def _finish(
        self,
        request: CompletionRequest,
        request_id: str,
        target: Target,
        completion: Completion,
        failures: list[str],
    ) -> Completion:
        provider_config = self.config.providers.get(target.provider)
        if provider_config is not None and provider_config.free:
            cost: float | None = 0.0
        else:
            price = price_for(completion.model, self.config.prices) or price_for(
                target.model, self.config.prices
            )
            cost = cost_usd(completion.usage, price)
        completion = replace(
            completion, cost_usd=cost, request_id=request_id, failed_attempts=tuple(failures)
        )
        self.ledger.record(
            UsageRecord(
                request_id=request_id,
                agent=request.agent,
                task_id=request.task_id,
                session_id=request.session_id,
                provider=completion.provider,
                model=completion.model,
                usage=completion.usage,
                cost_usd=cost,
                failed_attempts=completion.failed_attempts,
            )
        )
        if self.events.active:
            self.events.publish(ReplyFinished(request_id, completion))
        return completion

    @staticmethod
    def _final_error(error: ProviderError, before: list[str]) -> ProviderError:
        if not before:
            return error
        return ProviderError(
            f"{error.message} Tried before: {'; '.join(before)}.",
            provider=error.provider,
            model=error.model,
            cause=error.cause,
            retryable=False,
            title=error.title,
        )

    def _exhausted(
        self, request: CompletionRequest, last: ProviderError | None, failures: list[str]
    ) -> ProviderError:
        who = f" for {request.agent}" if request.agent else ""
        if last is None:
            return ProviderError(
                f"No model provider is usable{who}: {'; '.join(failures) or 'the chain is empty'}. "
                "Export a key (ANTHROPIC_API_KEY or OPENAI_API_KEY), start Ollama, or set "
                "[llm] fallback in .brio/config.toml; `briotui doctor` checks each provider.",
                provider=self.name,
                cause="auth",
                title="No model provider configured",
            )
        return ProviderError(
            f"Every model provider failed{who}: {'; '.join(failures)}. Last error: {last.message}",
            provider=last.provider,
            model=last.model,
            cause=last.cause,
            retryable=False,
            title="No model provider could answer",
        )

    async def aclose(self) -> None:
        """Close every provider's connections."""
        built = (
            self.providers.built()
            if isinstance(self.providers, LazyProviders)
            else list(self.providers.values())
        )
        for provider in built:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()


def build_router(
    config: ModelsConfig,
    *,
    env: Mapping[str, str] | None = None,
    ledger: UsageLedger | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Router:
    """A router over every provider in ``config``.

    Args:
        config: The models config (see :func:`load_models_config`).
        env: Where keys and ``OLLAMA_HOST`` are read; ``os.environ`` by default.
        ledger: A ledger to record into (e.g. one reloaded from the store).
        sleep: The backoff sleep.

    Raises:
        ConfigError: a provider's settings are unusable (e.g. a scripted replies file).
    """
    environ = os.environ if env is None else env
    scripted = [pc for pc in config.providers.values() if pc.kind == "scripted"]
    for pc in scripted:  # a bad replies file is reported now, not at the first request
        make_provider(pc, environ)
    providers = LazyProviders(config, environ)
    unconfigured = {
        name: reason
        for name, pc in config.providers.items()
        if (reason := missing_key(pc, environ)) is not None
    }
    return Router(config, providers, unconfigured=unconfigured, ledger=ledger, sleep=sleep)


def open_router(
    project: ProjectPaths | Path | str | Settings | None,
    *,
    env: Mapping[str, str] | None = None,
    ledger: UsageLedger | None = None,
) -> Router:
    """Load the config for ``project`` (user file, then ``.brio/config.toml``) and route.

    Args:
        project: The project directory, its paths or its loaded settings; None for the
            user config only.
        env: Where keys are read; ``os.environ`` by default.
        ledger: A ledger to record into.

    Raises:
        ConfigError: a config file or setting is wrong.
    """
    return build_router(load_models_config(project), env=env, ledger=ledger)
