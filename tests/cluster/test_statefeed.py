"""A project's state over NATS: the publisher, followers, late joins, parts and errors.

Everything runs against the real ``nats-server`` of ``tests/cluster/conftest.py`` and the
real state feed (:class:`StateTree` with the typed :class:`TaskTree` over it, the
shapes of ``kernel/contract.py``); the end-to-end run is in ``test_statefeed_kernel.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from tests.cluster.conftest import NatsServer, _free_port, _wait_listening, nats_server_binary

from briotui.kernel import contract
from briotui.kernel.cluster.follower import StateFollower, connect_nats, open_follower
from briotui.kernel.cluster.observer import ObserverKernel
from briotui.kernel.cluster.statefeed import Reassembler, StatePublisher, parts, publish_state
from briotui.kernel.errors import (
    ObserverReadOnly,
    StateFeedError,
    StateFeedRefused,
    StateFeedTooLarge,
    StateFeedUnavailable,
)
from briotui.kernel.state import StatePatch, StateTree
from briotui.kernel.tasktree import TaskTree

_names = itertools.count(1)


def fresh_prefix() -> str:
    """A subject prefix no other test of the module uses."""
    return f"brio.test{next(_names)}"


@contextlib.asynccontextmanager
async def connection(server: NatsServer) -> AsyncIterator[NatsClient]:
    nc = await nats.connect(server.url, token=server.token)
    try:
        yield nc
    finally:
        await nc.close()


def tasks_on(loop: asyncio.AbstractEventLoop) -> TaskTree:
    return TaskTree(StateTree(loop=loop))


def work(tasks: TaskTree, n: int, start: int = 0) -> None:
    """``n`` rounds of real task-tree changes (contract-shaped task views)."""
    for i in range(start, start + n):
        tid = f"t{i}"
        tasks.add_task(tid, title=f"task {i}", agent="coder", parent=None)
        tasks.set_status(tid, "running")
        tasks.add_milestone(tid, "planned")
        tasks.add_usage(tid, input_tokens=10, output_tokens=5, cost_usd=0.001, coalesce=False)


async def converged(follower: StateFollower, state: StateTree) -> None:
    state.flush()
    await follower.wait_seq(state.seq, within_s=15)
    assert follower.seq == state.seq
    assert follower.tree == state.get("")


async def test_patches_reach_followers_in_order_with_no_gap(nats_server: NatsServer) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    work(tasks, 3)
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        publisher = await publish_state(tasks.state, pub_nc, prefix, project="demo")
        followers = [StateFollower(sub_nc, prefix) for _ in range(3)]
        seen: list[list[int]] = [[] for _ in followers]
        for follower, seqs in zip(followers, seen, strict=True):
            follower.listeners.append(lambda p, s=seqs: s.append(p.seq) if p else None)
            await follower.start()
            assert follower.hello["project"] == "demo"
            assert follower.tree == tasks.state.get("")  # the snapshot: the state so far
        start = tasks.state.seq
        work(tasks, 50, start=3)
        for follower, seqs in zip(followers, seen, strict=True):
            await converged(follower, tasks.state)
            assert seqs == list(range(start + 1, tasks.state.seq + 1))  # in order, each once
            assert follower.resyncs == 0
            assert follower.snapshots == 1
            assert contract.tasks(follower.tree)["t40"]["status"] == "running"
        await publisher.close()


async def test_a_late_joiner_converges_while_patches_stream(nats_server: NatsServer) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        publisher = await publish_state(tasks.state, pub_nc, prefix)
        stop = asyncio.Event()

        async def churn() -> None:
            i = 0
            while not stop.is_set():
                work(tasks, 1, start=i)
                tasks.set_progress(f"t{i}", i % 100, "working")
                i += 1
                await asyncio.sleep(0)

        churner = asyncio.create_task(churn())
        followers: list[StateFollower] = []
        for _ in range(5):  # each joins at another point of the stream
            await asyncio.sleep(0.02)
            follower = StateFollower(sub_nc, prefix)
            await follower.start()
            followers.append(follower)
        await asyncio.sleep(0.1)
        stop.set()
        await churner
        for follower in followers:
            await converged(follower, tasks.state)
        assert tasks.state.seq > 100
        await publisher.close()


class SlowAnswers(StatePublisher):
    """Takes the snapshot, then lets the kernel change before the reply goes out."""

    def __init__(self, *args: Any, meanwhile: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meanwhile = meanwhile

    async def _answer(self, msg: Msg) -> None:
        real = self.state

        class Frozen:
            def subscribe(self, *a: Any, **k: Any) -> Any:
                return real.subscribe(*a, **k)

            def snapshot(self) -> Any:
                return taken

        taken = real.snapshot()
        self.meanwhile()  # patches after the snapshot are published before its reply
        await asyncio.sleep(0.2)
        self.state = Frozen()
        try:
            await super()._answer(msg)
        finally:
            self.state = real


async def test_patches_that_arrive_before_the_snapshot_are_applied_once(
    nats_server: NatsServer,
) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    work(tasks, 5)
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        publisher = SlowAnswers(tasks.state, pub_nc, prefix, meanwhile=lambda: work(tasks, 4, 5))
        await publisher.start()
        follower = StateFollower(sub_nc, prefix)
        seen: list[int] = []
        follower.listeners.append(lambda p: seen.append(p.seq) if p else None)
        await follower.start()
        # the snapshot was at the 5 tasks; the 4 tasks after it came first and were kept
        assert sorted(contract.tasks(follower.tree)) == sorted(f"t{i}" for i in range(9))
        assert follower.seq == tasks.state.seq
        assert follower.tree == tasks.state.get("")
        assert follower.resyncs == 0
        work(tasks, 1, 9)
        await converged(follower, tasks.state)
        assert seen == [
            tasks.state.seq - 3,
            tasks.state.seq - 2,
            tasks.state.seq - 1,
            tasks.state.seq,
        ]
        await publisher.close()


async def test_a_repeated_or_skipped_patch_never_corrupts_the_mirror(
    nats_server: NatsServer,
) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    work(tasks, 2)
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        publisher = await publish_state(tasks.state, pub_nc, prefix)
        follower = StateFollower(sub_nc, prefix)
        await follower.start()
        patch = f"{prefix}.state.patch"
        at = follower.seq
        # a repeat of an applied patch is ignored
        tasks.set_status("t0", "done")
        await follower.wait_seq(at + 1)
        repeat = (
            b'{"i":"'
            + publisher.instance.encode()
            + b'","seq":%d,' % (at + 1)
            + b'"ops":[{"op":"remove","path":"/tasks/t0"}]}'
        )
        await pub_nc.publish(patch, repeat)
        # a patch from the future (a gap) makes the follower join again from a snapshot
        gap = b'{"i":"' + publisher.instance.encode() + b'","seq":%d,"ops":[]}' % (at + 50)
        await pub_nc.publish(patch, gap)
        await pub_nc.flush()
        await follower.wait_for(lambda _tree: follower.snapshots >= 2, within_s=10)
        await follower.joined.wait()
        tasks.set_status("t1", "done")
        await converged(follower, tasks.state)
        assert contract.tasks(follower.tree)["t0"]["status"] == "done"
        assert follower.resyncs >= 1
        await publisher.close()


async def test_big_snapshots_and_patches_travel_in_parts(nats_server: NatsServer) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    work(tasks, 1)
    tasks.state.set("/blob", "x" * 3_000_000)  # three times NATS's max_payload
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        assert pub_nc.max_payload == 1024 * 1024
        publisher = await publish_state(tasks.state, pub_nc, prefix)
        follower = StateFollower(sub_nc, prefix)
        await follower.start()
        assert follower.tree["blob"] == "x" * 3_000_000
        tasks.state.set("/blob2", "y" * 2_500_000)  # one patch in three parts
        work(tasks, 1, 1)
        await converged(follower, tasks.state)
        assert follower.resyncs == 0
        await publisher.close()


async def test_a_snapshot_over_the_bound_is_refused_clearly(nats_server: NatsServer) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    tasks.state.set("/blob", "x" * 300_000)
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        publisher = StatePublisher(tasks.state, pub_nc, prefix, max_snapshot_bytes=100_000)
        await publisher.start()
        with pytest.raises(StateFeedTooLarge, match="over the feed's bound of 97 KiB"):
            await StateFollower(sub_nc, prefix).start()
        assert publisher.refused == 1
        # and a follower with a smaller bound than the snapshot refuses it too
        await publisher.close()
        publisher = await publish_state(tasks.state, pub_nc, prefix)
        with pytest.raises(StateFeedTooLarge, match="observer's bound"):
            await StateFollower(sub_nc, prefix, max_snapshot_bytes=50_000).start()
        await publisher.close()


def test_parts_reassemble_in_order_and_within_bounds() -> None:
    data = bytes(range(256)) * 1000
    pieces = list(parts(data, 10_000, "a"))
    assert len(pieces) == 26
    assert all(len(p) <= 10_000 for p, _ in pieces)
    whole = Reassembler(1_000_000)
    assert [whole.add(p, h) for p, h in pieces][-1] == data
    lost = Reassembler(1_000_000)
    assert all(lost.add(p, h) is None for p, h in pieces[:3] + pieces[4:])  # part 4 lost
    small = Reassembler(50_000)
    assert all(small.add(p, h) is None for p, h in pieces)
    assert small.refused == 1
    assert list(parts(b"short", 10, "b")) == [(b"short", None)]


async def test_no_publisher_and_bad_prefix_are_clear_errors(nats_server: NatsServer) -> None:
    async with connection(nats_server) as nc:
        with pytest.raises(StateFeedUnavailable, match="briotui serve --nats"):
            await StateFollower(nc, fresh_prefix(), within_s=2).start()
        with pytest.raises(StateFeedError, match="not a NATS subject prefix"):
            StateFollower(nc, "brio.*")


async def test_a_wrong_token_is_refused_clearly(nats_server: NatsServer) -> None:
    with pytest.raises(StateFeedRefused, match="refused the token") as refused:
        await open_follower(nats_server.url, fresh_prefix(), token="wrong", within_s=2)
    assert nats_server.token not in refused.value.message
    with pytest.raises(StateFeedUnavailable, match="Cannot reach NATS"):
        await open_follower("nats://127.0.0.1:9", fresh_prefix(), token="t", within_s=2)


async def test_an_observer_follows_but_refuses_every_command(nats_server: NatsServer) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    work(tasks, 2)
    async with connection(nats_server) as pub_nc:
        publisher = await publish_state(tasks.state, pub_nc, prefix, project="demo")
        observer = await ObserverKernel.follow(nats_server.url, prefix, token=nats_server.token)
        try:
            assert observer.state.get("/tasks/t1/status") == "running"
            received: list[StatePatch] = []
            observer.state.subscribe(received.append)
            tasks.set_status("t1", "done")
            await observer.client.wait_for(lambda t: t["tasks"]["t1"]["status"] == "done")
            assert received
            assert received[-1].seq == tasks.state.seq
            with pytest.raises(ObserverReadOnly, match=r"read-only observer.*submit a request"):
                await observer.submit("do something")
            with pytest.raises(ObserverReadOnly, match="accept or reject"):
                await observer.decide("s1", None, "accepted")
            with pytest.raises(ObserverReadOnly, match="cancel a task"):
                observer.cancel("t1")
            with pytest.raises(ObserverReadOnly, match="answer a prompt"):
                await observer.answer("p1", "once")
            with pytest.raises(ObserverReadOnly, match="commit a session"):
                await observer.commit("s1")
        finally:
            await observer.close()
            await publisher.close()


async def test_a_follower_rejoins_after_a_nats_reconnect(tmp_path: Path) -> None:
    """NATS restarts while the kernel changes: the follower joins again and converges.

    The publisher sends no ticks here, so only the reconnect itself can make the follower
    notice what it missed.
    """
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("nats-server is not installed")
    port, token = _free_port(), "reconnect-token"
    url = f"nats://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port), "--auth", token],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_listening(port, process)
        return process

    server = start()
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    pub_nc = await connect_nats(url, token=token)
    publisher = StatePublisher(tasks.state, pub_nc, prefix, tick_s=0)
    follower: StateFollower | None = None
    try:
        await publisher.start()
        follower = await open_follower(url, prefix, token=token)
        work(tasks, 3)
        await converged(follower, tasks.state)
        server.kill()
        server.wait()
        await asyncio.wait_for(follower.closed.wait(), 10)  # it knows it is not following
        work(tasks, 5, 3)  # changes while NATS is down
        tasks.state.remove("/tasks/t0")
        server = start()
        await asyncio.wait_for(follower.joined.wait(), 20)
        await converged(follower, tasks.state)
        assert follower.snapshots >= 2  # it joined again from a snapshot
        assert "t0" not in follower.tree["tasks"]
    finally:
        if follower is not None:
            await follower.close()
        await publisher.close()
        await pub_nc.close()
        server.terminate()
        server.wait()


async def test_a_patch_that_does_not_apply_makes_the_follower_join_again(
    nats_server: NatsServer,
) -> None:
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    work(tasks, 2)
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        publisher = await publish_state(tasks.state, pub_nc, prefix)
        follower = StateFollower(sub_nc, prefix)
        await follower.start()
        broken = b'{"i":"%s","seq":%d,"ops":[{"op":"remove","path":"/nowhere"},{"op":5}]}' % (
            publisher.instance.encode(),
            follower.seq + 1,
        )
        await pub_nc.publish(f"{prefix}.state.patch", broken)
        await pub_nc.publish(f"{prefix}.state.patch", b"not json")
        await pub_nc.flush()
        await follower.wait_for(lambda _tree: follower.snapshots >= 2, within_s=10)
        work(tasks, 3, 2)
        await converged(follower, tasks.state)
        await publisher.close()


async def test_the_observer_tui_follows_a_restarted_kernel(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """A kernel that restarts numbers its patches from 1 again: the TUI shows its state,
    not the old one (its mirror once ignored every patch numbered below the old seq)."""
    from tests.ui.helpers import wait_until

    from briotui.ui.app import make_app

    loop = asyncio.get_running_loop()
    before = tasks_on(loop)
    work(before, 10)
    prefix = fresh_prefix()
    async with connection(nats_server) as pub_nc:
        publisher = await publish_state(before.state, pub_nc, prefix, project="demo")

        async def observe() -> ObserverKernel:
            return await ObserverKernel.follow(nats_server.url, prefix, token=nats_server.token)

        app = make_app(
            tmp_path, attach=nats_server.url, observe=observe, config_dir=tmp_path / "cfg"
        )
        async with app.run_test(size=(110, 32)) as pilot:
            await wait_until(pilot, lambda: len(app.mirror.get("tasks", {})) == 10)
            await publisher.close()
            after = tasks_on(loop)  # the restarted kernel: a new tree, a new numbering
            work(after, 2, start=100)
            publisher = await publish_state(after.state, pub_nc, prefix, project="demo")
            work(after, 1, start=102)
            await wait_until(pilot, lambda: app.mirror == after.state.get(""), 20)
            work(after, 1, start=103)  # and it keeps following
            await wait_until(pilot, lambda: app.mirror == after.state.get(""), 20)
        await publisher.close()


async def test_a_publisher_that_falls_behind_drops_and_followers_join_again(
    nats_server: NatsServer,
) -> None:
    """The kernel never waits for NATS: past its queue bound the publisher drops what
    waits, and followers see the gap and join again from a snapshot."""
    tasks = tasks_on(asyncio.get_running_loop())
    prefix = fresh_prefix()
    async with connection(nats_server) as pub_nc, connection(nats_server) as sub_nc:
        publisher = StatePublisher(tasks.state, pub_nc, prefix, queue_limit=5, tick_s=0.2)
        await publisher.start()
        follower = StateFollower(sub_nc, prefix)
        await follower.start()
        loop = asyncio.get_running_loop()
        for i in range(100):  # delivered to the publisher in one go: its queue overflows
            loop.call_soon(work, tasks, 1, i)
        await asyncio.sleep(0)
        await converged(follower, tasks.state)
        assert publisher.dropped > 0
        assert follower.snapshots >= 2
        await publisher.close()
