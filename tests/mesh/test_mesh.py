"""The mesh: delivery, grants, limits, request/reply and timeouts, from threads and tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from briotui.kernel.errors import (
    MeshClosed,
    MeshDenied,
    MeshError,
    MeshMessageTooLarge,
    MeshPeerNotFound,
    MeshQueueFull,
    MeshTimeout,
)
from briotui.kernel.mesh import Endpoint, Envelope, Mesh, anyone, body_size


@pytest.fixture
def mesh() -> Mesh:
    return Mesh()


def pair(mesh: Mesh, **limits: int) -> tuple[Endpoint, Endpoint]:
    return (
        mesh.register("a", peers=anyone, **limits),
        mesh.register("b", peers={"a"}, **limits),
    )


def serve_once(endpoint: Endpoint, answer: object = None) -> threading.Thread:
    def run() -> None:
        msg = endpoint.receive(10.0)
        assert msg is not None
        endpoint.reply(msg, msg.body if answer is None else answer)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_send_and_receive_pass_the_body_by_reference(mesh: Mesh) -> None:
    a, b = pair(mesh)
    body = {"plan": [1, 2, 3]}
    sent = a.send("b", "plan", body)
    got = b.receive()
    assert got == sent
    assert got is not None
    assert got.body is body
    assert (got.sender, got.to, got.topic, got.wants_reply) == ("a", "b", "plan", False)
    assert b.receive() is None


def test_order_is_kept_and_ids_grow(mesh: Mesh) -> None:
    a, b = pair(mesh)
    for i in range(100):
        a.send("b", "n", str(i))
    got = b.drain()
    assert [m.body for m in got] == [str(i) for i in range(100)]
    assert [m.id for m in got] == sorted(m.id for m in got)


def test_envelope_is_frozen(mesh: Mesh) -> None:
    a, _ = pair(mesh)
    env = a.send("b", "t", "x")
    with pytest.raises(AttributeError):
        env.body = "y"  # type: ignore[misc]


def test_unknown_peer_is_not_found(mesh: Mesh) -> None:
    a, _ = pair(mesh)
    with pytest.raises(MeshPeerNotFound) as caught:
        a.send("nobody", "t", "x")
    assert caught.value.wit_kind == "not-found"
    assert "'nobody'" in caught.value.message


def test_grants_of_both_sides_are_asked(mesh: Mesh) -> None:
    a, b = pair(mesh)
    c = mesh.register("c", peers=lambda other: other.startswith("a"))
    with pytest.raises(MeshDenied) as caught:
        b.send("c", "t", "x")  # b may talk to a only
    assert caught.value.wit_kind == "denied"
    with pytest.raises(MeshDenied):
        c.send("b", "t", "x")  # b does not accept c
    a.send("c", "t", "x")
    c.send("a", "t", "x")
    assert c.receive() is not None
    assert a.receive() is not None


def test_full_queue_is_an_error_not_a_wait(mesh: Mesh) -> None:
    a, b = pair(mesh, queue_size=3)
    for _ in range(3):
        a.send("b", "t", "x")
    with pytest.raises(MeshQueueFull) as caught:
        a.send("b", "t", "x")
    assert caught.value.wit_kind == "unavailable"
    assert "full" in caught.value.message
    b.receive()
    a.send("b", "t", "x")


def test_size_limit_counts_utf8_bytes_of_either_side(mesh: Mesh) -> None:
    a = mesh.register("a", peers=anyone, max_message_bytes=100)
    mesh.register("b", peers=anyone, max_message_bytes=10)
    a.send("b", "t", "x" * 10)
    with pytest.raises(MeshMessageTooLarge) as caught:
        a.send("b", "t", "x" * 11)
    assert caught.value.wit_kind == "too-large"
    with pytest.raises(MeshMessageTooLarge):
        a.send("b", "t", "é" * 6)  # 12 bytes in UTF-8


def test_body_size() -> None:
    assert body_size("abc") == 3
    assert body_size("é") == 2
    assert body_size(b"abcd") == 4
    assert body_size(memoryview(b"ab")) == 2
    assert body_size(None) == 0
    assert body_size({"a": 1}) == len('{"a":1}')


def test_custom_size_of() -> None:
    mesh = Mesh(size_of=lambda body: 1000)
    a = mesh.register("a", peers=anyone, max_message_bytes=999)
    mesh.register("b", peers=anyone)
    with pytest.raises(MeshMessageTooLarge):
        a.send("b", "t", "")


def test_register_checks(mesh: Mesh) -> None:
    mesh.register("a", peers=anyone)
    with pytest.raises(MeshError, match="already on the mesh"):
        mesh.register("a", peers=anyone)
    with pytest.raises(MeshError, match="positive"):
        mesh.register("z", peers=anyone, queue_size=0)
    assert "a" in mesh
    assert mesh.ids() == ["a"]


def test_receive_waits_for_a_message_from_another_thread(mesh: Mesh) -> None:
    a, b = pair(mesh)
    timer = threading.Timer(0.05, a.send, args=("b", "late", "x"))
    timer.start()
    got = b.receive(10.0)
    timer.join()
    assert got is not None
    assert got.topic == "late"


def test_receive_times_out_with_none(mesh: Mesh) -> None:
    _, b = pair(mesh)
    assert b.receive(0.01) is None


def test_request_reply_between_threads(mesh: Mesh) -> None:
    a, b = pair(mesh)
    server = serve_once(b, answer="pong")
    reply = a.request("b", "ping", "hello", 10.0)
    server.join()
    assert isinstance(reply, Envelope)
    assert (reply.sender, reply.to, reply.body, reply.topic) == ("b", "a", "pong", "ping")
    assert reply.in_reply_to is not None


def test_request_times_out(mesh: Mesh) -> None:
    a, b = pair(mesh)
    with pytest.raises(MeshTimeout) as caught:
        a.request("b", "ping", "x", 0.02)
    assert caught.value.wit_kind == "timeout"
    late = b.receive()
    assert late is not None
    assert late.wants_reply
    with pytest.raises(MeshPeerNotFound, match="no longer waits"):
        b.reply(late, "too late")


def test_only_requests_to_me_can_be_replied(mesh: Mesh) -> None:
    a, b = pair(mesh)
    plain = a.send("b", "t", "x")
    with pytest.raises(MeshError, match="not a request"):
        b.reply(plain, "y")


def test_blocking_calls_refuse_to_run_on_the_loop(mesh: Mesh) -> None:
    a, b = pair(mesh)

    async def on_loop() -> None:
        with pytest.raises(MeshError, match="arequest"):
            a.request("b", "t", "x", 1.0)
        with pytest.raises(MeshError, match="areceive"):
            b.receive(1.0)
        assert b.receive(0) is None  # looking without waiting is fine

    asyncio.run(on_loop())


async def test_async_request_answered_by_a_task(mesh: Mesh) -> None:
    a, b = pair(mesh)

    async def serve() -> None:
        msg = await b.areceive(10.0)
        assert msg is not None
        b.reply(msg, msg.body.upper())

    server = asyncio.create_task(serve())
    reply = await a.arequest("b", "shout", "hi", 10.0)
    await server
    assert reply.body == "HI"


async def test_async_request_answered_by_a_thread(mesh: Mesh) -> None:
    a, b = pair(mesh)
    server = serve_once(b, answer="from thread")
    reply = await a.arequest("b", "t", "x", 10.0)
    await asyncio.to_thread(server.join)
    assert reply.body == "from thread"


async def test_thread_request_answered_by_a_task(mesh: Mesh) -> None:
    a, b = pair(mesh)

    async def serve() -> None:
        msg = await b.areceive(10.0)
        assert msg is not None
        b.reply(msg, "from task")

    server = asyncio.create_task(serve())
    reply = await asyncio.to_thread(a.request, "b", "t", "x", 10.0)
    await server
    assert reply.body == "from task"


async def test_async_request_times_out(mesh: Mesh) -> None:
    a, _ = pair(mesh)
    with pytest.raises(MeshTimeout):
        await a.arequest("b", "t", "x", 0.01)
    assert not a._pending


async def test_areceive_times_out_and_wakes_from_a_thread(mesh: Mesh) -> None:
    a, b = pair(mesh)
    assert await b.areceive(0.01) is None
    timer = threading.Timer(0.02, a.send, args=("b", "t", "x"))
    timer.start()
    got = await b.areceive(10.0)
    timer.join()
    assert got is not None


async def test_cancelled_areceive_passes_its_wakeup_on(mesh: Mesh) -> None:
    a, b = pair(mesh)
    first = asyncio.create_task(b.areceive(10.0))
    second = asyncio.create_task(b.areceive(10.0))
    await asyncio.sleep(0)
    a.send("b", "t", "x")  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    got = await asyncio.wait_for(second, 10.0)
    assert got is not None
    assert got.body == "x"


async def test_unregister_wakes_receivers_and_fails_requests(mesh: Mesh) -> None:
    a, b = pair(mesh)
    receiving = asyncio.create_task(b.areceive(10.0))
    asking = asyncio.create_task(a.arequest("b", "t", "x", 10.0))
    await asyncio.sleep(0.01)
    # b's receiver got the request; b leaves before replying.
    assert (await receiving) is not None
    mesh.unregister("b")
    with pytest.raises(MeshPeerNotFound, match="left the mesh"):
        await asyncio.wait_for(asking, 10.0)
    with pytest.raises(MeshClosed):
        b.receive()
    with pytest.raises(MeshPeerNotFound):
        a.send("b", "t", "x")
    assert mesh.unregister("b") == []


def test_unregister_fails_queued_requests_and_returns_unread(mesh: Mesh) -> None:
    a, b = pair(mesh)
    a.send("b", "t", "unread")
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            a.request("b", "t", "x", 10.0)
        except MeshError as exc:
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    while b.qsize() < 2:
        threading.Event().wait(0.001)
    left = mesh.unregister("b")
    thread.join(10)
    assert [m.body for m in left] == ["unread", "x"]
    assert len(errors) == 1
    assert isinstance(errors[0], MeshPeerNotFound)


def test_parked_thread_receiver_wakes_on_unregister(mesh: Mesh) -> None:
    _, b = pair(mesh)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            b.receive(10.0)
        except MeshClosed as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    while not b._waiters:
        threading.Event().wait(0.001)
    mesh.unregister("b")
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1


def test_many_threads_lose_no_message(mesh: Mesh) -> None:
    senders = [mesh.register(f"s{i}", peers=anyone) for i in range(4)]
    sink = mesh.register("sink", peers=anyone, queue_size=100_000)
    per_sender = 2000
    got: list[Envelope] = []

    def consume() -> None:
        while len(got) < per_sender * len(senders):
            msg = sink.receive(10.0)
            assert msg is not None
            got.append(msg)

    def produce(endpoint: Endpoint) -> None:
        for i in range(per_sender):
            endpoint.send("sink", "n", i)

    threads = [threading.Thread(target=consume)]
    threads += [threading.Thread(target=produce, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == per_sender * len(senders)
    for s in senders:
        assert [m.body for m in got if m.sender == s.agent_id] == list(range(per_sender))


def test_concurrent_requests_get_their_own_replies(mesh: Mesh) -> None:
    server = mesh.register("server", peers=anyone)
    clients = [mesh.register(f"c{i}", peers=anyone) for i in range(4)]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            msg = server.receive(0.05)
            if msg is not None:
                server.reply(msg, (msg.sender, msg.body))

    bad: list[object] = []

    def ask(client: Endpoint) -> None:
        for i in range(200):
            reply = client.request("server", "echo", i, 10.0)
            if reply.body != (client.agent_id, i):
                bad.append(reply.body)

    runner = threading.Thread(target=serve)
    runner.start()
    askers = [threading.Thread(target=ask, args=(c,)) for c in clients]
    for t in askers:
        t.start()
    for t in askers:
        t.join(60)
    stop.set()
    runner.join(10)
    assert bad == []
