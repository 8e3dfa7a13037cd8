"""The scripted provider: replies read from a JSON file, for tests, demos and CI.

It is a real :class:`~briotui.kernel.llm.types.Provider`, clearly labelled "scripted"
wherever a reply's provenance shows. The file is a JSON array; each element answers
one request, in order:

- a string: the reply text;
- an object: ``{"text": "...", "delay_ms": 0, "error": null, "model": "...",
  "agent": "coder", "match": "words"}`` where ``delay_ms`` waits before answering (to
  test time limits), ``error`` fails the request with that message, and ``agent`` /
  ``match`` make the reply answer only a request from that agent whose messages
  contain those words (agents that run in parallel ask in no fixed order).

A request gets the first unused reply that fits it.

When the replies run out, the next request fails with a clear error.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from briotui.kernel.errors import ConfigError, ProviderError
from briotui.kernel.llm.types import Completion, CompletionRequest, DeltaCallback, Usage

SCRIPTED_MODEL = "scripted"


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer."""

    text: str = ""
    delay_ms: int = 0
    error: str | None = None
    model: str = SCRIPTED_MODEL
    agent: str | None = None
    match: str | None = None

    def fits(self, request: CompletionRequest) -> bool:
        """Whether this reply may answer ``request``."""
        if self.agent is not None and self.agent != request.agent:
            return False
        if self.match is not None:
            return any(self.match in m.content for m in request.messages)
        return True


def _parse_reply(index: int, raw: Any, source: str) -> ScriptedReply:
    if isinstance(raw, str):
        return ScriptedReply(text=raw)
    if isinstance(raw, dict):
        text = raw.get("text", "")
        delay = raw.get("delay_ms", 0)
        error = raw.get("error")
        model = raw.get("model", SCRIPTED_MODEL)
        agent, match = raw.get("agent"), raw.get("match")
        if (
            isinstance(text, str)
            and isinstance(delay, int)
            and all(v is None or isinstance(v, str) for v in (error, agent, match))
            and isinstance(model, str)
        ):
            return ScriptedReply(
                text=text,
                delay_ms=max(0, delay),
                error=error,
                model=model,
                agent=agent,
                match=match,
            )
    raise ConfigError(
        f"Reply {index + 1} in {source} is neither a string nor an object like "
        '{"text": "...", "delay_ms": 0}. Fix that element of the JSON array.',
        title="Scripted replies are malformed",
    )


def _approx_tokens(text: str) -> int:
    """A deterministic token estimate (about four characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


class ScriptedProvider:
    """Answers each request with the next scripted reply, streamed word by word."""

    name = "scripted"

    def __init__(self, replies: Sequence[ScriptedReply], *, source: str = "<memory>") -> None:
        self._replies = list(replies)
        self._used = [False] * len(self._replies)
        self._source = source
        self._lock = asyncio.Lock()

    @classmethod
    def from_file(cls, path: Path | str) -> ScriptedProvider:
        """Load replies from a JSON file.

        Raises:
            ConfigError: the file is missing, not JSON, or not an array of replies.
        """
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{file} does not exist. Pass --provider scripted:FILE with a JSON array "
                'of replies, e.g. ["first reply", "second reply"].',
                title="Scripted replies not found",
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{file} is not readable JSON ({exc}). It must be a JSON array of replies.",
                title="Scripted replies are malformed",
            ) from None
        if not isinstance(data, list):
            raise ConfigError(
                f"{file} holds a JSON {type(data).__name__}, not an array of replies.",
                title="Scripted replies are malformed",
            )
        return cls([_parse_reply(i, r, str(file)) for i, r in enumerate(data)], source=str(file))

    @property
    def remaining(self) -> int:
        """How many replies are left."""
        return self._used.count(False)

    async def complete(
        self, request: CompletionRequest, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """Answer with the next scripted reply."""
        async with self._lock:
            index = next(
                (i for i, r in enumerate(self._replies) if not self._used[i] and r.fits(request)),
                None,
            )
            if index is None:
                left = self._used.count(False)
                raise ProviderError(
                    f"No scripted reply is left for this request from {request.agent or 'an agent'}"
                    f" ({left} of {len(self._replies)} unused in {self._source}, none fitting); "
                    "add replies to the file for this run.",
                    provider=self.name,
                    model=SCRIPTED_MODEL,
                    cause="exhausted",
                    title="Scripted replies ran out",
                )
            self._used[index] = True
            reply = self._replies[index]
        if reply.delay_ms:
            await asyncio.sleep(reply.delay_ms / 1000)
        if reply.error is not None:
            raise ProviderError(
                reply.error, provider=self.name, model=reply.model, cause="scripted"
            )
        if on_delta is not None:
            for chunk in re.findall(r"\S+\s*|\s+", reply.text):
                on_delta(chunk)
        prompt = "".join(m.content for m in request.messages)
        return Completion(
            text=reply.text,
            provider=self.name,
            model=reply.model,
            usage=Usage(_approx_tokens(prompt), _approx_tokens(reply.text)),
        )
