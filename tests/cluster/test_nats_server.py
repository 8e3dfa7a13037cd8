"""The loopback NATS server the cluster tests use really serves requests and JetStream."""

from __future__ import annotations

import nats
import pytest
from nats.errors import Error as NatsError
from tests.cluster.conftest import NatsServer


async def test_request_reply_and_object_store(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url, token=nats_server.token)
    try:

        async def echo(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b"re: " + msg.data)

        await nc.subscribe("t.echo", cb=echo)
        reply = await nc.request("t.echo", b"hi", timeout=2)
        assert reply.data == b"re: hi"
        js = nc.jetstream()
        store = await js.create_object_store("smoke")
        await store.put("blob", b"x" * 100_000)
        got = await store.get("blob")
        assert got.data == b"x" * 100_000
    finally:
        await nc.close()


async def test_a_wrong_token_is_refused(nats_server: NatsServer) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(
            nats_server.url,
            token="wrong",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )
