"""Models config: files, overrides, validation, targets, prices."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from tests.trust_helpers import trust_project

from briotui.kernel.errors import ConfigError
from briotui.kernel.llm.accounting import cost_usd, price_for
from briotui.kernel.llm.config import DEFAULT_PRICES, Price, RetryConfig, Target, load_models_config
from briotui.kernel.llm.failures import redact
from briotui.kernel.llm.retry import backoff_delay
from briotui.kernel.llm.types import Usage


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_files(tmp_path: Path) -> None:
    config = load_models_config(tmp_path, user_file=tmp_path / "none.toml")
    assert [str(t) for t in config.chain_for("coder")] == [
        "anthropic/claude-sonnet-4-6",
        "openai/gpt-4o-mini",
        "ollama/llama3.2",
    ]
    assert config.providers["ollama"].free
    assert config.sources == ()


def test_project_overrides_user(tmp_path: Path) -> None:
    user = write(
        tmp_path / "user" / "config.toml",
        """
[llm]
fallback = ["openai"]
[llm.roles]
reviewer = "openai/gpt-4.1-nano"
coder = "anthropic"
[llm.retry]
max_attempts = 5
""",
    )
    write(
        tmp_path / "proj" / ".brio" / "config.toml",
        """
[llm]
fallback = ["local", "ollama/qwen2.5-coder:7b"]
read_timeout_s = 12
[llm.roles]
coder = ["anthropic/claude-opus-4-6", "local"]
[llm.retry]
base_delay_s = 0.1
[[llm.providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
model = "Qwen/Qwen2.5-Coder-7B-Instruct"
api_key_env = ""
free = true
[llm.prices."my-model"]
input = 1.5
output = 2
""",
    )
    untrusted = load_models_config(tmp_path / "proj", user_file=user)
    assert "local" not in untrusted.providers  # the project's providers wait for trust
    assert str(untrusted.chain_for("Coder")[0]) == "anthropic/claude-sonnet-4-6"
    assert untrusted.retry.base_delay_s == 0.1  # harmless project settings apply anyway
    trust_project(tmp_path / "proj")
    config = load_models_config(tmp_path / "proj", user_file=user)
    assert config.retry.max_attempts == 5
    assert config.retry.base_delay_s == 0.1
    assert [str(t) for t in config.chain_for("Coder")] == [
        "anthropic/claude-opus-4-6",
        "local/Qwen/Qwen2.5-Coder-7B-Instruct",
        "ollama/qwen2.5-coder:7b",
    ]
    assert str(config.chain_for("reviewer")[0]) == "openai/gpt-4.1-nano"
    local = config.providers["local"]
    assert (local.kind, local.needs_key, local.free) == ("openai", False, True)
    assert local.read_timeout_s == 12
    assert config.providers["anthropic"].read_timeout_s == 12
    assert config.prices["my-model"] == Price(1.5, 2.0)
    assert config.prices["gpt-4o"] == DEFAULT_PRICES["gpt-4o"]
    assert len(config.sources) == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[llm\n", "not valid TOML"),
        ('[[llm.providers]]\nname = "x"\nkind = "openai"\nmodel = "m"\napi_key = "sk-1"', "key"),
        ('[llm]\nfallback = ["nobody"]', "'nobody'"),
        ('[[llm.providers]]\nname = "x"\nkind = "mistral"\nmodel = "m"', "kind must be"),
        ("[llm.retry]\nmax_attempts = 0", "max_attempts"),
        ('[llm.budget]\naction = "explode"', "action"),
        ("[llm]\ncolour = 1", "unknown keys"),
    ],
)
def test_bad_settings_name_the_file_and_the_fix(tmp_path: Path, text: str, words: str) -> None:
    file = write(tmp_path / ".brio" / "config.toml", text)
    with contextlib.suppress(ConfigError):
        trust_project(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_models_config(tmp_path, user_file=tmp_path / "none.toml")
    assert words in info.value.message
    assert str(file) in info.value.message


def test_target_parsing() -> None:
    assert Target.parse("anthropic", "t") == Target("anthropic", "")
    assert Target.parse("vllm/meta-llama/Llama-3-8B", "t") == Target(
        "vllm", "meta-llama/Llama-3-8B"
    )
    assert Target.parse({"provider": "ollama", "model": "x:1b"}, "t") == Target("ollama", "x:1b")
    with pytest.raises(ConfigError):
        Target.parse(3, "t")


def test_prices_match_dated_versions_only() -> None:
    assert price_for("claude-sonnet-4-5-20250929", DEFAULT_PRICES) == Price(3.0, 15.0)
    assert price_for("gpt-4o-2024-08-06", DEFAULT_PRICES) == Price(2.5, 10.0)
    assert price_for("gpt-4o-mini", DEFAULT_PRICES) == Price(0.15, 0.6)
    assert price_for("o3-mini", DEFAULT_PRICES) is None
    assert price_for("llama3.2", DEFAULT_PRICES) is None
    assert cost_usd(Usage(2_000_000, 1_000_000), Price(3.0, 15.0)) == pytest.approx(21.0)
    assert cost_usd(Usage(5, 5), None) is None


def test_backoff_grows_and_caps() -> None:
    policy = RetryConfig(base_delay_s=1.0, max_delay_s=5.0, multiplier=2.0, jitter=0.0)
    assert [backoff_delay(policy, n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittery = RetryConfig(base_delay_s=1.0, max_delay_s=5.0, jitter=0.5)
    assert all(1.0 <= backoff_delay(jittery, 1) <= 1.5 for _ in range(20))
    assert backoff_delay(RetryConfig(base_delay_s=0.0), 3) == 0.0


def test_redaction() -> None:
    text = (
        "key sk-ant-api03-abcdefghijk and sk-proj-ABCDEFGHIJKLMNOP, "
        "Bearer abcdefgh12345 mysecretvalue"
    )
    out = redact(text, ["mysecretvalue"])
    for secret in (
        "sk-ant-api03-abcdefghijk",
        "sk-proj-ABCDEFGHIJKLMNOP",
        "abcdefgh12345",
        "mysecretvalue",
    ):
        assert secret not in out
    assert out.count("[redacted]") == 4
