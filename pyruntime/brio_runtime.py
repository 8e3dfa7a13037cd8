"""The shared Python runtime: one component per WIT world, the agent's code loaded at start.

componentize-py builds this module (not an agent's ``app.py``) into a component for
each world, once. At its first ``run`` an instance asks the kernel for its agent's
modules (``agent-code``: name, file, source, and the code object this runtime's own
compiler made of it, which the kernel keeps per version of the source), loads them and
imports ``app``; ``app.Agent().run(task)`` then does the work. So editing an agent's
``app.py`` needs no componentize-py build and no wasmtime compile: the next run reads
it. A warm pool's instance loads earlier, through ``agent-loader.load`` before a run is
handed to it (the kernel then checks that the code did not change since), so its run
only calls ``run``. ``AgentCompiler`` compiles sources without running them, in an instance where no
agent code ever ran.

The agent's code runs with exactly the imports of the runtime's world (the world the
kernel linked this component for): what the world does not import cannot be called.
The modules preloaded below are what an agent may import besides its own files; the
kernel checks an agent's imports before it picks this runtime, and builds an agent
that needs anything else into a component of its own.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys

# Preloaded at build time (pre-initialisation): what an agent may import from the
# standard library. Keep it in step with PRELOADED in the kernel's pyruntime module.
import __future__  # noqa: F401
import os  # noqa: F401
import weakref  # noqa: F401
import abc  # noqa: F401
import base64
import bisect  # noqa: F401
import collections  # noqa: F401
import contextlib
import copy  # noqa: F401
import dataclasses  # noqa: F401
import datetime  # noqa: F401
import difflib  # noqa: F401
import enum  # noqa: F401
import fnmatch  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import html  # noqa: F401
import io  # noqa: F401
import itertools  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import operator  # noqa: F401
import posixpath  # noqa: F401
import pprint  # noqa: F401
import random
import re  # noqa: F401
import shlex  # noqa: F401
import string  # noqa: F401
import struct  # noqa: F401
import textwrap  # noqa: F401
import time  # noqa: F401
import traceback
import types  # noqa: F401
import typing  # noqa: F401
import unicodedata  # noqa: F401
import urllib.parse  # noqa: F401

import marshal
import pkgutil

import componentize_py_types  # noqa: F401
import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import agent
from wit_world.imports import agent_code
from wit_world.imports import types as wit_types


def _import_bindings() -> None:
    """Import every binding module of the world now: at run time there is no file to
    import them from (the world's, so each runtime has exactly its world's)."""
    for info in pkgutil.walk_packages(wit_world.__path__, "wit_world."):
        importlib.import_module(info.name)


_import_bindings()


class _Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the agent's own modules from the sources the kernel gave."""

    def __init__(self, modules: list[agent_code.Module]) -> None:
        self.modules = {m.name: m for m in modules}

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        module = self.modules.get(fullname)
        if module is None:
            return None
        spec = importlib.util.spec_from_loader(
            fullname, self, origin=module.path, is_package=module.is_package
        )
        if spec is not None:
            spec.has_location = True
        return spec

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return None

    def exec_module(self, module):  # type: ignore[no-untyped-def]
        source = self.modules[module.__name__]
        module.__file__ = source.path
        if source.is_package:
            module.__path__ = []
        if source.code:  # compiled by this runtime's compiler (agent-compiler)
            code = marshal.loads(base64.b64decode(source.code))
        else:
            code = compile(source.source, source.path, "exec", dont_inherit=True)
        exec(code, module.__dict__)


def _failure(summary: str) -> Err:
    """The error a run gets when the agent's code cannot be loaded."""
    lines = traceback.format_exc().strip().splitlines()
    detail = "\n".join(
        line for line in lines[-8:] if "brio_runtime.py" not in line and "<frozen" not in line
    )
    message = f"{summary}\n{detail}" if detail else summary
    return Err(wit_types.Error(kind=wit_types.ErrorKind.INVALID, message=message))


_agent: object = None
_failed: object = None
"""The Err the agent's code failed to load with (raised by every run of the instance)."""


def _load() -> object:
    random.seed()  # the pre-initialised state is the same in every instance
    sys.meta_path.insert(0, _Sources(agent_code.modules()))
    try:
        app = importlib.import_module("app")
    except SyntaxError as exc:
        raise _failure(
            f"The agent's code does not compile: {exc.msg} ({exc.filename}:{exc.lineno})."
        ) from None
    except Exception:
        raise _failure("The agent's code failed while loading (importing app):") from None
    cls = getattr(app, "Agent", None)
    if not isinstance(cls, type):
        raise Err(
            wit_types.Error(
                kind=wit_types.ErrorKind.INVALID,
                message="app.py defines no class Agent (with run(self, task)).",
            )
        )
    return cls()


def _loaded() -> object:
    """The agent, loaded once per instance (by ``AgentLoader.load`` or the first run)."""
    global _agent, _failed
    if _failed is not None:
        raise _failed  # type: ignore[misc]
    if _agent is None:
        try:
            _agent = _load()
        except Err as failure:
            _failed = failure
            raise
    return _agent


class Agent(exports.Agent):
    def run(self, task: agent.Task) -> agent.Outcome:
        return _loaded().run(task)  # type: ignore[attr-defined,no-any-return]


class AgentLoader(exports.AgentLoader):
    """Loads the agent before a run is handed to the instance (a warm pool's): the kernel
    allows no host call but ``agent-code`` meanwhile, and checks before the run that the
    code did not change since."""

    def load(self) -> None:
        with contextlib.suppress(Err):  # kept: the run reports it
            _loaded()


class AgentCompiler(exports.AgentCompiler):
    """Compiles an agent's sources without running them: the kernel calls it in an
    instance of its own (no agent code ever ran there) and keeps the code objects."""

    def compile(self, modules: list[tuple[str, str]]) -> list[str]:
        out = []
        for path, source in modules:
            try:
                code = compile(source, path, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                raise Err(f"{path}: {exc}") from None
            out.append(base64.b64encode(marshal.dumps(code)).decode("ascii"))
        return out
