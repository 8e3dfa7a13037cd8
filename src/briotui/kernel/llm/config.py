"""Which model providers exist, which model each agent role uses, the fallback chain and prices.

Read from ``~/.config/briotui/config.toml`` (the user's) and ``.brio/config.toml`` (the
project's, which overrides the user's) with :func:`load_models_config`, through the one
loader :mod:`briotui.kernel.settings` (the project's providers apply only once the user
trusts the project). Everything lives under ``[llm]``::

    [llm]
    fallback = ["anthropic", "openai/gpt-4o-mini", "ollama"]   # tried in order
    timeout_s = 600            # whole request
    read_timeout_s = 60        # silence between two stream chunks
    skip_unconfigured = true   # a chain entry whose key is unset is skipped, not an error

    [llm.retry]
    max_attempts = 3           # per chain entry
    base_delay_s = 0.5
    max_delay_s = 8.0

    [llm.roles]                # agent name -> target or chain; the fallback follows it
    council = "anthropic/claude-opus-4-6"
    coder = "anthropic/claude-sonnet-4-6"
    reviewer = ["anthropic/claude-haiku-4-5", "ollama/llama3.2"]

    [[llm.providers]]          # add or override providers
    name = "local"
    kind = "openai"            # anthropic | ollama | openai | scripted
    base_url = "http://127.0.0.1:8000/v1"
    model = "Qwen/Qwen2.5-Coder-7B-Instruct"
    api_key_env = ""           # none needed
    free = true

    [llm.prices."claude-sonnet-4-5"]   # USD per million tokens
    input = 3.0
    output = 15.0

    [llm.budget]
    task_usd = 2.0
    session_usd = 10.0
    action = "pause"           # or "stop"

A target is ``"provider"`` (its default model) or ``"provider/model"`` (the model may
itself contain ``/``). Keys are never stored here: a provider names the environment
variable that holds its key (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``), read only when
a client is built. Ollama's address comes from ``base_url``, else ``OLLAMA_HOST``.

A key is sent only where it belongs: to its vendor's own URL (``ANTHROPIC_API_KEY`` to
Anthropic, ``OPENAI_API_KEY`` to OpenAI) or to a base URL the *user's* config pairs with
that variable. A project config that pairs a key variable with another URL is refused
(:class:`~briotui.kernel.errors.KeyNotSent`), trusted or not; a project provider that
needs no key is fine once the project is trusted.

One piece: it is the one reader of ``[llm]`` (providers, chains, prices, retries) and
the trust gate on each; split, the gate would be applied in two places.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from briotui.kernel.errors import ConfigError, KeyNotSent
from briotui.kernel.paths import ProjectPaths
from briotui.kernel.settings import Settings, load_settings

ProviderKind = Literal["anthropic", "ollama", "openai", "scripted"]
"""The kinds of provider briotui can talk to."""

PROVIDER_KINDS: tuple[ProviderKind, ...] = get_args(ProviderKind)

BudgetAction = Literal["stop", "pause"]

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"

VENDOR_URLS: Mapping[str, tuple[ProviderKind, str]] = {
    "ANTHROPIC_API_KEY": ("anthropic", "https://api.anthropic.com"),
    "OPENAI_API_KEY": ("openai", "https://api.openai.com/v1"),
}
"""Each vendor key variable, the kind of provider it is for, and its vendor's URL."""

_DEFAULT_KEY_ENV: dict[ProviderKind, str] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "ollama": "",
    "scripted": "",
}


@dataclass(frozen=True)
class ProviderConfig:
    """One model endpoint.

    Attributes:
        name: How chains and roles refer to it, and how replies are labelled.
        kind: Which wire protocol and SDK it uses.
        model: Its default model.
        base_url: The server address; the vendor's default when None (for Ollama,
            ``OLLAMA_HOST`` or localhost:11434).
        api_key_env: The environment variable holding its key; "" when none is needed.
        timeout_s: Upper bound on a whole request, streaming included.
        read_timeout_s: Upper bound on silence between two chunks of the stream.
        connect_timeout_s: Upper bound on opening the connection.
        max_tokens: The reply bound used when a request gives none (Anthropic needs one).
        free: Whether its replies cost nothing (local servers); else priced by model.
        replies: For ``kind = "scripted"``: the JSON replies file.
        project_endpoint: Whether the project's config chose ``base_url``: no ambient
            credential (e.g. ``OLLAMA_API_KEY``) is sent there.
        tools: Whether requests offering tools reach its tool-calling API natively;
            false sends such conversations as text (agents then use their fenced
            fallback). An Ollama model the server says cannot use tools gets text
            even when this is true.
    """

    name: str
    kind: ProviderKind
    model: str
    base_url: str | None = None
    api_key_env: str = ""
    timeout_s: float = 600.0
    read_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_tokens: int = 4096
    free: bool = False
    replies: str | None = None
    project_endpoint: bool = False
    tools: bool = True

    @property
    def needs_key(self) -> bool:
        """Whether a key must be set in :attr:`api_key_env`."""
        return bool(self.api_key_env)


@dataclass(frozen=True)
class Target:
    """A provider and the model to ask it for."""

    provider: str
    model: str = ""

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider

    @classmethod
    def parse(cls, value: object, where: str) -> Target:
        """Parse ``"provider"``, ``"provider/model"`` or ``{provider=..., model=...}``.

        Raises:
            ConfigError: ``value`` is none of those.
        """
        if isinstance(value, str) and value.strip():
            provider, _, model = value.strip().partition("/")
            return cls(provider, model)
        if isinstance(value, dict) and isinstance(value.get("provider"), str):
            model = value.get("model", "")
            if isinstance(model, str):
                return cls(value["provider"], model)
        raise ConfigError(
            f'{where}: {value!r} is not a model target. Write "provider" or '
            '"provider/model", e.g. "anthropic/claude-sonnet-4-5".',
        )


@dataclass(frozen=True)
class RetryConfig:
    """How often and how patiently to retry one chain entry.

    Attributes:
        max_attempts: Tries per chain entry (1 means no retry).
        base_delay_s: The first backoff delay.
        max_delay_s: The longest backoff delay.
        multiplier: Growth of the delay per try.
        jitter: Fraction of random spread added to each delay (0 for none).
    """

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.2


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float


DEFAULT_PRICES: Mapping[str, Price] = {
    # Anthropic (USD per million tokens). A dated id, e.g. claude-sonnet-4-5-20250929,
    # matches its longest listed prefix.
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
    # OpenAI
    "gpt-5": Price(1.25, 10.0),
    "gpt-5-mini": Price(0.25, 2.0),
    "gpt-5-nano": Price(0.05, 0.4),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.4, 1.6),
    "gpt-4.1-nano": Price(0.1, 0.4),
    "gpt-4o": Price(2.5, 10.0),
    "gpt-4o-mini": Price(0.15, 0.6),
    "o3": Price(2.0, 8.0),
    "o4-mini": Price(1.1, 4.4),
}
"""Prices of common models; ``[llm.prices]`` adds to and overrides them."""


@dataclass(frozen=True)
class BudgetConfig:
    """Spending limits; None means no limit.

    Attributes:
        task_usd: Cost limit per task.
        session_usd: Cost limit per session.
        agent_usd: Cost limit per agent (across tasks).
        task_tokens: Token limit (in + out) per task.
        session_tokens: Token limit (in + out) per session.
        action: What an exceeded budget asks for: "stop" the task or "pause" it.
    """

    task_usd: float | None = None
    session_usd: float | None = None
    agent_usd: float | None = None
    task_tokens: int | None = None
    session_tokens: int | None = None
    action: BudgetAction = "stop"


def default_providers() -> tuple[ProviderConfig, ...]:
    """The providers known without any configuration."""
    return (
        ProviderConfig(
            "anthropic", "anthropic", "claude-sonnet-4-6", api_key_env="ANTHROPIC_API_KEY"
        ),
        ProviderConfig("openai", "openai", "gpt-4o-mini", api_key_env="OPENAI_API_KEY"),
        ProviderConfig("ollama", "ollama", "llama3.2", free=True, read_timeout_s=300.0),
    )


@dataclass(frozen=True)
class ModelsConfig:
    """Everything the router needs: providers, roles, fallback, retries, prices, budgets.

    Attributes:
        providers: Known providers by name.
        fallback: The default chain, tried in order.
        roles: Per agent role, the chain tried first (the fallback follows it).
        retry: Retry and backoff settings.
        prices: Price table by model name (defaults merged with ``[llm.prices]``).
        budget: Spending limits.
        skip_unconfigured: Skip a chain entry whose key is unset instead of failing.
        sources: The files this was read from, for messages.
    """

    providers: Mapping[str, ProviderConfig] = field(
        default_factory=lambda: {p.name: p for p in default_providers()}
    )
    fallback: tuple[Target, ...] = (Target("anthropic"), Target("openai"), Target("ollama"))
    roles: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    retry: RetryConfig = field(default_factory=RetryConfig)
    prices: Mapping[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    skip_unconfigured: bool = True
    sources: tuple[str, ...] = ()

    def chain_for(self, agent: str) -> tuple[Target, ...]:
        """The targets tried for a request from ``agent``: its role's chain, then fallback.

        Each target's empty model is filled in with its provider's default; duplicates
        are dropped.
        """
        chain: list[Target] = []
        for target in (*self.roles.get(agent.lower(), ()), *self.fallback):
            provider = self.providers.get(target.provider)
            full = Target(target.provider, target.model or (provider.model if provider else ""))
            if full not in chain:
                chain.append(full)
        return tuple(chain)

    def provider(self, name: str) -> ProviderConfig:
        """The provider called ``name``.

        Raises:
            ConfigError: there is none.
        """
        try:
            return self.providers[name]
        except KeyError:
            raise ConfigError(
                f"No model provider named {name!r}; known: {', '.join(sorted(self.providers))}. "
                "Add it under [[llm.providers]] in .brio/config.toml or fix the name.",
            ) from None


def load_models_config(
    project: ProjectPaths | Path | str | Settings | None = None,
    *,
    user_file: Path | None = None,
) -> ModelsConfig:
    """Read the models config: defaults, then the user's file, then the project's.

    Args:
        project: The project (its ``.brio/config.toml`` is read), its already loaded
            :class:`~briotui.kernel.settings.Settings`, or None.
        user_file: The user's config file; ``user_config_dir()/config.toml`` by default.

    Raises:
        ConfigError: a file is not valid TOML or a setting is wrong (names the file).
        KeyNotSent: the project pairs an API key variable with a URL of its choosing.
    """
    if isinstance(project, Settings):
        return models_config(project)
    return models_config(load_settings(project, user_file=user_file))


def models_config(settings: Settings) -> ModelsConfig:
    """The models config from loaded settings (the project's layer only as far as trusted).

    Raises:
        ConfigError: a setting is wrong (names the file).
        KeyNotSent: the project pairs an API key variable with a URL of its choosing.
    """
    config = ModelsConfig()
    for data, source, is_project in settings.llm_layers():
        if not is_project:
            config = apply_toml(config, data, source)
            continue
        user_level = config
        config = apply_toml(config, data, source, project=True)
        refused = refused_keys(user_level, config)
        if refused:
            name, reason = next(iter(refused.items()))
            raise KeyNotSent(
                f"{source} [[llm.providers]] {name!r}: {reason}. A project's config may not "
                "send your keys to a URL it chooses, trusted or not. If you trust that "
                f"server, declare the provider in your user config ({settings.user_file}) "
                "with that base_url and api_key_env; for a server that needs no key, set "
                'api_key_env = "" in the project.'
            )
    return config


def project_key_refusals(settings: Settings) -> dict[str, str]:
    """The project's providers whose key would not be sent even once trusted, and why.

    For showing what a project asks for before it is trusted (``briotui trust``, the
    TUI's dialog); :func:`models_config` refuses the same pairings.
    """
    if not settings.request.providers:
        return {}
    try:
        user_level = ModelsConfig()
        for data, source, is_project in settings.llm_layers():
            if not is_project:
                user_level = apply_toml(user_level, data, source)
        llm = settings.project.get("llm", {})
        merged = apply_toml(user_level, {"llm": llm}, str(settings.project_file), project=True)
    except ConfigError as error:
        return {
            p.name: f"the config is invalid: {error.message}" for p in settings.request.providers
        }
    return refused_keys(user_level, merged)


def _endpoint(pc: ProviderConfig) -> str:
    url = pc.base_url or ""
    if not url:
        defaults = {kind: u for kind, u in VENDOR_URLS.values()}
        url = defaults.get(pc.kind, "")
    return url.strip().rstrip("/").lower()


def refused_keys(user_level: ModelsConfig, merged: ModelsConfig) -> dict[str, str]:
    """Providers whose key the project's layer would send somewhere it may not.

    A key may go to its vendor's own URL, or to a URL the user's config (``user_level``:
    defaults and the user's file) pairs with that same variable.

    Args:
        user_level: The config before the project's layer.
        merged: The config with the project's layer applied.

    Returns:
        Provider name -> why its key is not sent (empty when all are fine).
    """
    pairs = {(p.api_key_env, _endpoint(p)) for p in user_level.providers.values() if p.needs_key}
    refused: dict[str, str] = {}
    for name, pc in merged.providers.items():
        if not pc.needs_key or user_level.providers.get(name) == pc:
            continue
        endpoint = _endpoint(pc)
        vendor = VENDOR_URLS.get(pc.api_key_env)
        if vendor is not None and pc.kind == vendor[0] and endpoint == vendor[1].lower():
            continue
        if (pc.api_key_env, endpoint) in pairs:
            continue
        refused[name] = (
            f"${pc.api_key_env} would go to {pc.base_url or endpoint}, a URL the project chose"
        )
    return refused


def apply_toml(
    base: ModelsConfig, data: Mapping[str, Any], source: str, *, project: bool = False
) -> ModelsConfig:
    """``base`` overridden by the ``[llm]`` table of a parsed TOML document.

    Args:
        base: The config so far.
        data: The whole parsed document (only ``llm`` is read).
        source: The file name, for error messages.
        project: Whether it is the project's file (its base URLs are marked as such).

    Raises:
        ConfigError: a setting has the wrong type or value.
    """
    llm = data.get("llm")
    if llm is None:
        return base
    where = f"{source} [llm]"
    if not isinstance(llm, dict):
        raise ConfigError(f"{where} must be a table.")
    unknown = set(llm) - {
        "providers",
        "fallback",
        "roles",
        "retry",
        "prices",
        "budget",
        "skip_unconfigured",
        "timeout_s",
        "read_timeout_s",
    }
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; remove or fix them.")

    providers = dict(base.providers)
    for key in ("timeout_s", "read_timeout_s"):
        if key in llm:
            value = _number(llm[key], f"{where} {key}")
            if key == "timeout_s":
                providers = {n: replace(p, timeout_s=value) for n, p in providers.items()}
            else:
                providers = {n: replace(p, read_timeout_s=value) for n, p in providers.items()}
    for index, raw in enumerate(_list(llm.get("providers", []), f"{where} providers")):
        provider = _provider(raw, f"{source} [[llm.providers]] #{index + 1}", providers)
        if "timeout_s" in llm and "timeout_s" not in raw:
            provider = replace(provider, timeout_s=_number(llm["timeout_s"], where))
        if "read_timeout_s" in llm and "read_timeout_s" not in raw:
            provider = replace(provider, read_timeout_s=_number(llm["read_timeout_s"], where))
        if provider.replies and not Path(provider.replies).is_absolute():
            provider = replace(provider, replies=str(Path(source).parent / provider.replies))
        if project and isinstance(raw, dict) and "base_url" in raw:
            provider = replace(provider, project_endpoint=True)
        providers[provider.name] = provider

    fallback = base.fallback
    if "fallback" in llm:
        fallback = _chain(llm["fallback"], f"{where} fallback")
    roles = dict(base.roles)
    raw_roles = llm.get("roles", {})
    if not isinstance(raw_roles, dict):
        raise ConfigError(f"{where} roles must be a table of role = target.")
    for role, value in raw_roles.items():
        roles[role.lower()] = _chain(value, f"{where} roles.{role}")

    retry = base.retry
    if "retry" in llm:
        retry = _retry(llm["retry"], f"{where} retry", retry)
    prices = dict(base.prices)
    raw_prices = llm.get("prices", {})
    if not isinstance(raw_prices, dict):
        raise ConfigError(f"{where} prices must be a table of model = {{input, output}}.")
    for model, value in raw_prices.items():
        if not (
            isinstance(value, dict)
            and isinstance(value.get("input"), int | float)
            and isinstance(value.get("output"), int | float)
        ):
            raise ConfigError(
                f"{where} prices.{model} must be {{input = USD per Mtok, output = USD per Mtok}}."
            )
        prices[model] = Price(float(value["input"]), float(value["output"]))
    budget = base.budget
    if "budget" in llm:
        budget = _budget(llm["budget"], f"{where} budget", budget)
    skip = llm.get("skip_unconfigured", base.skip_unconfigured)
    if not isinstance(skip, bool):
        raise ConfigError(f"{where} skip_unconfigured must be true or false.")

    config = ModelsConfig(
        providers=providers,
        fallback=fallback,
        roles=roles,
        retry=retry,
        prices=prices,
        budget=budget,
        skip_unconfigured=skip,
        sources=(*base.sources, source),
    )
    for target in {*config.fallback, *(t for c in config.roles.values() for t in c)}:
        if target.provider not in providers:
            raise ConfigError(
                f"{where} names provider {target.provider!r}, which is not configured; "
                f"known: {', '.join(sorted(providers))}. Add it under [[llm.providers]].",
            )
    return config


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list.")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where} must be a non-negative number, not {value!r}.")
    return float(value)


def _chain(value: object, where: str) -> tuple[Target, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(Target.parse(item, where) for item in items)


def _provider(raw: object, where: str, existing: Mapping[str, ProviderConfig]) -> ProviderConfig:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f'{where} must be a table with at least name = "..."')
    name: str = raw["name"]
    if "/" in name or not name:
        raise ConfigError(f"{where}: provider name {name!r} must be non-empty without '/'.")
    if "api_key" in raw:
        raise ConfigError(
            f"{where} holds a key in the file. Never write a key into a config file: "
            'remove api_key and set api_key_env = "NAME_OF_ENV_VAR" instead.',
            title="Secret in a config file",
        )
    base = existing.get(name)
    kind = raw.get("kind", base.kind if base else None)
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(PROVIDER_KINDS)}.")
    known = set(ProviderConfig.__dataclass_fields__) - {"project_endpoint"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(known)}.")
    values: dict[str, Any] = {}
    for key in ("model", "base_url", "api_key_env", "replies"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise ConfigError(f"{where}: {key} must be a string.")
            values[key] = raw[key]
    for key in ("timeout_s", "read_timeout_s", "connect_timeout_s"):
        if key in raw:
            values[key] = _number(raw[key], f"{where} {key}")
    if "max_tokens" in raw:
        if not isinstance(raw["max_tokens"], int) or raw["max_tokens"] <= 0:
            raise ConfigError(f"{where}: max_tokens must be a positive integer.")
        values["max_tokens"] = raw["max_tokens"]
    for key in ("free", "tools"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{where}: {key} must be true or false.")
            values[key] = raw[key]
    if base is not None and base.kind == kind:
        return replace(base, **values)
    if "model" not in values and kind != "scripted":
        raise ConfigError(f'{where}: a new provider needs model = "...".')
    values.setdefault("model", "scripted")
    values.setdefault("api_key_env", _DEFAULT_KEY_ENV[kind])
    values.setdefault("free", kind in ("ollama", "scripted"))
    if kind == "scripted" and "replies" not in values:
        raise ConfigError(f'{where}: a scripted provider needs replies = "FILE.json".')
    return ProviderConfig(name=name, kind=kind, **values)


def _retry(raw: object, where: str, base: RetryConfig) -> RetryConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table.")
    values: dict[str, Any] = {}
    for key in ("base_delay_s", "max_delay_s", "multiplier", "jitter"):
        if key in raw:
            values[key] = _number(raw[key], f"{where} {key}")
    if "max_attempts" in raw:
        if not isinstance(raw["max_attempts"], int) or raw["max_attempts"] < 1:
            raise ConfigError(f"{where} max_attempts must be an integer >= 1.")
        values["max_attempts"] = raw["max_attempts"]
    unknown = set(raw) - set(RetryConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}.")
    return replace(base, **values)


def _budget(raw: object, where: str, base: BudgetConfig) -> BudgetConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table.")
    values: dict[str, Any] = {}
    for key in ("task_usd", "session_usd", "agent_usd"):
        if key in raw:
            values[key] = _number(raw[key], f"{where} {key}")
    for key in ("task_tokens", "session_tokens"):
        if key in raw:
            if not isinstance(raw[key], int) or raw[key] < 0:
                raise ConfigError(f"{where} {key} must be a non-negative integer.")
            values[key] = raw[key]
    if "action" in raw:
        if raw["action"] not in ("stop", "pause"):
            raise ConfigError(f'{where} action must be "stop" or "pause".')
        values["action"] = raw["action"]
    unknown = set(raw) - set(BudgetConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}.")
    return replace(base, **values)
