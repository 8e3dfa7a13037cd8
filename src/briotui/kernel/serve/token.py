"""The bearer token a served kernel's clients present, kept in the user's config dir.

Generated on first start (``secrets``), stored in ``<user config dir>/serve-token``
with mode 0600 (like ``trust.json``), and compared in constant time. Anyone who can
read the file can attach, so it is never printed except in the attach URL.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from briotui.kernel.errors import ConfigError

TOKEN_FILE: Final = "serve-token"


def token_path(directory: Path) -> Path:
    """Where the token lives in the user's config dir ``directory``."""
    return directory / TOKEN_FILE


def load_or_create_token(directory: Path) -> str:
    """The stored token, generated (and stored with mode 0600) on first use.

    A token file readable by others is made private again (mode 0600).

    Raises:
        ConfigError: the file cannot be read or written, or holds no token.
    """
    path = token_path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                os.chmod(path, 0o600)
            token = path.read_text(encoding="utf-8").strip()
        else:
            token = secrets.token_urlsafe(32)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, (token + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"The serve token {path} cannot be read or written ({exc.strerror or exc}). "
            "Fix its permissions, or delete it to get a new one.",
            title="Serve token unreadable",
        ) from None
    if len(token) < 16:
        raise ConfigError(
            f"{path} holds no usable token. Delete it; `briotui serve` makes a new one.",
            title="Serve token unreadable",
        )
    return token


def reset_token(directory: Path) -> None:
    """Forget the stored token (the next start makes a new one)."""
    with contextlib.suppress(FileNotFoundError):
        token_path(directory).unlink()


def token_matches(given: str | None, token: str) -> bool:
    """Whether ``given`` is ``token`` (constant time; None never matches)."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


__all__ = ["TOKEN_FILE", "load_or_create_token", "reset_token", "token_matches", "token_path"]
