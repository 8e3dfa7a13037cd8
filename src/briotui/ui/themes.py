"""Themes as data: TOML files loaded into :class:`textual.theme.Theme` objects.

The shipped themes live in ``themes/`` (see :func:`briotui.kernel.paths.themes_dir`);
users add their own in ``<config dir>/themes/``. A user theme with a shipped theme's
name replaces it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from textual.theme import Theme

from briotui.kernel.errors import ConfigError

DEFAULT_THEME: Final = "brio-dark"
"""The theme used when the user chose none (or chose one that no longer exists)."""

_COLOURS: Final = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "warning",
    "error",
    "success",
)


def theme_from_toml(data: dict[str, Any], source: str) -> Theme:
    """A Textual theme from the parsed TOML of one theme file.

    Raises:
        ConfigError: ``name`` or ``primary`` is missing, or a value has the wrong type.
    """
    name = data.get("name")
    primary = data.get("primary")
    if not isinstance(name, str) or not name or not isinstance(primary, str):
        raise ConfigError(
            f'{source} needs at least `name = "..."` and `primary = "#rrggbb"`.',
            title="Invalid theme",
        )
    colours: dict[str, str] = {}
    for key in _COLOURS[1:]:
        value = data.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise ConfigError(
                    f"{source}: `{key}` must be a colour string.", title="Invalid theme"
                )
            colours[key] = value
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ConfigError(
            f"{source}: [variables] must map CSS variable names to strings.", title="Invalid theme"
        )
    return Theme(
        name=name,
        primary=primary,
        secondary=colours.get("secondary"),
        accent=colours.get("accent"),
        foreground=colours.get("foreground"),
        background=colours.get("background"),
        surface=colours.get("surface"),
        panel=colours.get("panel"),
        boost=colours.get("boost"),
        warning=colours.get("warning"),
        error=colours.get("error"),
        success=colours.get("success"),
        dark=bool(data.get("dark", True)),
        luminosity_spread=float(data.get("luminosity_spread", 0.15)),
        text_alpha=float(data.get("text_alpha", 0.95)),
        variables=dict(variables),
    )


def load_theme_file(path: Path) -> Theme:
    """The theme in ``path``.

    Raises:
        ConfigError: the file is unreadable, not TOML, or not a theme.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{path} is not a readable TOML theme ({exc}).", title="Invalid theme"
        ) from None
    return theme_from_toml(data, str(path))


def load_themes(dirs: Iterable[Path]) -> tuple[list[Theme], list[ConfigError]]:
    """Every theme in ``dirs`` (later directories win), and the files that failed.

    A broken user theme must not stop the app: its error is returned, not raised.
    """
    themes: dict[str, Theme] = {}
    errors: list[ConfigError] = []
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ConfigError as exc:
                errors.append(exc)
                continue
            themes[theme.name] = theme
    return list(themes.values()), errors
