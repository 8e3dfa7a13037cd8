"""``briotui worker``: run agents for kernels on other machines, over NATS.

A worker is compute only: it holds no grants, sessions or keys. Every host call its
agents make is relayed to the kernel that sent the run and checked there (see
:mod:`briotui.kernel.cluster`). It runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from typing import Any

from briotui.cli.output import say


def register(sub: Any) -> None:
    """Add the ``worker`` subcommand."""
    worker = sub.add_parser(
        "worker",
        help="run agents for a kernel elsewhere (over NATS)",
        description=(
            "Join a NATS server and run agents for the kernels that send them there "
            "(`briotui serve --nats URL`, or [cluster] nats in the kernel's config). The "
            "worker holds no grants, sessions or keys: every host call an agent makes is "
            "relayed to its kernel and checked there. Components arrive by content hash "
            "and are compiled once into this machine's cache."
        ),
    )
    worker.add_argument("--nats", metavar="URL", help="the NATS server (default: [cluster] nats)")
    worker.add_argument(
        "--slots", type=int, default=2, help="how many agents run at a time (default 2)"
    )
    worker.add_argument(
        "--token-file",
        metavar="FILE",
        help="the NATS token (default: $BRIOTUI_NATS_TOKEN or [cluster] in your config)",
    )
    worker.add_argument("--name", metavar="ID", help="this worker's id (default: host-random)")
    worker.add_argument(
        "--namespace",
        metavar="NS",
        default="*",
        help="serve only this project's namespace (default: any kernel on the server)",
    )
    worker.add_argument("--json", action="store_true", help="print the worker's id as JSON")
    worker.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Handle ``worker``."""
    from briotui.kernel.cluster.config import cluster_config
    from briotui.kernel.errors import ClusterError
    from briotui.kernel.settings import load_settings

    settings = load_settings(None)
    config = cluster_config(
        settings.user, str(settings.user_file), nats=args.nats, token_file=args.token_file
    )
    if config is None:
        raise ClusterError(
            "Say which NATS server to join: briotui worker --nats nats://HOST:4222 (or "
            "[cluster] nats in your config).",
            title="No NATS server",
        )
    if args.slots < 1:
        raise ClusterError("--slots must be at least 1.", title="Invalid worker setting")
    return asyncio.run(_work(args, config))


async def _work(args: argparse.Namespace, config: Any) -> int:
    from briotui.kernel.cluster.worker import Worker

    worker = Worker(config, slots=args.slots, worker_id=args.name, namespace=args.namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    if not args.json:
        worker.report = lambda line: say(f"ran {line}", flush=True)
    await worker.start()
    info = {"worker": worker.id, "nats": config.nats, "slots": worker.slots}
    if args.json:  # one line: a supervisor reads it to know the worker listens
        say(json.dumps(info), flush=True)
    else:
        say(
            f"Worker {worker.id}: {worker.slots} slot(s) on {config.nats}. Stop with Ctrl-C.",
            flush=True,
        )
    try:
        await stop.wait()
    finally:
        await worker.stop()
    return 0
