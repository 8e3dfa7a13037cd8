"""OpenTelemetry traces of the pipeline: off by default, and then free.

When on, the kernel emits a span per task, per agent run (agent, world, security level,
fuel, peak memory, outcome), per model request (the GenAI semantic conventions:
``gen_ai.operation.name``, ``gen_ai.system``, request and response model, input and
output tokens; plus cost and fallback attempts), per test run and per commit. Agent runs
execute on worker threads, so a run's span context travels in its
:class:`~briotui.kernel.runtime.context.RunBindings` to the host calls that open child
spans there.

It is on when any of these says so:

- the user's config has ``[telemetry] enabled = true`` (optionally ``endpoint =
  "http://collector:4318"``), never a project's: a repository must not choose where
  its user's traces go;
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set (exported over
  OTLP/HTTP with ``opentelemetry-exporter-otlp-proto-http``, a dependency; a base
  endpoint gets the signal's path, ``/v1/traces`` and ``/v1/metrics``);
- ``--trace FILE`` is given: spans are written to FILE as JSON lines.

Metrics go with the traces when a metric reader is given (an OTLP endpoint, or a test's
in-memory reader): ``briotui.agents.running``, ``briotui.agent.fuel``,
``gen_ai.client.token.usage`` (by ``gen_ai.token.type``), ``briotui.cost_usd`` and
``briotui.capability.denials``; :func:`count` and :func:`gauge` are no-ops otherwise.

Off, :func:`span` is one ``None`` check and a ``nullcontext``: nothing is created,
nothing is exported.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from briotui.kernel.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import Span, Tracer

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_meters: MeterProvider | None = None
_instruments: dict[str, Any] = {}

COUNTERS = {
    "briotui.agent.fuel": ("{instruction}", "Fuel (wasm instructions) agents used"),
    "briotui.cost_usd": ("USD", "What model requests cost"),
    "briotui.capability.denials": ("{call}", "Host calls the capability check denied"),
}
UP_DOWN = {"briotui.agents.running": ("{agent}", "Agents running now")}
HISTOGRAMS = {"gen_ai.client.token.usage": ("{token}", "Tokens per model request")}

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _tracer is not None


def _user_table(user: Mapping[str, Any], source: str) -> tuple[bool, str]:
    table = user.get("telemetry", {})
    if not isinstance(table, dict) or not set(table) <= {"enabled", "endpoint"}:
        raise ConfigError(
            f"[telemetry] in {source} must be a table with enabled = true/false and "
            'optionally endpoint = "http://host:4318".',
            title="Invalid [telemetry] settings",
        )
    on, endpoint = table.get("enabled", False), table.get("endpoint", "")
    if not isinstance(on, bool) or not isinstance(endpoint, str):
        raise ConfigError(
            f"[telemetry] enabled must be true or false and endpoint a URL, in {source}.",
            title="Invalid [telemetry] settings",
        )
    return on, endpoint


def configure(
    user: Mapping[str, Any] | None = None,
    *,
    source: str = "your config",
    trace_file: Path | None = None,
    exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Turn tracing on if the user's config, the environment or ``trace_file`` say so.

    Args:
        user: The user's parsed config document (its ``[telemetry]`` table).
        source: Its file, for error messages.
        trace_file: Write spans there as JSON lines (``--trace FILE``).
        exporters: More exporters, used only when tracing is on (tests pass an
            in-memory one).
        metric_readers: Metric readers, used only when tracing is on.
        environ: The environment (``os.environ`` by default).

    Returns:
        Whether tracing is on.

    Raises:
        ConfigError: ``[telemetry]`` is malformed, or an OTLP endpoint is set without
            the OTLP exporter installed.
    """
    global _tracer, _provider, _meters
    shutdown()
    env = os.environ if environ is None else environ
    on, configured = _user_table(user or {}, source)
    endpoint = configured or next((env[v] for v in _ENDPOINT_VARS if env.get(v)), "")
    if not (on or endpoint or trace_file is not None):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "briotui"}))
    for extra in exporters:
        provider.add_span_processor(SimpleSpanProcessor(extra))
    if trace_file is not None:
        exporter = cast("SpanExporter", JsonLinesExporter(trace_file))  # duck-typed
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics_url = ""
    if endpoint:
        traces_url, metrics_url = _otlp_urls(configured, env)
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                f"Traces should go to {endpoint}, but the OTLP exporter is not installed. "
                "Install it with `pip install opentelemetry-exporter-otlp-proto-http`, or "
                "unset the endpoint (use --trace FILE to write spans to a file).",
                title="OpenTelemetry exporter missing",
            ) from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    readers = list(metric_readers)
    if metrics_url:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=metrics_url)))
    if readers:
        from opentelemetry.sdk.metrics import MeterProvider

        _meters = MeterProvider(metric_readers=readers, resource=provider.resource)
        meter = _meters.get_meter("briotui")
        for name, (unit, what) in COUNTERS.items():
            _instruments[name] = meter.create_counter(name, unit=unit, description=what)
        for name, (unit, what) in UP_DOWN.items():
            _instruments[name] = meter.create_up_down_counter(name, unit=unit, description=what)
        for name, (unit, what) in HISTOGRAMS.items():
            _instruments[name] = meter.create_histogram(name, unit=unit, description=what)
    _provider = provider
    _tracer = provider.get_tracer("briotui")
    return True


def _otlp_urls(configured: str, env: Mapping[str, str]) -> tuple[str, str]:
    """Where OTLP/HTTP sends traces and metrics ("" for no metrics).

    A base endpoint (``[telemetry] endpoint`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g.
    ``http://collector:4318``) gets the signal's path (``/v1/traces``, ``/v1/metrics``), as
    the OTLP specification says; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and
    ``..._METRICS_ENDPOINT`` are full URLs, used as they are. The exporter takes only
    full URLs: given a base, it would post every span to the collector's root (404).
    """
    base = (configured or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")).rstrip("/")
    traces = "" if configured else env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    metrics = "" if configured else env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "")
    return (
        traces or f"{base}/v1/traces",
        metrics or (f"{base}/v1/metrics" if base else ""),
    )


def count(name: str, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
    """Add ``amount`` to the metric ``name`` (a counter, up-down counter or histogram);
    nothing when metrics are off."""
    instrument = _instruments.get(name)
    if instrument is None:
        return
    clean = {k: v for k, v in (attributes or {}).items() if v is not None}
    if name in HISTOGRAMS:
        instrument.record(amount, clean)
    else:
        instrument.add(amount, clean)


def shutdown() -> None:
    """Flush and stop tracing (idempotent)."""
    global _tracer, _provider, _meters
    if _provider is not None:
        _provider.shutdown()
    if _meters is not None:
        _meters.shutdown()
    _instruments.clear()
    _tracer = None
    _provider = None
    _meters = None


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, parent: object | None = None
) -> Iterator[Span | None]:
    """A span around the block, child of the current one (or of ``parent``, a context
    from :func:`current_context`); ``None`` and nothing recorded when tracing is off."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    clean = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer.start_as_current_span(name, context=parent, attributes=clean) as current:  # type: ignore[arg-type]
        yield current


def current_context() -> object | None:
    """The current span context, to parent spans opened on another thread (None off)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def set_attributes(current: Span | None, attributes: Mapping[str, Any]) -> None:
    """Set attributes on ``current`` (nothing when it is None)."""
    if current is not None:
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})


class JsonLinesExporter:
    """Writes each finished span as one JSON line (for people without a collector)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        with self._lock:
            for s in spans:
                self._file.write(json.dumps(_span_dict(s), default=str) + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _span_dict(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.context
    parent = s.parent
    return {
        "name": s.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "start_ns": s.start_time,
        "end_ns": s.end_time,
        "status": s.status.status_code.name,
        "attributes": dict(s.attributes or {}),
    }
