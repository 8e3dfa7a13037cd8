"""All conversion between wasmtime component values and kernel values lives here.

wasmtime-py represents WIT values as ``Record`` objects (with kebab-case attribute
names), ``Variant`` objects (only when the cases' Python classes overlap — otherwise
the bare payload), plain Python scalars, lists and tuples. Nothing else in the kernel
touches those shapes: host functions receive and return the kernel shapes below, and
converters are built once per function type at link time (reading wasmtime type
information through ctypes is slow, so it never happens per call).

Kernel shapes:

- record: a dataclass instance or a mapping with snake_case keys (lifted as ``dict``);
- ``result<T, E>``: :class:`Ok` / :class:`Err`;
- ``option<T>``: ``None`` or the value;
- ``variant``: :class:`Case`;
- ``enum``: the case name as ``str`` (a Python ``Enum`` lowers by its value);
- ``list<u8>``: ``bytes``; other lists: ``list``; tuples: ``tuple``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from wasmtime import component as wc

T = TypeVar("T")
E = TypeVar("E")

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Ok(Generic[T]):
    """The ``ok`` case of a WIT ``result``."""

    value: T = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Err(Generic[E]):
    """The ``err`` case of a WIT ``result``."""

    value: E


@dataclass(frozen=True)
class Case:
    """One case of a WIT ``variant``: its tag and payload (None for no payload)."""

    tag: str
    payload: Any = None


def _snake(name: str) -> str:
    return name.replace("-", "_")


def _identity(value: Any) -> Any:
    return value


def _classes(ty: Any) -> set[type]:
    found: set[type] = set()
    ty.add_classes(found)
    return found


def _tagged(ty: Any) -> bool:
    """Whether wasmtime-py wraps this variant-like type's values in ``Variant``."""
    return bool(ty._tagged())


def _field(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value[name]
    return getattr(value, name)


def lowerer(ty: Any) -> Converter:
    """A function turning a kernel value of WIT type ``ty`` into wasmtime's shape."""
    if isinstance(ty, wc.RecordType):
        fields = [(name, _snake(name), lowerer(fty)) for name, fty in ty.fields]

        def lower_record(value: Any) -> Any:
            rec = wc.Record()
            for wit_name, py_name, conv in fields:
                setattr(rec, wit_name, conv(_field(value, py_name)))
            return rec

        return lower_record
    if isinstance(ty, wc.ResultType):
        ok_ty, err_ty = ty.ok, ty.err
        ok_conv = lowerer(ok_ty) if ok_ty is not None else None
        err_conv = lowerer(err_ty) if err_ty is not None else None
        tagged = _tagged(ty)

        def lower_result(value: Any) -> Any:
            if isinstance(value, Ok):
                tag, conv, payload = "ok", ok_conv, value.value
            elif isinstance(value, Err):
                tag, conv, payload = "err", err_conv, value.value
            else:
                raise TypeError(f"expected Ok or Err for a WIT result, got {type(value).__name__}")
            lowered = conv(payload) if conv is not None else None
            return wc.Variant(tag, lowered) if tagged else lowered

        return lower_result
    if isinstance(ty, wc.OptionType):
        inner = lowerer(ty.payload)
        tagged = _tagged(ty)

        def lower_option(value: Any) -> Any:
            if value is None:
                return wc.Variant("none") if tagged else None
            lowered = inner(value)
            return wc.Variant("some", lowered) if tagged else lowered

        return lower_option
    if isinstance(ty, wc.VariantType):
        cases = {name: (lowerer(cty) if cty is not None else None) for name, cty in ty.cases}
        tagged = _tagged(ty)

        def lower_variant(value: Any) -> Any:
            if not isinstance(value, Case):
                raise TypeError(f"expected Case for a WIT variant, got {type(value).__name__}")
            conv = cases[value.tag]
            payload = conv(value.payload) if conv is not None else None
            return wc.Variant(value.tag, payload) if tagged else payload

        return lower_variant
    if isinstance(ty, wc.EnumType):

        def lower_enum(value: Any) -> Any:
            return value.value if isinstance(value, enum.Enum) else value

        return lower_enum
    if isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            return bytes
        elem = lowerer(ty.element)
        return lambda value: [elem(v) for v in value]
    if isinstance(ty, wc.TupleType):
        elems = [lowerer(e) for e in ty.elements]
        return lambda value: tuple(c(v) for c, v in zip(elems, value, strict=True))
    return _identity


def lifter(ty: Any) -> Converter:
    """A function turning a wasmtime value of WIT type ``ty`` into the kernel's shape."""
    if isinstance(ty, wc.RecordType):
        fields = [(name, _snake(name), lifter(fty)) for name, fty in ty.fields]
        return lambda value: {py: conv(getattr(value, wit)) for wit, py, conv in fields}
    if isinstance(ty, wc.ResultType):
        ok_ty, err_ty = ty.ok, ty.err
        ok_conv = lifter(ok_ty) if ok_ty is not None else _identity
        err_conv = lifter(err_ty) if err_ty is not None else _identity
        tagged = _tagged(ty)
        ok_classes = tuple(_classes(ok_ty)) if ok_ty is not None else ()

        def lift_result(value: Any) -> Any:
            if tagged:
                is_ok = value.tag == "ok"
                payload = value.payload
            else:
                is_ok = isinstance(value, ok_classes) if ok_ty is not None else value is None
                payload = value
            if is_ok:
                return Ok(ok_conv(payload))
            return Err(err_conv(payload))

        return lift_result
    if isinstance(ty, wc.OptionType):
        inner = lifter(ty.payload)
        tagged = _tagged(ty)

        def lift_option(value: Any) -> Any:
            if tagged:
                return None if value.tag == "none" else inner(value.payload)
            return None if value is None else inner(value)

        return lift_option
    if isinstance(ty, wc.VariantType):
        cases = [(name, lifter(cty) if cty is not None else None, cty) for name, cty in ty.cases]
        tagged = _tagged(ty)
        by_tag = {name: conv for name, conv, _ in cases}
        by_class = [
            (name, conv, tuple(_classes(cty)) if cty is not None else ())
            for name, conv, cty in cases
        ]

        def lift_variant(value: Any) -> Any:
            if tagged:
                conv = by_tag[value.tag]
                return Case(value.tag, conv(value.payload) if conv is not None else None)
            for name, conv, classes in by_class:
                if conv is None and value is None:
                    return Case(name)
                if conv is not None and classes and isinstance(value, classes):
                    return Case(name, conv(value))
            raise TypeError("variant value matches no case")

        return lift_variant
    if isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            return bytes
        elem = lifter(ty.element)
        return lambda value: [elem(v) for v in value]
    if isinstance(ty, wc.TupleType):
        elems = [lifter(e) for e in ty.elements]
        return lambda value: tuple(c(v) for c, v in zip(elems, value, strict=True))
    return _identity


@dataclass(frozen=True)
class FuncShape:
    """Converters for one function: its parameters (lift) and its result (lower)."""

    params: tuple[Converter, ...]
    result: Converter | None


def func_shape(fty: Any) -> FuncShape:
    """Converters for a host function of component type ``fty`` (guest calls host)."""
    result = fty.result
    return FuncShape(
        params=tuple(lifter(pty) for _, pty in fty.params),
        result=lowerer(result) if result is not None else None,
    )


def export_shape(fty: Any) -> FuncShape:
    """Converters for an exported function (host calls guest): lower params, lift result."""
    result = fty.result
    return FuncShape(
        params=tuple(lowerer(pty) for _, pty in fty.params),
        result=lifter(result) if result is not None else None,
    )


def _functions(instance_type: Any, engine: Any) -> dict[str, Any]:
    """The functions of an instance type (its exported types are left out)."""
    found = {}
    for fname, ext in instance_type.exports(engine).items():
        ty = ext.ty
        if isinstance(ty, wc.FuncType):
            found[fname] = ty
    return found


def component_imports(component: wc.Component, engine: Any) -> dict[str, dict[str, Any]]:
    """The component's imported instances: ``{instance name: {function name: FuncType}}``.

    Imports that are not instances (bare functions, types) map to an empty dict under
    their name so callers can still refuse them.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, item in component.type.imports(engine).items():
        ty = item.ty
        if isinstance(ty, wc.ComponentInstanceType):
            out[name] = _functions(ty, engine)
        else:
            out[name] = {}
    return out


def component_exports(component: wc.Component, engine: Any) -> dict[str, dict[str, Any]]:
    """The component's exported instances: ``{instance name: {function name: FuncType}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, item in component.type.exports(engine).items():
        ty = item.ty
        if isinstance(ty, wc.ComponentInstanceType):
            out[name] = _functions(ty, engine)
    return out


def to_plain(value: Any) -> Any:
    """A kernel value as plain JSON-able data (dataclasses become dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_plain(v) for k, v in dataclasses.asdict(value).items()}
    return value
