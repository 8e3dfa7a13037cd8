"""The small process that runs an unsandboxed command, confines it, and kills what it left.

Without bubblewrap the kernel cannot put a command in its own namespaces, so it starts
this script (``python -I -S reaper.py CONFIG -- PROGRAM ARGS...``) instead of the program.
It is standard-library only and imports nothing from briotui, because it runs isolated
(``-I``) with the kernel's interpreter. It:

* makes itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``), so every descendant of
  the command, even one that called ``setsid`` and was orphaned, is re-parented to it
  and can be found and killed;
* forks the command and, in the child before ``execve``, confines it as far as this
  kernel allows: a new network namespace when permitted (as root), capabilities dropped
  from every set and the bounding set, ``no_new_privs``, and a Landlock ruleset (Linux
  5.13 and later) that allows reading only the toolchain, read-write only the working
  and private home directories, no TCP (Landlock ABI 4) and no signals or abstract
  sockets outside the command's own processes (ABI 6);
* when the command exits, or when the kernel asks (``SIGTERM`` at the timeout), stops
  and kills every remaining descendant, reaps them, and exits with the command's status
  (re-raising its signal, so the kernel sees the same exit code).

The configuration is one JSON object: ``read`` (paths the command may read and
execute), ``write`` (paths it may read and write), ``devices`` (device files it may
read and write), ``landlock`` (apply Landlock if available), ``netns`` (try a new
network namespace).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
TRUNCATE, IOCTL_DEV = 1 << 14, 1 << 15
FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
"""The accesses Landlock accepts on a rule for a file (not a directory)."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int


class _Stop(Exception):
    """The kernel asked to stop (the command's time is up)."""


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> int:
    return int(
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
    )  # fmt: skip


def _fail(what: str) -> OSError:
    errno = ctypes.get_errno()
    return OSError(errno, f"{what}: {os.strerror(errno)}")


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers, 0 when it has none."""
    version = int(
        _libc.syscall(
            ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
            ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
        )
    )  # fmt: skip
    return max(version, 0)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [
        ("allowed_access", ctypes.c_uint64),
        ("parent_fd", ctypes.c_int32),
    ]


def _landlock(abi: int, read: list[str], write: list[str], devices: list[str]) -> None:
    all_fs = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if abi >= 2:
        all_fs |= 1 << 13  # refer
    if abi >= 3:
        all_fs |= TRUNCATE
    if abi >= 5:
        all_fs |= IOCTL_DEV
    attr = _RulesetAttr(all_fs, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = 1 | 2  # bind and connect TCP: none allowed
        size = 16
    if abi >= 6:
        attr.scoped = 1 | 2  # abstract unix sockets and signals stay inside the domain
        size = 24
    ruleset = int(
        _libc.syscall(
            ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
            ctypes.c_size_t(size), ctypes.c_uint32(0),
        )
    )  # fmt: skip
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    rules = [(p, EXECUTE | READ_FILE | READ_DIR) for p in read]
    rules += [(p, all_fs) for p in write]
    rules += [(p, READ_FILE | WRITE_FILE | (all_fs & (TRUNCATE | IOCTL_DEV))) for p in devices]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # absent on this machine: nothing to allow
        try:
            if not os.path.isdir(path):
                access &= FILE_ONLY
            rule = _PathBeneath(access & all_fs, fd)
            if (
                _libc.syscall(
                    ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
                    ctypes.c_int(ruleset),
                    ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
                != 0
            ):
                raise _fail(f"landlock_add_rule {path}")
        finally:
            os.close(fd)
    if (
        _libc.syscall(
            ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)
        )
        != 0
    ):
        raise _fail("landlock_restrict_self")
    os.close(ruleset)


def _drop_capabilities() -> None:
    """Empty the bounding, ambient, inheritable, permitted and effective sets."""
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    last = 40
    with contextlib.suppress(OSError, ValueError), open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)  # fails harmlessly without CAP_SETPCAP

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    if _libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        raise _fail("capset")


def confine(config: dict[str, Any]) -> list[str]:
    """Confine the calling process (the command, before ``execve``).

    Returns:
        What was applied, e.g. ``["netns", "no-caps", "no-new-privs", "landlock-7"]``.

    Raises:
        OSError: A step that must succeed failed (capabilities, no_new_privs, or
            Landlock when the kernel offers it).
    """
    applied: list[str] = []
    if config.get("netns"):
        uid, gid = os.getuid(), os.getgid()
        if os.geteuid() == 0:
            if _libc.unshare(ctypes.c_int(CLONE_NEWNET)) == 0:
                applied.append("netns")
        elif _libc.unshare(ctypes.c_int(CLONE_NEWUSER | CLONE_NEWNET)) == 0:
            # Map our own ids, or files we create could not be owned by anyone.
            for name, text in (
                ("setgroups", "deny"),
                ("uid_map", f"{uid} {uid} 1"),
                ("gid_map", f"{gid} {gid} 1"),
            ):
                with open(f"/proc/self/{name}", "w") as fh:
                    fh.write(text)
            applied.append("netns")
    _drop_capabilities()
    applied.append("no-caps")
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
    applied.append("no-new-privs")
    abi = landlock_abi() if config.get("landlock") else 0
    if abi:
        _landlock(abi, list(config["read"]), list(config["write"]), list(config["devices"]))
        applied.append(f"landlock-{abi}")
    return applied


def _children_of(pids: set[int]) -> set[int]:
    """Every live process whose ancestry reaches ``pids`` (by scanning /proc)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                rest = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest and rest[0] not in (b"Z", b"X"):
            parents[int(name)] = int(rest[1])
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


REAP_TIMEOUT_S = 3.0
"""How long the reaper keeps killing and reaping what the command left before it exits
anyway (a process stuck in uninterruptible sleep cannot be reaped; the kernel waits
5 s for the reaper before it kills it)."""


def _kill_descendants(timeout_s: float = REAP_TIMEOUT_S) -> None:
    """Stop, then kill, everything below this process and reap it, for at most
    ``timeout_s``: each round scans /proc again, so a process forked after a scan is
    found in the next one."""
    me = os.getpid()
    deadline = time.monotonic() + timeout_s
    while True:
        found = _children_of({me})
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        for pid in _children_of({me}) | found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        now = time.monotonic()
        if _reap(until=min(deadline, now + 0.2)) or now >= deadline:
            return


def _reap(until: float) -> bool:
    """Reap exited children until none is left (True) or ``until`` passes (False)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            if time.monotonic() >= until:
                return False
            time.sleep(0.01)  # killed children take a moment to become zombies


def _on_term(signum: int, frame: object) -> None:
    raise _Stop


def main(argv: list[str]) -> int:
    """Run ``argv[3:]`` (after ``CONFIG --``) confined; see the module docstring."""
    config = json.loads(argv[1])
    command = argv[3:]
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if _prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
        print("briotui: cannot track the command's processes (no subreaper)", file=sys.stderr)
        return 126
    # SIGTERM (the kernel's timeout) is held back until this process is inside its
    # ``try``: arriving earlier, its _Stop would escape with a traceback and leave the
    # command running. The child gets the default action back before it is let in.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, _on_term)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            confine(config)
            os.execve(command[0], command, os.environ)
        except OSError as exc:
            os.write(write_end, f"briotui: cannot start {command[0]}: {exc}".encode())
        os._exit(127)
    status = 0
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # a pending one: _Stop
        os.close(write_end)
        problem = b""
        while chunk := os.read(read_end, 4096):
            problem += chunk
        os.close(read_end)
        if problem:
            print(problem.decode("utf-8", "replace"), file=sys.stderr)
        while True:
            done, status = os.waitpid(pid, 0)
            if done == pid:
                break
    except _Stop:
        status = signal.SIGKILL  # as if killed
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _kill_descendants()
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else signal.SIGKILL
    sys.stdout.flush()
    if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be handled
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    return 128 + sig


if __name__ == "__main__":
    sys.exit(main(sys.argv))
