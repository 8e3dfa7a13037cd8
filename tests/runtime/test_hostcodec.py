"""Host-call values survive the JSON codec, and every host call goes through the dispatch seam."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any

import pytest
from tests.runtime.guest import in_thread

from briotui.kernel.limits import Limits
from briotui.kernel.runtime import host, hostcodec
from briotui.kernel.runtime.context import CallContext, RunBindings
from briotui.kernel.runtime.values import Case, Err, FuncShape, Ok


class Level(enum.Enum):
    INFO = "info"


@dataclass(frozen=True)
class Rec:
    path: str
    size: int


VALUES: list[Any] = [
    None,
    True,
    7,
    2**64 - 1,
    1.5,
    "tëxt",
    b"\x00\xffbytes",
    (1, "two", b"3"),
    [Ok(b"x"), Err({"kind": "denied", "message": "no"})],
    Case("text", "hi"),
    Case("none"),
    {"$ok": 1, "plain": [None]},  # a mapping whose keys look like tags stays a mapping
    {"nested": {"deep": Ok([Case("n", 3)])}},
]


@pytest.mark.parametrize("value", VALUES)
def test_round_trip(value: Any) -> None:
    assert hostcodec.loads(hostcodec.dumps(value)) == value


def test_records_and_enums_decode_to_what_the_lowerers_accept() -> None:
    back = hostcodec.loads(hostcodec.dumps(Ok([Rec("a.py", 3)])))
    assert back == Ok([{"path": "a.py", "size": 3}])
    assert hostcodec.loads(hostcodec.dumps(Level.INFO)) == "info"


def test_digest_is_stable_and_tells_arguments_apart() -> None:
    one = hostcodec.digest("workspace", "read", ("a.py",))
    assert one == hostcodec.digest("workspace", "read", ("a.py",))
    assert one != hostcodec.digest("workspace", "read", ("b.py",))
    assert one != hostcodec.digest("workspace", "stat", ("a.py",))


def test_unencodable_value_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no JSON form"):
        hostcodec.encode(object())


async def test_dispatch_sees_every_call_and_its_result_is_lowered() -> None:
    ctx = CallContext(
        agent="echo",
        instance_id="echo#1",
        limits=Limits(),
        loop=asyncio.get_running_loop(),
        events=lambda _e: None,
    )
    ctx.begin(RunBindings())
    seen: list[tuple[str, str, tuple[Any, ...]]] = []

    def dispatch(c: CallContext, iface: str, name: str, impl: Any, args: tuple[Any, ...]) -> Any:
        seen.append((iface, name, args))
        return hostcodec.loads(hostcodec.dumps(impl(c, *args)))

    ctx.dispatch = dispatch
    wrapped = host._wrap("clock", "now-ms", host.clock_now_ms, FuncShape((), int))
    got = in_thread(ctx, lambda c: wrapped(None))
    assert isinstance(got, int)
    assert got > 0
    assert seen == [("clock", "now-ms", ())]
    assert ctx.host_calls == 1
