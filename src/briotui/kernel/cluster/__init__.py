"""Agents on other machines: workers over NATS, with the kernel keeping every check.

The single-process kernel is the embedded default and needs no NATS (nothing here is
imported until a cluster is joined). With ``briotui serve --nats URL`` (or
``[cluster] nats`` in the user's config) the kernel offers each agent run to the
``briotui worker`` processes listening on that server and runs it locally when none
takes it within ``offer_ms``.

Design notes
------------

*Who decides.* A worker is compute only: it holds no grants, sessions, keys or model
credentials. It instantiates the agent's component with every ``brio:agent`` import
relayed (:class:`.worker.Relay` is the instance's
:attr:`~briotui.kernel.runtime.context.CallContext.dispatch`, the same seam the run
journal records through): the arguments, lifted as for a local call, go to the kernel
encoded by :mod:`briotui.kernel.runtime.hostcodec`; the kernel serves the call on a
thread bound to a kernel-side ``CallContext`` that holds the run's bindings (its
session, capabilities, shell, SQL tables, mesh endpoint, ask-user) and calls the very
``HOST_FUNCTIONS`` entry a local run calls. So the capability check, a prompt it
raises (answered by the kernel's prompt function: the TUI, or a ``serve`` client),
the audit row (naming the remote instance, ``agent@worker#n``), the size limits and
the error mapping are the kernel's own. A journal that sets ``dispatch`` on that
kernel-side context records remote runs exactly like local ones.

*What is enforced where.* Fuel, memory and the deadline are enforced on the worker by
the same :class:`~briotui.kernel.runtime.instance.AgentInstance` as locally (epoch
interruption, store limits). The kernel keeps its own deadline for the run (plus a
grace) and the host-call watchdog for the calls it serves; a cancel sets the
kernel-side context's flag (calls being served stop waiting) and is published on the
run's cancel subject, where the worker cancels its instance.

*Components.* The kernel puts each component in the JetStream object store bucket
``brio-components`` under its SHA-256 (once). A worker uses, in order: the component
already compiled in memory, its own compiled copy (``<cache>/cluster/<sha>-<engine>``),
its machine's build cache when that holds the same bytes, else it fetches the bytes,
checks their hash and compiles them once into its cache. It never loads native code it
did not compile itself. A world's shared Python runtime gets its agent's code through
the ``agent-code`` import, which is relayed like any host call (the kernel serves the
code objects and runs its trust check on a changed project agent).

*Exactly once.* The worker numbers each call of a run (``seq``) and retries a request
that got no answer with the same number; the kernel serves each (run, seq) once and
answers a retry with the stored reply (waiting for it if the call is still being
served), and drops numbers older than the last one. So a write relayed twice (a
slow kernel, a lost reply) lands once.

*Failure.* Workers heartbeat every 0.5 s. One silent for ``lost_after_ms`` (default
3 s) has its runs failed with :class:`~briotui.kernel.errors.WorkerLost`; before the
failure is reported the kernel waits for the call it may be serving for that run to
end (nothing of the run lands afterwards: later calls of a lost or ended run are
refused), and the kernel's run path puts the run's session back to what it held before
the run (:meth:`~briotui.kernel.vfs.Session.restore_overlay`) and runs the task once
more, on another worker or locally. The lost run's writes are therefore never kept
half-applied, and no call of it is replayed into the new attempt: the retry starts from
the clean branch and makes its own calls.

*Mesh.* An agent's mesh calls are host calls like any other: relayed to the kernel and
served there by the kernel's :class:`~briotui.kernel.mesh.Mesh`, with the endpoint
registered under the remote instance's id, so messages between agents on different
workers (or a worker and the kernel) go through the kernel with the same size limits,
grants and audit as between local agents. Agents on the kernel's machine stay
in-process; only the relayed call crosses NATS.

*Namespaces and credentials.* Subjects are ``brio.<ns>.*`` with ``<ns>`` a stable id
of the project (the hash of its first commit). Only the user's config, the command
line or ``$BRIOTUI_NATS_TOKEN`` give the token or credentials file; a repository's
config naming them is refused (:mod:`.config`).

Modules: :mod:`.config` (the ``[cluster]`` section), :mod:`.protocol` (subjects and
messages), :mod:`.link` (the connection and object stores), :mod:`.worker` (the
worker process), :mod:`.dispatch` (the kernel side).
"""
