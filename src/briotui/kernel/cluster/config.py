"""Where the kernel's workers are: the ``[cluster]`` section, its secret, the namespace.

Only the user's config file (or the command line, or the environment) says which NATS
server agents are sent to and with which credentials: a repository's ``.brio/config.toml``
is written by whoever wrote the repository, and pointing the kernel at their server
would hand them the agents' code, tasks and every file an agent reads. A token or a
credentials file named in the project's config is refused with an error; a ``nats`` URL
there is ignored.

User config::

    [cluster]
    nats = "nats://10.0.0.5:4222"
    token_file = "~/.config/briotui/nats.token"   # or: token = "...", creds = "x.creds"
    offer_ms = 300        # how long a worker has to take a run before it runs here
    lost_after_ms = 3000  # a worker silent this long is lost (its runs fail, retried once)
    agents = ["coder"]    # which agents may run on workers (default: all)

``$BRIOTUI_NATS_TOKEN`` overrides the token.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from briotui.kernel.errors import ClusterError

TOKEN_ENV = "BRIOTUI_NATS_TOKEN"
"""The environment variable a NATS token may come from."""

SECRET_KEYS = ("token", "token_file", "creds")


@dataclass(frozen=True)
class ClusterConfig:
    """How to reach the NATS server the workers listen on.

    Attributes:
        nats: The server URL (``nats://host:4222``).
        token: The auth token ("" for none).
        creds: A NATS credentials file (JWT + nkey), or None.
        offer_ms: How long a worker has to accept a run before it runs locally.
        lost_after_ms: How long a worker may be silent before its runs fail as lost.
        agents: Which agents may run on workers (None: every agent).
    """

    nats: str
    token: str = ""
    creds: Path | None = None
    offer_ms: int = 300
    lost_after_ms: int = 3000
    agents: frozenset[str] | None = None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        options: dict[str, Any] = {"servers": [self.nats]}
        if self.token:
            options["token"] = self.token
        if self.creds is not None:
            options["user_credentials"] = str(self.creds)
        return options


def read_token_file(path: Path | str) -> str:
    """The token in ``path`` (first line, stripped).

    Raises:
        ClusterError: the file cannot be read or is empty.
    """
    file = Path(path).expanduser()
    try:
        token = file.read_text(encoding="utf-8").strip().splitlines()
    except OSError as exc:
        raise ClusterError(
            f"Cannot read the NATS token file {file}: {exc.strerror}.",
            title="NATS token file unreadable",
        ) from None
    if not token or not token[0].strip():
        raise ClusterError(f"The NATS token file {file} is empty.", title="NATS token missing")
    return token[0].strip()


def _positive(table: Mapping[str, Any], key: str, default: int, source: str) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ClusterError(
            f"[cluster] {key} in {source} must be a positive integer (milliseconds), "
            f"not {value!r}.",
            title="Invalid cluster setting",
        )
    return value


def refuse_project_secrets(project: Mapping[str, Any], source: str) -> None:
    """Refuse NATS credentials in a repository's config file.

    Raises:
        ClusterError: ``[cluster]`` of the project's file names a token or credentials.
    """
    table = project.get("cluster")
    if not isinstance(table, dict):
        return
    found = [k for k in SECRET_KEYS if k in table]
    if found:
        raise ClusterError(
            f"{source} sets [cluster] {', '.join(found)}: NATS credentials never go in a "
            "repository file (anyone with the repository would have them). Remove them "
            f"there and put them in your own config file's [cluster] section, or in "
            f"${TOKEN_ENV}.",
            title="NATS credentials in the project's config",
        )


def cluster_config(
    user: Mapping[str, Any],
    user_source: str,
    project: Mapping[str, Any] | None = None,
    project_source: str = "",
    *,
    nats: str | None = None,
    token_file: str | None = None,
) -> ClusterConfig | None:
    """The cluster to use, or None for the embedded default (no NATS).

    Args:
        user: The user's parsed config.
        user_source: Its path (for messages).
        project: The project's parsed config (only checked for secrets).
        project_source: Its path.
        nats: A URL from the command line (wins over the config).
        token_file: A token file from the command line.

    Raises:
        ClusterError: a secret in the project's config, or a bad setting.
    """
    if project is not None:
        refuse_project_secrets(project, project_source)
    table = user.get("cluster", {})
    if not isinstance(table, dict):
        raise ClusterError(f"[cluster] in {user_source} must be a table.")
    url = nats or table.get("nats")
    if not url:
        return None
    if not isinstance(url, str) or not url.startswith(("nats://", "tls://", "ws://", "wss://")):
        raise ClusterError(
            f"The NATS URL {url!r} is not one: write it as nats://HOST:4222.",
            title="Invalid NATS URL",
        )
    token = os.environ.get(TOKEN_ENV, "")
    if not token and token_file:
        token = read_token_file(token_file)
    if not token and table.get("token_file"):
        token = read_token_file(str(table["token_file"]))
    if not token and isinstance(table.get("token"), str):
        token = str(table["token"])
    creds = Path(str(table["creds"])).expanduser() if table.get("creds") else None
    agents = table.get("agents")
    if agents is not None and not (
        isinstance(agents, list) and all(isinstance(a, str) for a in agents)
    ):
        raise ClusterError(
            f"[cluster] agents in {user_source} must be a list of agent names.",
            title="Invalid cluster setting",
        )
    return ClusterConfig(
        nats=url,
        token=token,
        creds=creds,
        offer_ms=_positive(table, "offer_ms", 300, user_source),
        lost_after_ms=_positive(table, "lost_after_ms", 3000, user_source),
        agents=frozenset(agents) if agents is not None else None,
    )


def project_namespace(root: Path) -> str:
    """A stable id of the project, for its subjects (``brio.<ns>.*``).

    The hash of the repository's first commit: the same on every clone and machine, so
    observers elsewhere find the project's subjects; a directory without history falls
    back to the hash of its path.
    """
    try:
        out = subprocess.run(
            ["git", "rev-list", "--max-parents=0", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        first = sorted(out.stdout.split())
    except (OSError, subprocess.SubprocessError):
        first = []
    seed = first[0] if first else str(root.resolve())
    return hashlib.sha256(seed.encode()).hexdigest()[:16]
