"""Checking each configured model provider before it is needed, for ``briotui doctor``.

:func:`check_providers` looks at every provider in the config: is its key set, does the
server answer (a cheap listing call, not a completion: it costs nothing), does the
server know the configured model where it can tell. Each result says what to do.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from briotui.kernel.llm.config import ModelsConfig, ProviderConfig
from briotui.kernel.llm.failures import redact
from briotui.kernel.llm.router import make_provider, missing_key
from briotui.kernel.llm.streaming import StreamingProvider

Severity = Literal["ok", "warn", "error"]


@dataclass(frozen=True)
class ProviderStatus:
    """How one provider stands.

    Attributes:
        name: The provider's configured name.
        ok: Whether it can answer now.
        detail: What was found, e.g. "reachable at http://127.0.0.1:11434; llama3.2 pulled".
        fix: What to do when not ok ("" when ok).
        kind: anthropic, ollama, openai or scripted.
        model: Its default model.
        in_chain: Whether any chain (fallback or a role) uses it.
        severity: "ok"; "warn" when it fails but another provider in the chain works
            (requests fall back past it); "error" when nothing in the chain works, or
            it fails in a way that stops requests (e.g. a rejected key).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    kind: str = ""
    model: str = ""
    in_chain: bool = True
    severity: Severity = "ok"


async def check_providers(
    config: ModelsConfig,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> list[ProviderStatus]:
    """Check every configured provider, concurrently.

    Args:
        config: The models config (see :func:`~briotui.kernel.llm.config.load_models_config`).
        env: Where keys and ``OLLAMA_HOST`` are read; ``os.environ`` by default.
        timeout_s: Upper bound on each probe.

    Returns:
        One status per provider, in config order.
    """
    environ = os.environ if env is None else env
    used = {t.provider for t in config.fallback} | {
        t.provider for chain in config.roles.values() for t in chain
    }
    names = list(config.providers)
    raw = await asyncio.gather(
        *(_check(config.providers[n], environ, timeout_s, n in used) for n in names)
    )
    any_chain_ok = any(s.ok and s.in_chain for s in raw)
    result: list[ProviderStatus] = []
    for status in raw:
        if status.ok:
            severity: Severity = "ok"
        elif status.severity == "error" or not any_chain_ok:
            severity = "error" if status.in_chain else "warn"
        else:
            severity = "warn"
        result.append(
            ProviderStatus(
                status.name,
                status.ok,
                status.detail,
                status.fix,
                status.kind,
                status.model,
                status.in_chain,
                severity,
            )
        )
    return result


async def _check(
    pc: ProviderConfig, env: Mapping[str, str], timeout_s: float, in_chain: bool
) -> ProviderStatus:
    def status(ok: bool, detail: str, fix: str = "", hard: bool = False) -> ProviderStatus:
        return ProviderStatus(
            pc.name, ok, detail, fix, pc.kind, pc.model, in_chain, "error" if hard else "ok"
        )

    if pc.kind == "scripted":
        replies = pc.replies or ""

        def exists() -> bool:
            return bool(replies) and os.path.isfile(replies)

        if await asyncio.to_thread(exists):
            return status(True, f"scripted replies from {pc.replies}")
        return status(
            False,
            f"scripted replies file {pc.replies!r} not found",
            f'Create it (a JSON array of replies) or fix replies = "..." for {pc.name!r}.',
        )
    reason = missing_key(pc, env)
    if reason is not None:
        return status(
            False,
            reason,
            f"export {pc.api_key_env}=... (your {pc.kind} key), or remove {pc.name!r} from "
            "[llm] fallback and [llm.roles] in .brio/config.toml.",
        )
    # Importing a vendor SDK takes up to a second: never on the event loop.
    provider = await asyncio.to_thread(make_provider, pc, env)
    assert isinstance(provider, StreamingProvider)
    secrets = provider.secrets
    try:
        async with asyncio.timeout(timeout_s):
            models = await _list_models(provider)
    except TimeoutError:
        return status(
            False,
            f"no answer from {provider.base_url} within {timeout_s:g} s",
            _fix_unreachable(pc, provider.base_url),
        )
    except Exception as exc:
        error = provider.failure(exc, pc.model)
        detail = redact(error.message if error else f"{type(exc).__name__}: {exc}", secrets)
        if error is not None and error.cause == "auth":
            return status(
                False,
                detail,
                f"{pc.api_key_env} was refused: set a valid key, or remove {pc.name!r} "
                "from the chain in .brio/config.toml.",
                hard=True,
            )
        return status(False, detail, _fix_unreachable(pc, provider.base_url))
    finally:
        await provider.aclose()
    where = f"reachable at {provider.base_url}"
    if pc.kind == "ollama":
        names = set(models) | {m.removesuffix(":latest") for m in models}
        if pc.model not in names:
            return status(
                False,
                f"{where}, but model {pc.model!r} is not pulled",
                f"ollama pull {pc.model}   (or set model = ... for {pc.name!r})",
            )
        return status(True, f"{where}; {pc.model} pulled")
    if pc.kind == "openai" and pc.base_url and models and pc.model not in models:
        return status(
            False,
            f"{where}, but it serves {', '.join(sorted(models)[:5])}, not {pc.model!r}",
            f"set model = one of those for {pc.name!r} in .brio/config.toml",
        )
    return status(True, f"{where}; key accepted")


async def _list_models(provider: StreamingProvider) -> list[str]:
    """The model names the provider's server lists (a free call).

    Dispatches on ``provider.kind`` rather than importing the provider classes: those
    modules import their SDKs, which must not happen on the event loop.
    """
    client: Any = getattr(provider, "client")  # noqa: B009  # each provider class has one
    if provider.kind == "ollama":
        listing = await client.list()
        return [m.model for m in listing.models if m.model]
    if provider.kind == "anthropic":
        page = await client.models.list(limit=100)
        return [m.id for m in page.data]
    if provider.kind == "openai":
        openai_page = await client.models.list()
        return [m.id for m in openai_page.data]
    return []


def _fix_unreachable(pc: ProviderConfig, base_url: str) -> str:
    if pc.kind == "ollama":
        return (
            f"start Ollama (`ollama serve`) or set OLLAMA_HOST / base_url for {pc.name!r}; "
            f"tried {base_url}"
        )
    return f"check base_url for {pc.name!r} ({base_url}) and your network"
