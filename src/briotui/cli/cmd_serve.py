"""``briotui serve``: run the project's kernel headless and serve it over WebSocket.

The kernel and its server share one event loop (:class:`briotui.kernel.serve.server.
KernelServer`); ``briotui attach URL`` (or any client of the protocol in
:mod:`briotui.kernel.serve`) watches and steers it. It prints the URL to attach with,
token included, and runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
from typing import TYPE_CHECKING, Any

from briotui.cli.output import print_json, say
from briotui.kernel.errors import BrioError, ServeRefused

if TYPE_CHECKING:
    from briotui.kernel.cluster.statefeed import StatePublisher


def register(sub: Any) -> None:
    """Add the ``serve`` subcommand."""
    serve = sub.add_parser(
        "serve",
        help="run the kernel headless and serve it to `briotui attach` over WebSocket",
        description=(
            "Run the project's kernel without a UI and serve its live state and its "
            "commands on one WebSocket endpoint. Prints the URL to attach with (it holds "
            "the token stored in your config dir). Capability prompts and agents' "
            "questions wait in the state for any attached client to answer."
        ),
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="where to listen (default 127.0.0.1; another host needs --cert/--key or --insecure)",
    )
    serve.add_argument(
        "--port", type=int, default=8765, help="the port (default 8765; 0 picks a free one)"
    )
    serve.add_argument("--json", action="store_true", help="print the URL as a JSON object")
    serve.add_argument("--cert", metavar="FILE", help="TLS certificate (PEM) for wss://")
    serve.add_argument("--key", metavar="FILE", help="TLS private key (PEM) for wss://")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback host without TLS (the token travels in clear text)",
    )
    serve.add_argument(
        "--provider",
        metavar="SPEC",
        help="where model requests go: scripted:FILE, NAME or NAME/MODEL (default: the config)",
    )
    serve.add_argument(
        "--approve",
        choices=("ask", "never", "all"),
        default="ask",
        help=(
            "calls outside an agent's grants: ask the attached clients (default), deny "
            "(never) or allow once (all)"
        ),
    )
    serve.add_argument(
        "--nats",
        metavar="URL",
        help=(
            "run agents on `briotui worker` processes reached over this NATS server "
            "(default: [cluster] nats in your config; without one every agent runs here)"
        ),
    )
    serve.add_argument(
        "--token-file",
        metavar="FILE",
        help="the NATS token (default: $BRIOTUI_NATS_TOKEN or [cluster] in your config)",
    )
    serve.set_defaults(handler=handle)


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context from ``--cert``/``--key`` (None without them).

    Raises:
        ServeRefused: only one of them is given, or they cannot be loaded; a
            non-loopback host without TLS and without ``--insecure``.
    """
    from briotui.kernel.serve.server import is_loopback

    if bool(args.cert) != bool(args.key):
        raise ServeRefused("Give both --cert and --key (PEM files) to serve over TLS.")
    context: ssl.SSLContext | None = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:
            raise ServeRefused(
                f"Cannot load the TLS certificate or key ({exc}). Check --cert and --key."
            ) from None
    if not is_loopback(args.host):
        say(
            f"warning: serving on {args.host}, reachable from other machines: anyone with "
            "the token can read this project's state and steer its agents.",
            err=True,
        )
        if context is None and not args.insecure:
            raise ServeRefused(
                f"Serving on {args.host} without TLS would send the token in clear text. "
                "Give --cert and --key, or --insecure if the network is trusted."
            )
    return context


def handle(args: argparse.Namespace) -> int:
    """Handle ``serve``."""
    from briotui.cli.cmd_run import parse_provider
    from briotui.kernel.paths import user_config_dir
    from briotui.kernel.serve.token import load_or_create_token
    from briotui.kernel.settings import load_settings

    context = tls_context(args)
    settings = load_settings(args.project)
    provider = parse_provider(args.provider, settings)
    token = load_or_create_token(user_config_dir())
    return asyncio.run(_serve(args, settings, provider, token, context))


async def _serve(
    args: argparse.Namespace,
    settings: Any,
    provider: Any,
    token: str,
    context: ssl.SSLContext | None,
) -> int:
    from briotui.kernel.kernel import Kernel
    from briotui.kernel.serve.server import KernelServer

    kernel = Kernel(args.project, config=settings)
    server = KernelServer(
        kernel,
        token,
        host=args.host,
        port=args.port,
        ssl_context=context,
        provider=provider,
        prompts=args.approve == "ask",
    )
    if args.approve != "ask":
        kernel.set_approvals(args.approve)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    feed: StatePublisher | None = None
    try:
        cluster = await kernel.join_configured_cluster(
            nats=getattr(args, "nats", None), token_file=getattr(args, "token_file", None)
        )
        if cluster is not None:
            cluster.notice = lambda line: say(line, err=True, flush=True)
            from briotui.kernel.cluster.statefeed import publish_state

            # observers elsewhere follow the project: briotui attach --nats URL
            feed = await publish_state(
                kernel.state,
                cluster.link.nc,
                f"brio.{cluster.ns}",
                project=kernel.paths.root.name,
                events=kernel.events,
            )
        kernel.restore()
        with contextlib.suppress(BrioError, OSError):  # without it sessions still work
            await kernel.watch_project()  # a live base: new sessions start in milliseconds
        try:
            await server.start()
        except OSError as exc:
            raise ServeRefused(
                f"Cannot listen on {args.host}:{args.port} ({exc.strerror or exc}). Pick "
                "another --port (0 picks a free one)."
            ) from None
        info = {
            "url": server.url,
            "host": args.host,
            "port": server.port,
            "tls": context is not None,
            "project": str(kernel.paths.root),
            "nats": cluster.config.nats if cluster is not None else None,
            "namespace": cluster.ns if cluster is not None else None,
        }
        if args.json:
            print_json(info)
        else:
            say(f"Serving {kernel.paths.root}")
            say("Attach with:")
            say(f"    briotui attach '{server.url}'")
            if cluster is not None:
                say(
                    f"Agents run on workers at {cluster.config.nats} (project namespace "
                    f"{cluster.ns}); start them with: briotui worker --nats {cluster.config.nats}"
                )
                say(
                    f"Follow it read-only with: briotui attach --nats {cluster.config.nats} "
                    f"--namespace {cluster.ns} --token-file FILE"
                )
            say("Stop with Ctrl-C.", flush=True)
        await stop.wait()
    finally:
        await server.close()
        if feed is not None:
            await feed.close()
        await kernel.close()
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()
    return 0
