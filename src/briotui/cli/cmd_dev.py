"""``briotui dev``: tools for working on briotui itself, starting with a fake model server.

``briotui dev fake-llm --protocol anthropic|ollama|openai`` serves the vendor's real wire
protocol on 127.0.0.1 from a replies file, and prints the base URL and the exact
environment and config that point briotui (or any SDK client) at it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from briotui.cli.output import say
from briotui.devtools.loopback import (
    DEFAULT_FAKE_MODEL,
    PROTOCOLS,
    FakeReply,
    LoopbackServer,
    WireProtocol,
    env_hint,
    parse_protocol,
)
from briotui.kernel.llm.scripted import load_replies


def register(sub: Any) -> None:
    """Add the ``dev`` subcommand and its ``fake-llm`` tool."""
    dev = sub.add_parser(
        "dev",
        help="developer tools (a fake model server)",
        description="Tools for developing and trying briotui without real services.",
    )
    tools = dev.add_subparsers(dest="dev_command", metavar="TOOL", required=True)
    fake = tools.add_parser(
        "fake-llm",
        help="serve a vendor's model API on 127.0.0.1 from scripted replies",
        description=(
            "Serve the Anthropic Messages API (SSE), Ollama's /api/chat (NDJSON) or OpenAI "
            "chat completions (SSE) on 127.0.0.1, answering from a replies file. The "
            "official SDKs talk to it unchanged. Prints the base URL and the env/config to use."
        ),
    )
    fake.add_argument("--protocol", required=True, choices=PROTOCOLS, help="which vendor API")
    fake.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    fake.add_argument(
        "--replies",
        metavar="FILE",
        type=Path,
        help=(
            'JSON array of replies: "text" or {"text", "chunk_delay_ms", "error", ...}; '
            "the same format as --provider scripted:FILE"
        ),
    )
    fake.add_argument(
        "--once",
        action="store_true",
        help="answer each reply once, then fail with a server error (default: start over)",
    )
    fake.add_argument(
        "--api-key", metavar="KEY", help="only accept this key (default: accept any key)"
    )
    fake.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="only serve these models; others get the vendor's 404 (repeatable)",
    )
    fake.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the fake server until interrupted."""
    protocol = parse_protocol(args.protocol)
    replies = (
        load_replies(args.replies)
        if args.replies
        else [FakeReply(f"Hello from the fake {protocol} server.")]
    )
    try:
        asyncio.run(
            serve_fake_llm(
                protocol,
                replies,
                port=args.port,
                api_key=args.api_key,
                models=args.model,
                cycle=not args.once,
            )
        )
    except KeyboardInterrupt:
        say("\nstopped.", err=True)
    return 0


async def serve_fake_llm(
    protocol: WireProtocol,
    replies: Sequence[FakeReply],
    *,
    port: int = 0,
    api_key: str | None = None,
    models: Sequence[str] | None = None,
    cycle: bool = True,
    out: TextIO | None = None,
    ready: asyncio.Future[LoopbackServer] | None = None,
) -> None:
    """Start a loopback server, print how to use it, and serve until cancelled.

    Args:
        protocol: The vendor protocol.
        replies: The scripted replies.
        port: The port (0 for a free one).
        api_key: The only key accepted, or None for any.
        models: The only models served, or None for any.
        cycle: Start the replies over when they run out.
        out: Where the instructions go (stdout by default).
        ready: Resolved with the running server (for tests and embedding).
    """
    stream = out or sys.stdout
    server = LoopbackServer(
        protocol, replies, port=port, api_key=api_key, models=models, cycle=cycle
    )
    await server.start()
    try:
        model = models[0] if models else DEFAULT_FAKE_MODEL
        lines = [
            f"fake {protocol} server: {server.base_url}",
            f"{len(replies)} scripted replies" + (", repeating" if cycle else ", once each"),
            "",
            *env_hint(protocol, server.base_url, key=api_key or "fake-key", model=model),
            "",
            "Ctrl-C stops the server.",
        ]
        say("\n".join(lines), stream=stream, flush=True)
        if ready is not None and not ready.done():
            ready.set_result(server)
        await asyncio.Event().wait()
    finally:
        await server.stop()
