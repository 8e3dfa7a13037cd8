"""A served kernel on a loopback port for the serve tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from briotui.kernel.kernel import Kernel
from briotui.kernel.serve.server import KernelServer

TOKEN = "test-token-0123456789abcdef"


@asynccontextmanager
async def served(project: Path, **options: Any) -> AsyncIterator[tuple[Kernel, KernelServer]]:
    """A real kernel over ``project`` and its server on 127.0.0.1 (a free port)."""
    kernel = Kernel(project)
    server = KernelServer(kernel, TOKEN, port=0, **options)
    await server.start()
    try:
        yield kernel, server
    finally:
        await server.close()
        await kernel.close()


def audit_commands(kernel: Kernel) -> list[dict[str, Any]]:
    """The audit rows of clients' commands, oldest first."""
    return [r.to_dict() for r in kernel.capabilities().audit.rows() if r.capability == "command"]
