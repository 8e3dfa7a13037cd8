"""``briotui attach URL``: the TUI against a kernel served by ``briotui serve``.

The same app as ``briotui``: its mirror is fed from the socket and its commands go over
it. Capability prompts and agents' questions the served kernel publishes are asked here
(and withdrawn when another attached client answers first).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``attach`` subcommand."""
    attach = sub.add_parser(
        "attach",
        help="start the TUI against a kernel served by `briotui serve`",
        description=(
            "Start the TUI against a kernel that `briotui serve` runs (here or on another "
            "machine): the task tree, the conversation, review and commit work as locally."
        ),
    )
    attach.add_argument("url", help="the ws://... URL `briotui serve` printed (token included)")
    attach.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Handle ``attach``."""
    from briotui.kernel.errors import RemoteError
    from briotui.ui.app import make_app

    if not str(args.url).startswith(("ws://", "wss://")):
        raise RemoteError(
            "Attach with the ws://... URL `briotui serve` printed (its token included).",
            title="Not a kernel URL",
        )
    app = make_app(args.project, attach=args.url, build=False)
    app.run()
    return int(app.return_code or 0)
