"""One NATS connection with the two object stores the cluster uses, and clear errors.

Both sides (the kernel's dispatcher and a worker) connect through :meth:`Link.connect`:
a wrong token, an unreachable server or a server without JetStream is a
:class:`~briotui.kernel.errors.ClusterError` that says what to do, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.object_store import ObjectStore

from briotui.kernel.cluster import protocol
from briotui.kernel.cluster.config import ClusterConfig
from briotui.kernel.errors import ClusterError

CONNECT_LIMIT_S = 5.0
"""How long connecting may take before the server counts as unreachable."""


class Link:
    """A connection to the cluster's NATS server.

    Attributes:
        nc: The NATS client.
        config: What it connected with.
    """

    def __init__(self, nc: Client, config: ClusterConfig) -> None:
        self.nc = nc
        self.config = config
        self._components: ObjectStore | None = None
        self._blobs: ObjectStore | None = None

    @classmethod
    async def connect(cls, config: ClusterConfig, *, name: str) -> Link:
        """Connect to ``config.nats`` and open the object stores.

        A first attempt without reconnects surfaces a refused token at once; the
        connection kept reconnects by itself afterwards.

        Raises:
            ClusterError: the server is unreachable, refused the credentials, or has
                no JetStream.
        """
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        options = config.connect_options()
        try:
            # nats-py retries a refused first connection without end: bound it
            probe = await asyncio.wait_for(
                nats.connect(
                    **options,
                    name=name,
                    allow_reconnect=False,
                    connect_timeout=3,
                    error_cb=on_error,
                ),
                timeout=CONNECT_LIMIT_S,
            )
            await probe.close()
            nc = await asyncio.wait_for(
                nats.connect(
                    **options,
                    name=name,
                    connect_timeout=3,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    error_cb=on_error,
                ),
                timeout=CONNECT_LIMIT_S,
            )
        except Exception as exc:
            raise _connect_error(config, [*errors, exc]) from None
        link = cls(nc, config)
        try:
            js = nc.jetstream()
            link._components = await _bucket(js, protocol.COMPONENTS)
            link._blobs = await _bucket(js, protocol.BLOBS)
        except Exception as exc:
            await nc.close()
            raise ClusterError(
                f"The NATS server at {config.nats} has no JetStream ({exc}); start it with "
                "-js (nats-server -js), which the cluster needs to move components.",
                title="NATS without JetStream",
            ) from None
        return link

    async def close(self) -> None:
        """Drain and close the connection."""
        with contextlib.suppress(Exception):
            await self.nc.drain()
        with contextlib.suppress(Exception):
            await self.nc.close()

    # -- payloads -------------------------------------------------------------------

    async def pack(self, data: Any) -> bytes:
        """``data`` as a message; one too large for the server goes in the blob store."""
        raw = protocol.dumps(data)
        if len(raw) <= self.nc.max_payload - protocol.BLOB_MARGIN:
            return raw
        assert self._blobs is not None
        name = uuid.uuid4().hex
        await self._blobs.put(name, raw)
        return protocol.dumps({"$blob": name})

    async def unpack(self, raw: bytes) -> Any:
        """The data :meth:`pack` made ``raw`` of (a blob is fetched, then deleted)."""
        data = protocol.loads(raw)
        if isinstance(data, dict) and len(data) == 1 and "$blob" in data:
            assert self._blobs is not None
            name = str(data["$blob"])
            result = await self._blobs.get(name)
            with contextlib.suppress(Exception):
                await self._blobs.delete(name)
            return protocol.loads(result.data or b"")
        return data

    # -- components -------------------------------------------------------------------

    async def has_component(self, sha: str) -> bool:
        """Whether the component ``sha`` is in the store."""
        assert self._components is not None
        try:
            await self._components.get_info(sha)
        except Exception:
            return False
        return True

    async def put_component(self, data: bytes) -> str:
        """Store a component (once per content); its SHA-256."""
        sha = hashlib.sha256(data).hexdigest()
        if not await self.has_component(sha):
            assert self._components is not None
            await self._components.put(sha, data)
        return sha

    async def get_component(self, sha: str) -> bytes:
        """The component ``sha``, checked against its hash.

        Raises:
            ClusterError: it is not in the store, or its bytes do not match the hash.
        """
        assert self._components is not None
        try:
            result = await self._components.get(sha)
        except Exception as exc:
            raise ClusterError(
                f"The component {sha[:12]} is not in the cluster's store ({exc}).",
                title="Component missing",
            ) from None
        data = result.data or b""
        if hashlib.sha256(data).hexdigest() != sha:
            raise ClusterError(
                f"The component {sha[:12]} fetched from the cluster does not match its hash.",
                title="Component damaged",
            )
        return data


async def _bucket(js: Any, name: str) -> ObjectStore:
    try:
        store: ObjectStore = await js.object_store(name)
    except Exception:
        store = await js.create_object_store(name)
    return store


def _connect_error(config: ClusterConfig, errors: list[Exception]) -> ClusterError:
    texts = list(dict.fromkeys(str(e) for e in errors if str(e)))  # once each, in order
    if not texts:
        texts = [f"no answer within {CONNECT_LIMIT_S:.0f} s"]
    text = "; ".join(texts[:2])
    if "Authorization Violation" in text or "Authentication" in text:
        return ClusterError(
            f"The NATS server at {config.nats} refused the credentials: check the token "
            "(--token-file, [cluster] token_file in your config, or $BRIOTUI_NATS_TOKEN) "
            "against the server's.",
            title="NATS refused the token",
        )
    return ClusterError(
        f"Cannot connect to the NATS server at {config.nats} ({text or 'no answer'}). "
        "Check the URL and that nats-server runs there.",
        title="NATS server unreachable",
    )
