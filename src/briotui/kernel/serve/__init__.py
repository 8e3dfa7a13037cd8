"""A served kernel: its state tree and its commands over one WebSocket endpoint.

``briotui serve`` runs a :class:`~briotui.kernel.kernel.Kernel` headless and serves it
with :class:`~briotui.kernel.serve.server.KernelServer` (the ``websockets`` package, an
asyncio server on the kernel's own loop); ``briotui attach`` and the benchmarks connect
with :class:`~briotui.kernel.serve.client.RemoteClient`. Nothing else in the kernel
imports this package (enforced): the kernel does not know it is served.

The protocol (version :data:`~briotui.kernel.serve.protocol.PROTOCOL`), JSON text
messages, one object each:

Connecting
    ``ws://HOST:PORT/?token=TOKEN[&since=SEQ&instance=ID][&client=NAME]`` (``ID`` is
    the ``instance`` of the server's ``hello`` that numbered ``SEQ``). The token may be sent as
    ``Authorization: Bearer TOKEN`` instead. A wrong or missing token is refused with
    HTTP 401, a browser ``Origin`` naming another host with HTTP 403, before any state
    is sent. ``client`` names the client in the audit log (a random suffix is added).

Server to client
    ``{"type": "hello", "protocol": 1, "client": ID, "state_version": N, "instance": ID,
    "project": NAME, "git": BOOL}`` first, then
    ``{"type": "snapshot", "seq": S, "state": TREE}``: the whole state tree (its shapes
    are :mod:`briotui.kernel.contract`) including every patch up to ``S``; then
    ``{"type": "patch", "seq": S + 1, "ops": [RFC 6902 operations]}`` and so on, in order
    and without gaps. The streamed conversation, which is not state, comes as
    ``{"type": "event", "kind": "ModelDelta" | "ModelReply" | "ModelReset" |
    "ModelFallback", "event": {...}}``. A client that joins with ``since=SEQ`` gets
    ``{"type": "resume", "seq": SEQ}`` and the patches after ``SEQ`` from a bounded
    replay buffer instead of a snapshot, or a fresh snapshot when they are gone.

Commands
    ``{"type": "command", "id": ID, "name": NAME, "args": {...}}`` is answered by
    ``{"type": "result", "id": ID, "ok": true, "value": ...}`` or
    ``{"type": "result", "id": ID, "ok": false, "error": {"kind", "title", "message"}}``.
    ``ID`` is the client's (a string or an integer). The commands (see
    :data:`~briotui.kernel.serve.protocol.COMMANDS` for their arguments): ``submit``,
    ``cancel``, ``decide``, ``commit``, ``rollback``, ``discard``, ``revise`` and
    ``answer`` (a waiting prompt under ``/prompts``: a capability prompt's ``once``,
    ``session``, ``project`` or ``deny``, or a question's text; the first answer wins,
    later ones get ``prompt-not-found``); and the reads ``session`` (a session's diff and
    decisions), ``sessions``, ``verify_commit``, ``test_run``, ``transcript`` and
    ``task_of_session``. Each command but the reads is audited with the client's id; a
    command still running when its client leaves is finished and audited all the same.
    A message that is not JSON, not an object, of an unknown type, an unknown command or
    with wrong arguments gets a ``remote-protocol`` error and changes nothing.

Limits
    A message from a client over the size limit closes its connection (code 1009). A
    client whose outgoing queue passes its bound is closed with code
    :data:`~briotui.kernel.serve.protocol.CLOSE_SLOW` and a reason; it may rejoin
    (``since`` or a fresh snapshot). The kernel never waits for a client.
"""

from __future__ import annotations
