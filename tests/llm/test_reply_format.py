"""One replies file drives the scripted provider and the loopback servers alike.

Both read it through ``kernel.llm.scripted.load_replies``; a reply means the same thing
whichever answers it: text and its chunks, usage, the model, an error kind or message,
and ``match``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from briotui.devtools.loopback import LoopbackServer
from briotui.kernel.errors import ConfigError, ProviderError
from briotui.kernel.llm.router import make_provider
from briotui.kernel.llm.scripted import ScriptedProvider, load_replies
from briotui.kernel.llm.types import Completion, CompletionRequest, Message, Provider

from .conftest import ENV, provider_config

REPLIES = [
    {"text": "second answer", "match": "second"},
    "plain reply",
    {"chunks": ["chun", "ked"], "input_tokens": 7, "output_tokens": 3, "model": "m-1"},
    {"error": "rate-limit", "error_message": "slow down"},
    {"error": "the scripted failure"},
]


def ask(words: str) -> CompletionRequest:
    return CompletionRequest(messages=(Message("user", words),), agent="coder", task_id="t")


async def answers(provider: Provider) -> list[tuple[str, list[str], object]]:
    got: list[tuple[str, list[str], object]] = []
    for words in ("first question", "second question", "third", "fourth", "fifth"):
        deltas: list[str] = []
        try:
            done: Completion = await provider.complete(ask(words), deltas.append)
        except ProviderError as error:
            got.append(("error", deltas, (error.cause, error.message)))
        else:
            got.append((done.text, deltas, (done.usage.input_tokens, done.usage.output_tokens)))
    return got


async def test_one_replies_file_for_the_scripted_provider_and_a_loopback_server(
    tmp_path: Path,
) -> None:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps(REPLIES), encoding="utf-8")
    scripted = await answers(ScriptedProvider.from_file(file))
    async with LoopbackServer("openai", load_replies(file)) as server:
        wire = await answers(make_provider(provider_config(server), ENV))
    for got in (scripted, wire):
        assert got[0][:2] == ("plain reply", ["plain ", "reply"])
        assert got[1][:2] == ("second answer", ["second ", "answer"])
        assert got[2] == ("chunked", ["chun", "ked"], (7, 3))
        assert got[3][0] == "error"
        assert got[3][2][0] == "rate-limit"  # type: ignore[index]
        assert "slow down" in got[3][2][1]  # type: ignore[index]
        assert got[4][0] == "error"
        assert "the scripted failure" in got[4][2][1]  # type: ignore[index]


async def test_the_reply_names_its_model_on_either_side(tmp_path: Path) -> None:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps([{"text": "hi", "model": "m-1"}]), encoding="utf-8")
    done = await ScriptedProvider.from_file(file).complete(ask("hello"))
    async with LoopbackServer("anthropic", load_replies(file)) as server:
        wire = await make_provider(provider_config(server), ENV).complete(ask("hello"))
    assert (done.model, wire.model) == ("m-1", "m-1")


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ({"delay_ms": "soon"}, "delay_ms 'soon' is not a whole number"),
        ({"chunks": "abc"}, "chunks 'abc' is not null or a list of strings"),
        ({"txt": "typo"}, "unknown keys ['txt']"),
        (3, "write a string or an object"),
    ],
)
def test_a_malformed_reply_is_refused_with_what_to_fix(
    tmp_path: Path, reply: object, says: str
) -> None:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps(["fine", reply]), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_replies(file)
    assert says in info.value.message
    assert "element 2" in info.value.message


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        ({"text": "one two three", "drop_after": 2}, "malformed"),
        ({"text": "one two three", "truncate_after": 2}, "malformed"),
        ({"text": "one two ", "mid_stream_error": "overloaded"}, "overloaded"),
    ],
)
async def test_a_broken_stream_fails_on_either_side_after_its_deltas(
    tmp_path: Path, reply: dict[str, object], cause: str
) -> None:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps([reply]), encoding="utf-8")
    async with LoopbackServer("openai", load_replies(file)) as server:
        providers = [ScriptedProvider.from_file(file), make_provider(provider_config(server), ENV)]
        for provider in providers:
            deltas: list[str] = []
            with pytest.raises(ProviderError) as info:
                await provider.complete(ask("hello"), deltas.append)
            assert info.value.cause == cause, provider.name
            assert "".join(deltas) == "one two ", provider.name
