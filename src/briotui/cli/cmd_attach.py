"""``briotui attach URL``: the TUI against a kernel served by ``briotui serve``.

The same app as ``briotui``: its mirror is fed from the socket and its commands go over
it. Capability prompts and agents' questions the served kernel publishes are asked here
(and withdrawn when another attached client answers first).

``briotui attach --nats nats://HOST:4222 --token-file FILE`` follows instead the state a
kernel publishes on NATS (``briotui serve --nats``): read-only, an observer sees the
tasks, sessions and the conversation but cannot submit, decide or answer prompts.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``attach`` subcommand."""
    attach = sub.add_parser(
        "attach",
        help="start the TUI against a kernel served by `briotui serve`",
        description=(
            "Start the TUI against a kernel that `briotui serve` runs (here or on another "
            "machine): the task tree, the conversation, review and commit work as locally. "
            "With --nats, follow a project's state published on NATS instead, read-only."
        ),
    )
    attach.add_argument(
        "url", nargs="?", help="the ws://... URL `briotui serve` printed (token included)"
    )
    attach.add_argument(
        "--nats",
        metavar="URL",
        help="follow the project's state over NATS (nats://HOST:4222), read-only",
    )
    attach.add_argument(
        "--token-file",
        metavar="FILE",
        type=Path,
        help="with --nats: a file holding the NATS server's token (never on the command line)",
    )
    attach.add_argument(
        "--namespace",
        metavar="NAME",
        help="with --nats: the project's namespace on NATS (default: the project "
        "directory's name); subjects are brio.NAME.*",
    )
    attach.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Handle ``attach``."""
    from briotui.kernel.errors import RemoteError
    from briotui.ui.app import make_app

    if args.nats:
        return _observe(args)
    if args.token_file or args.namespace:
        raise RemoteError(
            "--token-file and --namespace go with --nats (following a project over NATS).",
            title="Option without --nats",
        )
    if not args.url or not str(args.url).startswith(("ws://", "wss://")):
        raise RemoteError(
            "Attach with the ws://... URL `briotui serve` printed (its token included), "
            "or follow over NATS with --nats nats://HOST:4222 --token-file FILE.",
            title="Not a kernel URL",
        )
    app = make_app(args.project, attach=args.url, build=False)
    app.run()
    return int(app.return_code or 0)


def namespace_of(project: str | Path) -> str:
    """The default namespace of a project on NATS, as ``briotui serve --nats`` uses it:
    the hash of the repository's first commit (the same on every clone)."""
    from briotui.kernel.cluster.config import project_namespace

    return project_namespace(Path(project))


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace dropped).

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    from briotui.kernel.errors import ConfigError

    try:
        token = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Cannot read the token file {path} ({getattr(exc, 'strerror', None) or exc}).",
            title="No NATS token",
        ) from None
    if not token:
        raise ConfigError(f"The token file {path} is empty.", title="No NATS token")
    return token


def _observe(args: argparse.Namespace) -> int:
    """``attach --nats``: check the connection and the feed, then the read-only TUI."""
    from briotui.kernel.cluster.observer import ObserverKernel
    from briotui.kernel.cluster.statefeed import subjects
    from briotui.kernel.errors import RemoteError
    from briotui.ui.app import make_app

    if args.url:
        raise RemoteError(
            "Give either a ws://... URL or --nats, not both.", title="Two kernels named"
        )
    token = read_token(args.token_file) if args.token_file else None
    namespace = args.namespace or namespace_of(args.project)
    prefix = f"brio.{namespace}"
    subjects(prefix)  # a bad namespace is an error now
    url = str(args.nats)

    async def check() -> None:  # a wrong token or no kernel: an error here, not in the TUI
        observer = await ObserverKernel.follow(url, prefix, token=token)
        await observer.close()

    asyncio.run(check())

    async def observe() -> ObserverKernel:
        return await ObserverKernel.follow(url, prefix, token=token)

    app = make_app(args.project, attach=url, observe=observe, build=False)
    app.run()
    return int(app.return_code or 0)
