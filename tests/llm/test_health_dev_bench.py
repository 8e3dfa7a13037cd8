"""check_providers for doctor, the fake-llm dev command, and the bench function."""

from __future__ import annotations

import asyncio
import io
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from briotui.cli.cmd_dev import serve_fake_llm
from briotui.cli.main import build_parser
from briotui.devtools.bench.llm import bench_llm
from briotui.devtools.loopback import FakeReply, LoopbackServer
from briotui.kernel.llm.config import ModelsConfig, ProviderConfig, apply_toml
from briotui.kernel.llm.health import check_providers
from briotui.kernel.llm.router import build_router
from briotui.kernel.llm.scripted import load_replies
from briotui.kernel.llm.types import CompletionRequest, Message

from .conftest import ENV, KEYS, models_config


async def test_check_providers_all_ok(serve: Any) -> None:
    servers = [await serve(p) for p in ("anthropic", "ollama", "openai")]
    statuses = await check_providers(models_config(servers), env=ENV)
    assert [(s.name, s.ok, s.severity) for s in statuses] == [
        ("anthropic", True, "ok"),
        ("ollama", True, "ok"),
        ("openai", True, "ok"),
    ]
    assert "llama3.2 pulled" in statuses[1].detail


async def test_check_providers_says_what_to_fix(serve: Any) -> None:
    anthropic = await serve("anthropic")
    openai = await serve("openai", api_key="another-key")
    ollama = await serve("ollama", models=["mistral"])
    stopped = await serve("ollama")
    config = models_config([anthropic, openai, ollama])
    gone = replace(config.providers["ollama"], name="gone", base_url=stopped.base_url)
    config = replace(config, providers={**config.providers, "gone": gone})
    await stopped.stop()

    statuses = {s.name: s for s in await check_providers(config, env={})}

    assert not statuses["anthropic"].ok
    assert "ANTHROPIC_API_KEY is not set" in statuses["anthropic"].detail
    assert statuses["anthropic"].fix.startswith("export ANTHROPIC_API_KEY=")
    assert not statuses["openai"].ok  # OPENAI_API_KEY unset too
    assert not statuses["ollama"].ok
    assert "ollama pull llama3.2" in statuses["ollama"].fix
    assert not statuses["gone"].ok
    assert "ollama serve" in statuses["gone"].fix
    assert not statuses["gone"].in_chain
    assert all(s.severity != "ok" for s in statuses.values())


async def test_check_providers_rejected_key_is_an_error(serve: Any) -> None:
    openai = await serve("openai", api_key="another-key")
    ollama = await serve("ollama")
    statuses = {s.name: s for s in await check_providers(models_config([openai, ollama]), env=ENV)}
    assert statuses["ollama"].ok
    assert (statuses["openai"].ok, statuses["openai"].severity) == (False, "error")
    assert KEYS["openai"] not in statuses["openai"].detail
    assert "OPENAI_API_KEY was refused" in statuses["openai"].fix


async def test_fake_llm_prints_a_config_that_works(tmp_path: Path) -> None:
    out = io.StringIO()
    ready: asyncio.Future[LoopbackServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_fake_llm("anthropic", [FakeReply("hi from fake")], out=out, ready=ready)
    )
    server = await asyncio.wait_for(ready, 10)
    try:
        text = out.getvalue()
        assert server.base_url in text
        assert "export ANTHROPIC_API_KEY=fake-key" in text
        assert "user config" in text  # a project config may not send the key there
        snippet = text.split("a URL it chooses):\n", 1)[1].split("\n\nCtrl-C")[0]
        config = apply_toml(ModelsConfig(), tomllib.loads(snippet), "printed")
        router = build_router(config, env={"ANTHROPIC_API_KEY": "fake-key"})
        reply = await router.complete(CompletionRequest(messages=(Message("user", "hi"),)))
        assert (reply.text, reply.provider) == ("hi from fake", "fake-anthropic")
        await router.aclose()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert server._server is None  # stopped cleanly


def test_dev_command_is_registered(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text('["a", {"text": "b", "chunk_delay_ms": 5, "error": null}]')
    args = build_parser().parse_args(
        ["dev", "fake-llm", "--protocol", "ollama", "--replies", str(replies), "--port", "0"]
    )
    assert args.protocol == "ollama"
    assert [r.text for r in load_replies(args.replies)] == ["a", "b"]


async def test_bench_reports_each_protocol() -> None:
    results = await bench_llm(protocols=("openai",), rounds=3, deltas=20)
    assert [r.unit for r in results] == ["ms", "us", "ms"]
    assert [r.target for r in results] == [5.0, 50.0, None]
    assert all(isinstance(r.value, float) for r in results)
    assert all(r.name.startswith("llm openai:") for r in results)


def test_scripted_kind_in_config(tmp_path: Path) -> None:
    brio = tmp_path / ".brio"
    brio.mkdir()
    (brio / "demo.json").write_text('["x"]')
    data = tomllib.loads(
        '[llm]\nfallback = ["demo"]\n[[llm.providers]]\nname = "demo"\nkind = "scripted"\n'
        'replies = "demo.json"\n'
    )
    config = apply_toml(ModelsConfig(), data, str(brio / "config.toml"))
    demo = config.providers["demo"]
    assert isinstance(demo, ProviderConfig)
    assert demo.replies == str(brio / "demo.json")


async def test_the_fake_llm_default_model_passes_the_provider_check() -> None:
    """Regression: `dev fake-llm` printed a model its server did not list, so doctor
    and the TUI said the provider could not answer."""
    for protocol in ("openai", "anthropic", "ollama"):
        out = io.StringIO()
        ready: asyncio.Future[LoopbackServer] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve_fake_llm(protocol, [FakeReply("hi")], out=out, ready=ready)  # type: ignore[arg-type]
        )
        try:
            await ready
            snippet = "\n".join(
                line
                for line in out.getvalue().splitlines()
                if line.startswith(
                    ("[", "name", "kind", "base_url", "model", "api_key_env", "fallback")
                )
            )
            config = apply_toml(ModelsConfig(), tomllib.loads(snippet), "fake-llm snippet")
            env = {"OPENAI_API_KEY": "fake-key", "ANTHROPIC_API_KEY": "fake-key"}
            [status] = [
                s for s in await check_providers(config, env=env) if s.name == f"fake-{protocol}"
            ]
            assert status.ok, status.detail
        finally:
            task.cancel()
