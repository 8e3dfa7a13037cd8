"""``briotui`` with no subcommand: start the TUI in the project directory."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the bare ``briotui`` command (the TUI)."""
    parser.add_argument(
        "--provider",
        metavar="SPEC",
        help=(
            "where model requests go: scripted:FILE (a JSON array of replies), or a "
            "provider from the config, NAME or NAME/MODEL (default: the configured "
            "fallback chain)"
        ),
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="try briotui without a model: canned replies from the scripted demo (labelled DEMO)",
    )


def run(args: argparse.Namespace) -> int:
    """Start the Textual app (imported here so the CLI starts fast without it).

    Nothing here imports the kernel's runtime: the app imports and starts the kernel
    after its first frame. Only ``--provider`` needs the model providers now.
    """
    from briotui.kernel.errors import ConfigError
    from briotui.kernel.settings import Settings, load_settings
    from briotui.ui.app import make_app

    spec = getattr(args, "provider", None)
    settings: Settings | None
    try:
        settings = load_settings(args.project)  # once, for the provider, the app and the kernel
    except ConfigError:
        if spec:
            raise
        settings = None  # the app reads them on mount and shows the error in the UI
    provider = None
    if spec:
        from briotui.cli.cmd_run import parse_provider

        provider = parse_provider(spec, settings or args.project)
    app = make_app(
        args.project,
        provider=provider,
        demo=bool(getattr(args, "demo", False)),
        settings=settings,
    )
    app.run()
    return int(app.return_code or 0)
