"""Host-call arguments and results as plain JSON data, and back.

A host function receives and returns kernel shapes (:mod:`.values`): ``Ok``/``Err``,
``Case``, ``bytes``, tuples, records as dataclasses or mappings, enums. Two things need
them outside the process or the moment they were made: the run journal (a replay
serves a recorded result again) and a worker on another machine (it relays each call
to the kernel and lowers the kernel's answer). Both use this one codec, so a value
that survives a journal also survives the wire.

The encoding is JSON with a few tagged objects: ``{"$ok": v}``, ``{"$err": v}``,
``{"$case": [tag, payload]}``, ``{"$b": base64}``, ``{"$t": [...]}``, and
``{"$d": {...}}`` for a mapping whose own keys start with ``$``. Records decode as
dicts and enums as their value, which the lowerers accept exactly as they accept the
original objects, so ``lower(decode(encode(x)))`` equals ``lower(x)``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from briotui.kernel.runtime.values import Case, Err, Ok

_TAGS = frozenset({"$ok", "$err", "$case", "$b", "$t", "$d"})


def encode(value: Any) -> Any:
    """``value`` (a kernel shape) as JSON-able data.

    Raises:
        TypeError: a value with no JSON form (a function, a socket...).
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Ok):
        return {"$ok": encode(value.value)}
    if isinstance(value, Err):
        return {"$err": encode(value.value)}
    if isinstance(value, Case):
        return {"$case": [value.tag, encode(value.payload)]}
    if isinstance(value, enum.Enum):
        return encode(value.value)
    if isinstance(value, tuple):
        return {"$t": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out = {str(k): encode(v) for k, v in value.items()}
        if any(k.startswith("$") for k in out):
            return {"$d": out}
        return out
    raise TypeError(f"no JSON form for a host value of type {type(value).__name__}")


def decode(data: Any) -> Any:
    """The kernel shape :func:`encode` made ``data`` from (records come back as dicts)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        ((key, inner),) = data.items()
        if key in _TAGS:
            if key == "$ok":
                return Ok(decode(inner))
            if key == "$err":
                return Err(decode(inner))
            if key == "$case":
                tag, payload = inner
                return Case(str(tag), decode(payload))
            if key == "$b":
                return base64.b64decode(inner)
            if key == "$t":
                return tuple(decode(v) for v in inner)
            return {k: decode(v) for k, v in inner.items()}
    return {k: decode(v) for k, v in data.items()}


def dumps(value: Any) -> str:
    """``value`` encoded as compact, key-sorted JSON text (stable for digests)."""
    return json.dumps(encode(value), sort_keys=True, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """The value :func:`dumps` wrote."""
    return decode(json.loads(text))


def digest(
    iface: str,
    name: str,
    args: tuple[Any, ...],
    *,
    aliases: Sequence[tuple[str, str]] = (),
) -> str:
    """A stable SHA-256 of one host call: which function, with which arguments.

    Args:
        iface: The interface.
        name: The function.
        args: Its arguments.
        aliases: ``(this, that)`` pairs: ``this`` is replaced by ``that`` wherever it
            occurs in the arguments' JSON first (a resumed task's ids standing for the
            interrupted task's, so the same call digests the same).
    """
    h = hashlib.sha256(f"{iface}.{name}\0".encode())
    text = dumps(args)
    for this, that in aliases:
        if this:
            text = text.replace(this, that)
    h.update(text.encode())
    return h.hexdigest()
