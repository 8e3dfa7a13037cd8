"""The UI's settings: theme and keymap from ``[ui]`` in the user and project config.

``~/.config/briotui/config.toml`` (or ``$BRIOTUI_CONFIG_DIR/config.toml``) holds the
user's choices; ``.brio/config.toml`` in the project may override them::

    [ui]
    theme = "brio-light"

    [ui.keymap]
    review = "f2"          # binding id = key(s)
    submit-focus = "i"

The chosen theme is written back to the user file (only the ``theme`` line of ``[ui]``
changes; the rest of the file is kept as it is).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from briotui.kernel.errors import ConfigError
from briotui.kernel.settings import Settings


@dataclass(frozen=True)
class UiConfig:
    """What the UI reads from the config files."""

    theme: str | None = None
    """The theme's name, or None for the default."""
    keymap: dict[str, str] = field(default_factory=dict)
    """Binding id -> key string (comma-separated alternatives)."""


def _ui_table(data: Mapping[str, Any], source: Path | None) -> UiConfig:
    ui = data.get("ui", {})
    if not isinstance(ui, dict):
        raise ConfigError(f"{source}: [ui] must be a table.", title="Invalid config")
    theme = ui.get("theme")
    if theme is not None and not isinstance(theme, str):
        raise ConfigError(f"{source}: [ui] theme must be a string.", title="Invalid config")
    keymap = ui.get("keymap", {})
    if not isinstance(keymap, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keymap.items()
    ):
        raise ConfigError(
            f'{source}: [ui.keymap] maps binding ids to keys, e.g. review = "f2".',
            title="Invalid config",
        )
    return UiConfig(theme=theme, keymap=dict(keymap))


def ui_config(settings: Settings) -> UiConfig:
    """The UI settings from loaded settings: the user's, then the project's on top.

    Raises:
        ConfigError: a ``[ui]`` table has wrong types.
    """
    user = _ui_table(settings.user, settings.user_file)
    project = _ui_table(settings.project, settings.project_file)
    return UiConfig(theme=project.theme or user.theme, keymap={**user.keymap, **project.keymap})


_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")
_THEME_LINE = re.compile(r"^\s*theme\s*=")


def save_theme(user_dir: Path, name: str) -> Path:
    """Write ``[ui] theme = name`` into the user's config file, keeping everything else.

    Returns:
        The file written.
    """
    path = user_dir / "config.toml"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    entry = f'theme = "{name}"'
    section: str | None = None
    ui_header: int | None = None
    for i, line in enumerate(lines):
        match = _SECTION.match(line)
        if match:
            section = match.group(1).strip()
            if section == "ui":
                ui_header = i
            continue
        if section == "ui" and _THEME_LINE.match(line):
            lines[i] = entry
            break
    else:
        if ui_header is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += ["[ui]", entry]
        else:
            lines.insert(ui_header + 1, entry)
    user_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
