"""The ``briotui`` entry point: parse arguments, dispatch to a subcommand, map errors.

Each subcommand lives in its own module (``cmd_*.py``) with ``register(subparsers)``
and a handler returning an exit code. Errors from the kernel reach the user as their
title and message, never as a traceback (``BRIOTUI_DEBUG=1`` shows the traceback too).

A command line naming no subcommand starts the TUI; it is parsed without loading the
subcommands' modules (they import the kernel), so the TUI's first frame does not wait
for the kernel.

Before dispatching, ``-C`` (default: the current directory) is checked and resolved
to the project's root, so every command run in a subdirectory of a repository works on
the repository (one ``.brio/``). Output cut short by a closed pipe
(``briotui sessions list | head``) ends the command quietly, as other CLIs do.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import select
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from briotui import __version__
from briotui.cli import cmd_tui
from briotui.cli.output import Writer, print_error, say
from briotui.kernel import telemetry
from briotui.kernel.errors import BrioError, ProjectNotFound
from briotui.kernel.paths import project_root

SUBCOMMANDS = (
    "cmd_agents",
    "cmd_run",
    "cmd_sessions",
    "cmd_tasks",
    "cmd_replay",
    "cmd_audit",
    "cmd_doctor",
    "cmd_trust",
    "cmd_mcp",
    "cmd_bench",
    "cmd_dev",
    "cmd_serve",
    "cmd_worker",
    "cmd_attach",
)
"""The subcommands' modules under ``briotui.cli``, in the order ``--help`` lists them."""


def _subcommands() -> list[ModuleType]:
    return [importlib.import_module(f"briotui.cli.{name}") for name in SUBCOMMANDS]


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage, help and errors are printed sanitized.

    Its errors echo what was typed (``invalid choice: '...'``), which may be pasted
    agent text; subcommand parsers are of this class too.
    """

    def _print_message(self, message: str, file: Writer | None = None) -> None:
        if message:
            say(message, end="", stream=file or sys.stderr)


_ROOT_VALUE_OPTIONS = frozenset({"-C", "--project", "--provider"})
"""The root options that take a value as the next word."""


def starts_tui(argv: Sequence[str]) -> bool:
    """Whether ``argv`` names no subcommand and asks for no help: the TUI starts."""
    takes_value = False
    for word in argv:
        if takes_value:
            takes_value = False
        elif word in _ROOT_VALUE_OPTIONS:
            takes_value = True
        elif word in ("-h", "--help", "--version", "--") or not word.startswith("-"):
            return False
    return True


def build_parser(*, subcommands: bool = True) -> argparse.ArgumentParser:
    """The full argument parser (also used by the tests and ``--help``).

    Args:
        subcommands: False for the TUI's own options only (no subcommand module loaded).
    """
    parser = Parser(
        prog="briotui",
        description=(
            "A terminal workstation for supervised AI coding. With no subcommand, "
            "starts the TUI in the project directory."
        ),
    )
    parser.add_argument("--version", action="version", version=f"briotui {__version__}")
    parser.add_argument(
        "-C",
        "--project",
        metavar="DIR",
        default=".",
        help="the project directory (default: the current directory)",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        type=Path,
        help="write OpenTelemetry spans to FILE as JSON lines (tracing is off otherwise, "
        "unless [telemetry] or OTEL_EXPORTER_OTLP_ENDPOINT turn it on)",
    )
    cmd_tui.add_arguments(parser)
    if subcommands:
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        for module in _subcommands():
            module.register(sub)
    return parser


EXIT_BROKEN_PIPE = 141
"""The exit code when the reader of our output went away (128 + SIGPIPE, as shells say)."""


def resolve_project(given: str) -> str:
    """The project ``-C`` names (or the current directory is in): its repository's root.

    Raises:
        ProjectNotFound: ``given`` does not exist or is not a directory.
    """
    path = Path(given).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise ProjectNotFound(
            f"{given} {what}. Pass -C with the directory of your project (or run "
            "briotui inside it)."
        )
    return str(project_root(path))


def _stdout_reader_gone() -> bool:
    """Whether our standard output is a pipe whose reader went away (so a broken pipe
    is the reader's ``| head``, not a failure of ours elsewhere)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll here, or no real stdout
        return True


def _quiet_broken_pipe() -> int:
    """Stop writing to a pipe whose reader went away, without a word; the exit code."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush goes nowhere
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run briotui; returns the process exit code."""
    if argv is None:  # the command itself: a crash in native code says where each thread was
        faulthandler.enable()
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(subcommands=not starts_tui(words))
    try:
        args = parser.parse_args(words)
    except SystemExit as done:  # --help, --version or a usage error: printed already
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _quiet_broken_pipe()
        raise done from None
    except BrokenPipeError:
        return _quiet_broken_pipe()
    handler = getattr(args, "handler", cmd_tui.run)
    try:
        args.project = resolve_project(args.project)
        _start_tracing(args)
        code: int = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError as exc:
        if _stdout_reader_gone():
            return _quiet_broken_pipe()
        return _internal_error(exc)
    except BrioError as error:
        print_error(error, as_json=bool(getattr(args, "json", False)))
        return 2
    except KeyboardInterrupt:
        say("Interrupted.", err=True)
        return 130
    except Exception as exc:  # the last line of defence: never a bare traceback
        return _internal_error(exc)
    finally:
        telemetry.shutdown()
    return code


def _start_tracing(args: argparse.Namespace) -> None:
    """Turn OpenTelemetry on if ``--trace``, the user's ``[telemetry]`` or the OTLP
    environment variables ask for it (the project's config cannot)."""
    from briotui.kernel.configfile import read_config_file
    from briotui.kernel.paths import user_config_dir

    file = user_config_dir() / "config.toml"
    telemetry.configure(read_config_file(file), source=str(file), trace_file=args.trace)


def _internal_error(exc: Exception) -> int:
    """Say that ``exc`` is a bug in briotui (the traceback with BRIOTUI_DEBUG=1)."""
    if os.environ.get("BRIOTUI_DEBUG"):
        say(traceback.format_exc(), err=True, end="")
    say(
        f"Internal error: {type(exc).__name__}: {exc}\n"
        "This is a bug in briotui. Run again with BRIOTUI_DEBUG=1 for the traceback "
        "and report it.",
        err=True,
    )
    return 70
