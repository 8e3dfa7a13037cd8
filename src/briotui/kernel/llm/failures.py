"""Turning what an SDK raises into one clear ProviderError, with every secret redacted.

The three SDKs raise different things (``anthropic.APIStatusError``, ``openai.APIStatusError``,
``ollama.ResponseError``, bare ``httpx``/``httpx2`` transport errors mid-stream,
``json.JSONDecodeError`` on a garbled line). Providers reduce them to a *cause* and
whether it is *retryable*; this module holds the shared table and the wording, so a user
sees the same kind of message whichever vendor failed.

Causes and what the router does with them:

============  =========  ============================================================
cause         retryable  typical source
============  =========  ============================================================
auth          no         401/403: bad or missing key
not-found     no         404: unknown model (or a wrong base URL)
bad-request   no         400/413/422: the request itself is wrong
rate-limit    yes        429
server        yes        500, 502, 504, other 5xx, 408, 409
overloaded    yes        529 (Anthropic), 503
connection    yes        refused, reset, DNS
timeout       yes        no bytes within the read timeout, or the total deadline passed
malformed     yes        a stream that is not valid JSON, or ends without its final event
============  =========  ============================================================

Cancellation is not an error here: ``asyncio.CancelledError`` always propagates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from briotui.kernel.errors import ProviderError

Cause = str
"""One of the causes in the module table (plain ``str`` to match ``ProviderError.cause``)."""

RETRYABLE_CAUSES = frozenset(
    {"rate-limit", "server", "overloaded", "connection", "timeout", "malformed"}
)
"""Causes where trying again, or the next provider, may help."""

_KEY_PATTERNS = (
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"sk-[A-Za-z0-9_\-]{12,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=]{8,}"),
    re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9_\-.=]{8,}"),
)

REDACTED = "[redacted]"

_HINTS = {
    "auth": "check the key in {key_env}, or pick another provider in .brio/config.toml",
    "not-found": (
        "check the model name (and base_url) for provider '{provider}' in .brio/config.toml"
    ),
    "bad-request": "the request was refused as invalid; this is not retried",
    "rate-limit": "the provider is rate limiting; retry later or add a fallback provider",
    "server": "the provider's server failed; retry later or add a fallback provider",
    "overloaded": "the provider is overloaded; retry later or add a fallback provider",
    "connection": "check that the server at {base_url} is running and reachable",
    "timeout": "the provider did not answer in time; raise timeout_s or check the server",
    "malformed": "the provider's stream was cut short or garbled; nothing was kept",
}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and anything shaped like an API key removed.

    Args:
        text: Any message that may reach a user, a log or the database.
        secrets: Exact secret values to remove (the configured keys).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.re.groups else "") + REDACTED,
            text,
        )
    return text


def cause_of_status(status: int) -> Cause:
    """The cause an HTTP status code means."""
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not-found"
    if status == 429:
        return "rate-limit"
    if status in (503, 529):
        return "overloaded"
    if status in (408, 409) or status >= 500:
        return "server"
    return "bad-request"


_ERROR_TYPES = {
    # Anthropic's error.type values
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "not-found",
    "invalid_request_error": "bad-request",
    "request_too_large": "bad-request",
    "rate_limit_error": "rate-limit",
    "api_error": "server",
    "overloaded_error": "overloaded",
    # OpenAI's error.code / error.type values
    "invalid_api_key": "auth",
    "model_not_found": "not-found",
    "rate_limit_exceeded": "rate-limit",
    "insufficient_quota": "rate-limit",
    "server_error": "server",
}


def cause_of_body(body: object) -> Cause | None:
    """The cause an error body names (Anthropic ``error.type``, OpenAI ``error.code``)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            for key in ("code", "type"):
                value = inner.get(key)
                if isinstance(value, str) and value in _ERROR_TYPES:
                    return _ERROR_TYPES[value]
    return None


def message_of_body(body: object) -> str | None:
    """The human message inside a vendor's error body, if there is one."""
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            return text.strip() or None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message")
            if isinstance(message, str):
                return message
        elif isinstance(inner, str):
            return inner
    return None


def transport_cause(exc: BaseException, *, streaming: bool) -> Cause | None:
    """The cause of an ``httpx``/``httpx2`` transport error, or None if ``exc`` is not one.

    Both HTTP libraries share class names, so the check reads the class hierarchy's
    names rather than importing either.

    Args:
        exc: The exception.
        streaming: Whether the reply had started; a protocol error then means the
            stream was cut short ("malformed").
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    module = type(exc).__module__.split(".")[0]
    if module not in ("httpx", "httpx2", "httpcore", "h11") and not isinstance(
        exc, ConnectionError | TimeoutError
    ):
        return None
    if "TimeoutException" in names or isinstance(exc, TimeoutError):
        return "timeout"
    if streaming and ("ProtocolError" in names or "RemoteProtocolError" in names):
        return "malformed"
    if names & {"TransportError", "NetworkError", "ProtocolError", "ConnectionError"}:
        return "connection"
    return None


def provider_error(
    *,
    provider: str,
    model: str,
    cause: Cause,
    detail: str,
    secrets: Iterable[str] = (),
    key_env: str = "",
    base_url: str = "",
) -> ProviderError:
    """A ProviderError naming provider, model and cause, with what to do, secrets redacted.

    Args:
        provider: The provider's configured name.
        model: The model asked for.
        cause: One of the causes in the module table.
        detail: What the provider or the transport said.
        secrets: Values to redact from the message.
        key_env: The environment variable holding the key (for the hint).
        base_url: The server address (for the hint).
    """
    hint = _HINTS.get(cause, "").format(
        key_env=key_env or "the provider's api_key_env",
        provider=provider,
        base_url=base_url or "the configured base_url",
    )
    text = f"{provider}/{model}: {cause}: {detail.strip() or 'no detail'}"
    if hint:
        text += f" ({hint})"
    return ProviderError(
        redact(text, secrets),
        provider=provider,
        model=model,
        cause=cause,
        retryable=cause in RETRYABLE_CAUSES,
        title=_TITLES.get(cause),
    )


_TITLES = {
    "auth": "Model provider refused the key",
    "not-found": "Model not found",
    "bad-request": "Model provider refused the request",
    "rate-limit": "Model provider is rate limiting",
    "server": "Model provider failed",
    "overloaded": "Model provider is overloaded",
    "connection": "Model provider unreachable",
    "timeout": "Model provider timed out",
    "malformed": "Model reply was cut short or garbled",
}


def stainless_cause(sdk: Any, exc: Exception, *, streaming: bool) -> Cause | None:
    """The cause of a transport failure from a Stainless-generated SDK (anthropic, openai).

    Both SDKs raise ``APITimeoutError`` and ``APIConnectionError`` from the module given
    as ``sdk``; once a reply has started, a broken connection means a cut-short stream.
    """
    if isinstance(exc, sdk.APITimeoutError):
        return "timeout"
    if isinstance(exc, sdk.APIConnectionError):
        return "malformed" if streaming else "connection"
    return None


def stainless_status_text(sdk: Any, exc: Exception) -> str | None:
    """``HTTP <status>: <message>`` for a Stainless SDK's ``APIStatusError``, else None."""
    if isinstance(exc, sdk.APIStatusError):
        return f"HTTP {exc.status_code}: {message_of_body(exc.body) or exc.message}"
    return None
