"""A served kernel on a real loopback port with real ``websockets`` clients.

Snapshot + patches reproduce the kernel's state exactly (random state changes from the
loop and from worker threads, clients joining early and late); ``since`` replays or
falls back to a snapshot; a slow client is dropped while a fast one gets everything;
wrong tokens, foreign origins, oversized and malformed messages are refused and change
nothing; a capability prompt is state, answered by the first client, audited with its id.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from tests.conftest import make_git_project
from tests.state.test_state_property import random_op
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from briotui.kernel import contract
from briotui.kernel.caps.model import CapabilityRequest
from briotui.kernel.errors import RemoteClosed, RemoteCommandFailed, RemoteRefused
from briotui.kernel.serve.client import RemoteClient
from briotui.kernel.serve.protocol import CLOSE_SLOW

from .helpers import TOKEN, audit_commands, served


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_git_project(tmp_path / "proj")


async def caught_up(kernel_seq: int, *clients: RemoteClient) -> None:
    for client in clients:
        await client.wait_seq(kernel_seq, within_s=20)


@pytest.mark.parametrize("seed", range(6))
async def test_snapshot_and_patches_reproduce_the_kernels_state(project: Path, seed: int) -> None:
    rng = random.Random(seed)
    async with served(project) as (kernel, server):
        state = kernel.state
        first = RemoteClient(server.url, name="first")
        await first.connect()
        joined: list[RemoteClient] = [first]
        worker_rng = random.Random(seed + 1000)

        def from_a_thread() -> None:  # agents report from worker threads
            for _ in range(40):
                random_op(state, worker_rng)

        for step in range(rng.randint(120, 220)):
            random_op(state, rng)
            if step % 25 == 0:
                await asyncio.to_thread(from_a_thread)
            if rng.random() < 0.04:
                late = RemoteClient(server.url, name=f"late{step}")
                await late.connect()
                joined.append(late)
            if rng.random() < 0.2:
                await asyncio.sleep(0)  # let patches out while changes go on
        state.flush()
        await caught_up(state.seq, *joined)
        current = state.get("")
        for client in joined:
            assert client.tree == current, f"seed {seed}: {client.name} diverged"
            assert client.seq == state.seq
            assert (client.snapshots, client.resyncs) == (1, 0)
        # a client joining now gets exactly the tree too
        fresh = RemoteClient(server.url)
        await fresh.connect()
        assert fresh.tree == current
        assert fresh.seq == state.seq
        for client in [*joined, fresh]:
            await client.close()


async def test_rejoin_with_since_replays_the_missed_patches(project: Path) -> None:
    async with served(project) as (kernel, server):
        client = RemoteClient(server.url, name="rejoiner")
        await client.connect()
        kernel.state.set(["usage", "cost_usd"], 1.0)
        await client.wait_seq(kernel.state.seq)
        seq, tree, hello = client.seq, copy.deepcopy(client.tree), dict(client.hello)
        await client.close()
        for i in range(30):
            kernel.state.set(["tasks", f"t{i}"], {"n": i})
        await asyncio.sleep(0.05)  # the server's subscription receives them
        again = RemoteClient(server.url, name="rejoiner")
        again.tree, again.seq, again.hello = tree, seq, hello  # the mirror it had
        await again.connect(since=seq)
        assert again.snapshots == 0  # resumed: only the missed patches were sent
        await again.wait_seq(kernel.state.seq)
        assert again.tree == kernel.state.get("")
        # patches still in flight when it rejoins reach it too
        kernel.state.set(["tasks", "late"], {"n": -1})
        await again.wait_seq(kernel.state.seq)
        assert again.tree == kernel.state.get("")
        await again.close()


async def test_rejoin_past_the_replay_buffer_gets_a_fresh_snapshot(project: Path) -> None:
    async with served(project, replay=5) as (kernel, server):
        client = RemoteClient(server.url)
        await client.connect()
        seq, tree, hello = client.seq, client.tree, client.hello
        await client.close()
        for i in range(20):
            kernel.state.set(["tasks", f"t{i}"], {"n": i})
        await asyncio.sleep(0.05)
        again = RemoteClient(server.url)
        again.tree, again.seq, again.hello = tree, seq, hello
        await again.connect(since=seq)
        assert again.snapshots == 1
        assert again.seq == kernel.state.seq
        assert again.tree == kernel.state.get("")
        # a since from the future is not trusted either
        future = RemoteClient(server.url)
        future.hello = hello
        await future.connect(since=kernel.state.seq + 100)
        assert future.snapshots == 1
        assert future.tree == kernel.state.get("")
        await again.close()
        await future.close()


async def test_a_since_numbered_by_another_server_gets_a_snapshot(project: Path) -> None:
    async with served(project) as (kernel, server):
        client = RemoteClient(server.url)
        await client.connect()
        kernel.state.set(["tasks", "t"], {"n": 1})
        await client.wait_seq(kernel.state.seq)
        stale = RemoteClient(server.url)
        stale.tree, stale.seq = {"tasks": {"other": {}}}, client.seq  # another run's mirror
        stale.hello = {"instance": "a-restarted-server"}
        await stale.connect(since=client.seq)
        assert stale.snapshots == 1
        assert stale.tree == kernel.state.get("")
        await client.close()
        await stale.close()


async def test_a_client_that_drops_rejoins_on_its_own(project: Path) -> None:
    async with served(project) as (kernel, server):
        client = RemoteClient(server.url, name="auto", rejoin=True)
        await client.connect()
        [(_, connected)] = list(server.clients.items())
        await connected.ws.close()  # the network blips
        await client.closed.wait()
        kernel.state.set(["tasks", "t1"], {"n": 1})
        await client.wait_for(lambda tree: "t1" in tree.get("tasks", {}), within_s=10)
        assert client.tree == kernel.state.get("")
        await client.close()


async def test_a_slow_client_is_dropped_without_delaying_the_others(project: Path) -> None:
    async with served(project, queue_limit=50) as (kernel, server):
        fast = RemoteClient(server.url, name="fast")
        await fast.connect()
        # a client that never reads: its socket fills, then its queue
        slow = await connect(server.url + "&client=slow", max_size=None, max_queue=1)
        blob = "x" * 8192
        for i in range(3000):
            kernel.state.set(["tasks", "big"], {"i": i, "blob": blob})
            if i % 10 == 9:  # the fast client keeps up; nobody waits for the slow one
                await fast.wait_seq(kernel.state.seq, within_s=20)
            if server.dropped:
                break
        assert server.dropped, "the slow client was never dropped"
        [(dropped_id, reason)] = server.dropped
        assert dropped_id.startswith("slow-")
        assert "too slow" in reason
        await fast.wait_seq(kernel.state.seq)
        assert fast.tree == kernel.state.get("")
        assert not fast.closed.is_set()

        # the slow client sees why it was closed once it reads (or the socket is cut)
        async def read_until_closed() -> None:
            async with asyncio.timeout(20):
                while True:
                    await slow.recv()

        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed()
        if closed.value.rcvd is not None:
            assert closed.value.rcvd.code == CLOSE_SLOW
            assert "too slow" in closed.value.rcvd.reason
        # it may rejoin from a snapshot
        rejoined = RemoteClient(server.url, name="slow")
        await rejoined.connect()
        assert rejoined.tree == kernel.state.get("")
        await rejoined.close()
        await fast.close()


async def test_a_wrong_or_missing_token_is_refused_and_changes_nothing(project: Path) -> None:
    async with served(project) as (kernel, server):
        before = (kernel.state.seq, kernel.state.get(""))
        bad = server.url.replace(TOKEN, "not-the-token-0123456789")
        for url in (bad, server.url.split("?")[0]):
            with pytest.raises(RemoteRefused) as refused:
                await RemoteClient(url).connect()
            assert "401" in refused.value.message
        assert not server.clients
        assert (kernel.state.seq, kernel.state.get("")) == before
        # the token may come as a bearer header instead of the query
        async with connect(
            server.url.split("?")[0], additional_headers={"Authorization": f"Bearer {TOKEN}"}
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"


async def test_a_page_of_another_origin_is_refused(project: Path) -> None:
    async with served(project) as (kernel, server):
        with pytest.raises(RemoteRefused) as refused:
            await RemoteClient(server.url, origin="https://evil.example").connect()
        assert "403" in refused.value.message
        with pytest.raises(RemoteRefused):
            await RemoteClient(server.url, origin="null").connect()
        assert not server.clients
        same = RemoteClient(server.url, origin=f"http://127.0.0.1:{server.port}")
        await same.connect()
        assert same.tree == kernel.state.get("")
        await same.close()


async def test_an_oversized_message_closes_the_connection_and_changes_nothing(
    project: Path,
) -> None:
    async with served(project, max_message=4096) as (kernel, server):
        client = RemoteClient(server.url)
        await client.connect()
        before = (kernel.state.seq, kernel.state.get(""))
        with pytest.raises(RemoteClosed):
            await client.command("submit", goal="x" * 10_000, within_s=10)
        await client.closed.wait()
        assert client.close_code == 1009
        assert (kernel.state.seq, kernel.state.get("")) == before
        assert kernel.state.get(["sessions"]) == {}
        assert audit_commands(kernel) == []


MALFORMED: list[Any] = [
    "not json",
    "[1, 2]",
    '"a string"',
    '{"type": "subscribe", "id": 1}',
    '{"type": "command", "name": "submit", "args": {"goal": "x"}}',  # no id
    '{"type": "command", "id": 2, "name": "rm -rf", "args": {}}',
    '{"type": "command", "id": 3, "name": "submit", "args": []}',
    '{"type": "command", "id": 4, "name": "submit", "args": {}}',
    '{"type": "command", "id": 5, "name": "submit", "args": {"goal": 1}}',
    '{"type": "command", "id": 6, "name": "submit", "args": {"goal": "x", "shell": "id"}}',
    '{"type": "command", "id": 7, "name": "decide", "args": {"session": "s", "decision": "yes"}}',
    '{"type": "command", "id": 8, "name": "commit", "args": {"session": "s", "force": "yes"}}',
    '{"type": "command", "id": 9, "name": "decide", '
    '"args": {"session": "s", "decision": "accepted", "hunks": [1]}}',
    '{"type": "command", "id": 10, "name": "commit", "args": {"session": "s", "expected": [{}]}}',
]


async def test_malformed_and_unknown_commands_get_a_typed_error_and_change_nothing(
    project: Path,
) -> None:
    async with served(project) as (kernel, server):
        before = (kernel.state.seq, kernel.state.get(""))
        async with connect(server.url) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            assert json.loads(await ws.recv())["type"] == "snapshot"
            for text in MALFORMED:
                await ws.send(text)
                reply = json.loads(await ws.recv())
                assert reply["type"] == "result", text
                assert reply["ok"] is False, text
                assert reply["error"]["kind"] == "remote-protocol", text
                assert reply["error"]["title"], text
                assert reply["error"]["message"], text
                given = json.loads(text) if text.startswith("{") else None
                assert reply["id"] == (given.get("id") if isinstance(given, dict) else None)
            # the connection is still good
            await ws.send('{"type": "command", "id": "c", "name": "cancel", "args": {"task": "t"}}')
            reply = json.loads(await ws.recv())
            assert reply == {"type": "result", "id": "c", "ok": True, "value": {"cancelled": False}}
        assert (kernel.state.seq, kernel.state.get("")) == before
        assert [r["target"] for r in audit_commands(kernel)] == ["cancel t"]


async def test_a_capability_prompt_is_state_and_the_first_answer_wins(project: Path) -> None:
    async with served(project) as (kernel, server):
        alice = RemoteClient(server.url, name="alice")
        bob = RemoteClient(server.url, name="bob")
        await alice.connect()
        await bob.connect()
        request = CapabilityRequest(  # an agent without grants: it must ask
            "intruder", "write", "README.md", task_id="t-1", session_id="s-1", reason="edit it"
        )
        checking = asyncio.create_task(asyncio.to_thread(kernel.capabilities().check, request))
        tree = await bob.wait_for(lambda tree: bool(tree.get("prompts")))
        [(prompt_id, prompt)] = tree["prompts"].items()
        assert prompt["kind"] == "capability"
        assert (prompt["agent"], prompt["capability"], prompt["target"]) == (
            "intruder",
            "write",
            "README.md",
        )
        await alice.wait_for(lambda tree: prompt_id in tree.get("prompts", {}))
        contract.validate_tree(kernel.state.get(""))  # the prompt fits the state contract
        assert await alice.command("answer", prompt=prompt_id, answer="once") == {}
        with pytest.raises(RemoteCommandFailed) as late:
            await bob.command("answer", prompt=prompt_id, answer="deny")
        assert late.value.kind == "prompt-not-found"
        verdict = await checking
        assert verdict.allowed
        assert verdict.decided_by == "user:once"
        await bob.wait_for(lambda tree: not tree["prompts"])
        rows = [r for r in kernel.capabilities().audit.rows() if r.target == "README.md"]
        assert rows[-1].decided_by == "user:once"
        assert rows[-1].reason == f"answered by client:{alice.client_id}"
        commands = audit_commands(kernel)
        assert [(r["agent"], r["decision"]) for r in commands] == [
            (f"client:{alice.client_id}", "allowed"),
            (f"client:{bob.client_id}", "denied"),
        ]
        await alice.close()
        await bob.close()


async def test_a_wrong_answer_to_a_capability_prompt_is_refused(project: Path) -> None:
    async with served(project) as (kernel, server):
        client = RemoteClient(server.url)
        await client.connect()
        request = CapabilityRequest("intruder", "write", "x.txt", task_id="t", session_id="s")
        checking = asyncio.create_task(asyncio.to_thread(kernel.capabilities().check, request))
        tree = await client.wait_for(lambda tree: bool(tree.get("prompts")))
        [prompt_id] = tree["prompts"]
        with pytest.raises(RemoteCommandFailed) as wrong:
            await client.command("answer", prompt=prompt_id, answer="yes please")
        assert wrong.value.kind == "remote-protocol"
        assert prompt_id in kernel.state.get(["prompts"])  # still waiting
        await client.command("answer", prompt=prompt_id, answer="deny")
        assert not (await checking).allowed
        await client.close()


def test_the_token_is_made_once_and_kept_private(tmp_path: Path) -> None:
    from briotui.kernel.serve.token import load_or_create_token, token_path

    token = load_or_create_token(tmp_path / "cfg")
    path = token_path(tmp_path / "cfg")
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(token) >= 32
    assert load_or_create_token(tmp_path / "cfg") == token
    path.chmod(0o644)
    assert load_or_create_token(tmp_path / "cfg") == token
    assert path.stat().st_mode & 0o777 == 0o600


def test_serving_beyond_loopback_without_tls_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from briotui.cli.main import main

    code = main(["-C", str(project), "serve", "--host", "0.0.0.0", "--json"])
    assert code == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["kind"] == "serve-refused"
    assert "--insecure" in out["error"]["message"]


def test_the_threaded_state_keeps_clients_consistent(project: Path) -> None:
    """Agents' worker threads mutate while clients join: every mirror converges."""

    async def scenario() -> None:
        async with served(project) as (kernel, server):
            clients = [RemoteClient(server.url, name=f"c{i}") for i in range(3)]
            await clients[0].connect()

            def work(n: int) -> None:
                rng = random.Random(n)
                for i in range(200):
                    kernel.state.set(["tasks", f"w{n}"], {"i": i}, coalesce=rng.random() < 0.5)
                    kernel.state.add_number(["usage", "cost_usd"], 1)

            threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
            for t in threads:
                t.start()
            await clients[1].connect()
            await clients[2].connect()
            for t in threads:
                await asyncio.to_thread(t.join)
            kernel.state.flush()
            await caught_up(kernel.state.seq, *clients)
            for client in clients:
                assert client.tree == kernel.state.get("")
                await client.close()

    asyncio.run(scenario())


async def test_the_remote_kernels_state_follows_a_rejoin_from_a_fresh_snapshot(
    project: Path,
) -> None:
    from briotui.kernel.serve.remote import RemoteKernel

    async with served(project, replay=2) as (kernel, server):
        kernel.state.set(["gone"], {"soon": True})
        remote = await RemoteKernel.attach(server.url)
        mirror: dict[str, Any] = {}

        def apply(patch: Any) -> None:
            jsonpatch.apply_patch(mirror, patch.ops, in_place=True)

        subscription = remote.state.subscribe(apply)
        mirror.update(subscription.snapshot.tree)
        [(_, connected)] = list(server.clients.items())
        await connected.ws.close()  # the connection drops ...
        await remote.client.closed.wait()
        kernel.state.remove(["gone"])  # ... and more changes than the replay keeps
        for i in range(10):
            kernel.state.set(["tasks", f"t{i}"], {"n": i})
        await remote.client.wait_for(lambda tree: "t9" in tree.get("tasks", {}), within_s=10)
        assert remote.client.snapshots == 2
        assert mirror == kernel.state.get("")
        assert remote.state.get(["tasks", "t9", "n"]) == 9
        await remote.close()


async def test_tls_with_the_users_certificate(project: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: ASYNC221 - a test making its certificate once
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    async with served(project, ssl_context=server_tls) as (kernel, server):
        assert server.url.startswith("wss://127.0.0.1:")
        client_tls = ssl.create_default_context(cafile=str(cert))
        client = RemoteClient(server.url, ssl_context=client_tls)
        await client.connect()
        assert client.tree == kernel.state.get("")
        await client.close()
        with pytest.raises(RemoteClosed):  # plain ws:// to a TLS server does not join
            await RemoteClient(server.url.replace("wss://", "ws://")).connect(within_s=3)


async def test_a_command_still_running_when_its_client_leaves_is_finished_and_audited(
    project: Path,
) -> None:
    # Observed: a client leaving (closed tab, network blip) cancelled its commands in
    # flight; work already done in the kernel (a decision, a commit) then had no audit row.
    async with served(project) as (kernel, server):
        session = await asyncio.to_thread(kernel.new_session, label="x", task="t")
        await asyncio.to_thread(session.write, "notes.txt", b"hello\n", False)
        real = kernel.decide
        left = asyncio.Event()

        async def decide_then_linger(*args: Any, **kwargs: Any) -> Any:
            done = await real(*args, **kwargs)  # the decision is made...
            await left.wait()  # ...and the command is still in flight when the client goes
            return done

        kernel.decide = decide_then_linger  # type: ignore[method-assign]
        async with connect(server.url) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            assert json.loads(await ws.recv())["type"] == "snapshot"
            command = {"session": session.id, "decision": "accepted"}
            await ws.send(
                json.dumps({"type": "command", "id": 1, "name": "decide", "args": command})
            )
            await asyncio.sleep(0.2)
        for _ in range(100):  # the server noticed the client left
            if not server.clients:
                break
            await asyncio.sleep(0.02)
        left.set()
        for _ in range(100):
            if audit_commands(kernel):
                break
            await asyncio.sleep(0.05)
        assert {d for d, _ in session.decisions().values()} == {"accepted"}
        [row] = audit_commands(kernel)
        assert row["target"].startswith(f"decide {session.id} accepted")
        assert row["decision"] == "allowed"
