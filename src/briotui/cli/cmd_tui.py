"""``briotui`` with no subcommand: start the TUI in the project directory."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the bare ``briotui`` command (the TUI)."""
    # The TUI has no options of its own yet; -C/--project selects the directory.


def run(args: argparse.Namespace) -> int:
    """Start the Textual app (imported here so the CLI starts fast without it)."""
    from briotui.ui.app import make_app

    app = make_app(args.project)
    app.run()
    return int(app.return_code or 0)
