"""Reading one TOML config file, with the one error text for a file that does not parse.

:mod:`briotui.kernel.settings` builds the settings from the user's and the project's
files through it; the agent discovery reads the user's limits through it too.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from briotui.kernel.errors import ConfigFileError


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse one TOML config file; an absent file is empty.

    Raises:
        ConfigFileError: it cannot be read or is not valid TOML (names the file).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError.of(path, str(exc)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError.of(path, str(exc)) from None
