"""The trust dialog in the real app: an untrusted project's providers are never contacted
(not even by the provider check at start), the dialog lists exactly what is asked, and
"Trust" stores the decision and applies the settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.trust_helpers import SECRETS, Recorder, attack_config, recording_server
from textual.widgets import Static

from briotui.ui.app import make_app

from .helpers import wait_until


@pytest.fixture
def server() -> Any:
    with recording_server() as recorder:
        yield recorder


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    # the default chain's anthropic provider must not reach the real service either
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRETS["ANTHROPIC_API_KEY"])


def write_config(project: Path, text: str) -> None:
    (project / ".brio").mkdir(exist_ok=True)
    (project / ".brio" / "config.toml").write_text(text)


def user_chain(config_dir: Path, tmp_path: Path) -> None:
    """The user's own chain: a scripted provider (so the check never leaves the machine)."""
    replies = tmp_path / "mine.json"
    replies.write_text('["hi"]')
    (config_dir / "config.toml").write_text(
        f'[llm]\nfallback = ["mine"]\n[[llm.providers]]\nname = "mine"\nkind = "scripted"\n'
        f'replies = "{replies}"\n'
    )


def dialog_text(app: Any) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query(Static))


async def test_start_in_an_untrusted_project_asks_and_sends_nothing(
    project: Path, config_dir: Path, tmp_path: Path, server: Recorder, secrets_env: None
) -> None:
    from briotui.kernel.settings import load_settings
    from briotui.ui.screens.trust import TrustDialog

    user_chain(config_dir, tmp_path)
    write_config(
        project,
        attack_config(server.url)
        + '\n[tests]\ncommand = "make test"\n[shell]\nallow = [["make", "*"]]\n'
        '[agents.smart]\nshell = ["make *"]\n',
    )
    app = make_app(project, config_dir=config_dir, build=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()  # the provider check at start
        await pilot.pause()
        assert server.requests == [], server.leaked()
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), 10)
        text = dialog_text(app)
        assert f"'evil' (anthropic) at {server.url}, sends $ANTHROPIC_API_KEY" in text
        assert "sends $AWS_SECRET_ACCESS_KEY" in text
        assert "REFUSED" in text  # those keys would never go there, even trusted
        assert "shell command allowed: make *" in text
        assert "agent 'smart' may shell: make *" in text
        assert "test command the pipeline runs: make test" in text
        await pilot.click("#trust")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, TrustDialog)
        assert load_settings(project, user_dir=config_dir).trusted
        stored = json.loads((config_dir / "trust.json").read_text())
        assert str(app.project) in stored["projects"]
        # trusted, the pairing is still refused: nothing reaches the server
        assert "API key not sent" in app.provider_problem
        assert server.requests == [], server.leaked()


async def test_trusting_a_keyless_project_provider_applies_it(
    project: Path, config_dir: Path, tmp_path: Path, server: Recorder, secrets_env: None
) -> None:
    from briotui.ui.screens.trust import TrustDialog

    user_chain(config_dir, tmp_path)
    write_config(
        project,
        f'[llm]\nfallback = ["local"]\n[[llm.providers]]\nname = "local"\nkind = "openai"\n'
        f'base_url = "{server.url}/v1"\nmodel = "m"\napi_key_env = ""\n',
    )
    app = make_app(project, config_dir=config_dir, build=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), 10)
        await app.workers.wait_for_complete()
        await pilot.press("n")  # Not now
        await pilot.pause()
        assert not isinstance(app.screen, TrustDialog)
        assert server.requests == []
        assert not (config_dir / "trust.json").exists()
        # the palette entry opens it again
        app.action_trust_project()
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), 10)
        await pilot.press("t")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: bool(server.requests), 10)
        assert server.leaked() == []
        assert app.workbench.state.get("/provider")["name"] == "local"


async def test_the_palette_lists_trust_this_project(project: Path, config_dir: Path) -> None:
    app = make_app(project, config_dir=config_dir, build=False, demo=True)
    async with app.run_test(size=(120, 40)):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Trust this project" in titles


async def test_a_corrupt_or_unwritable_trust_file_is_a_notice_not_a_traceback(
    project: Path, config_dir: Path, tmp_path: Path
) -> None:
    """trust.json broken after start (palette → Trust), and the trust file's lock not
    writable when the user says Trust: each is a notification with the error's title
    and what to do; the app keeps running."""
    from briotui.ui.screens.trust import TrustDialog

    user_chain(config_dir, tmp_path)
    write_config(project, '[tests]\ncommand = "make test"\n')
    app = make_app(project, config_dir=config_dir, build=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), 10)
        await app.workers.wait_for_complete()
        await pilot.press("n")  # Not now
        await pilot.pause()
        (config_dir / "trust.json").write_text("{ not json")
        app.action_trust_project()  # the palette entry
        await pilot.pause()
        assert app.is_running
        assert not isinstance(app.screen, TrustDialog)
        [notice] = [n for n in app._notifications if n.title == "Trust file unreadable"]
        assert "Delete it" in notice.message
        # a trust file that cannot be written: the lock is a directory
        (config_dir / "trust.json").unlink()
        (config_dir / "trust.json.lock").mkdir()
        app.action_trust_project()
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), 10)
        await pilot.press("t")
        await pilot.pause()
        assert app.is_running
        assert not app.settings.trusted
        assert any(n.title == "Trust not saved" for n in app._notifications), [
            (n.title, n.message) for n in app._notifications
        ]
