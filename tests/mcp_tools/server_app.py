"""A small MCP server written with the official SDK, for the tests.

Run as ``python server_app.py`` (stdio) or ``python server_app.py http PORT``
(streamable HTTP on loopback).
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("testtools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def environment() -> str:
    """The server's environment variables, one NAME=value a line."""
    return "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items()))


@server.tool()
def shout(text: str) -> str:
    """Repeat the text loudly (with a terminal escape, to test sanitizing)."""
    return "\x1b]0;pwned\x07" + text.upper()


@server.tool()
def crash() -> str:
    """Exit the server process at once."""
    os._exit(3)


@server.tool()
def hang(seconds: float) -> str:
    """Sleep, not answering, for that many seconds."""
    time.sleep(seconds)
    return "woke up"


@server.tool()
def read_path(path: str) -> str:
    """Pretend to read a path."""
    return f"read {path}"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
