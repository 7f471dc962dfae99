"""OpenTelemetry tracing, an opt-in extra (``pip install 'realauth[otel]'``; docs/operations.md, "Tracing").

Imported only when tracing is on (:func:`realauth_server.tracecontext.otel_enabled`), so with it off the SDK is
never loaded and nothing is spent. When on: a SERVER span per RPC and per landing or push, continuing the caller's
``traceparent`` (the propagators ``OTEL_PROPAGATORS`` names, W3C trace context by default); CLIENT child spans for
every vendor HTTP call and every session store operation. Export follows the standard
variables: ``OTEL_TRACES_EXPORTER`` (otlp, console, none), ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (http/protobuf
by default, or grpc), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``/``HEADERS``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER[_ARG]`` and ``OTEL_BSP_*``.

Spans carry no payloads: names, ids realauth already logs (request id, tenant, provider), codes and outcomes. Vendor
calls are not given a ``traceparent``: vendors are outside the trust boundary.

Child spans are recorded after the fact from the observer hooks (start time = end − duration), which keeps the
providers and stores free of any tracing code.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised by a deployment without the extra
    raise ImportError(
        "OpenTelemetry tracing is on (server.otel or REALAUTH_OTEL) but its packages are missing: "
        "pip install 'realauth[otel]'"
    ) from exc

from . import __version__
from .providers.base import Provider, add_vendor_observer
from .store.base import add_store_observer
from .tracecontext import ServerSpan

#: The tracer of the server whose call is running (several servers may share a process, as in the tests).
_TRACER: contextvars.ContextVar[trace.Tracer | None] = contextvars.ContextVar("realauth_tracer", default=None)


def _exporter_from_env() -> SpanExporter | None:
    """The span exporter the standard ``OTEL_*`` variables name (None: ``OTEL_TRACES_EXPORTER=none``)."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: realauth supports otlp, console or none")
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip() or "http/protobuf"
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise ValueError(f"OTLP protocol {protocol!r}: realauth supports http/protobuf or grpc")


def _resource() -> Resource:
    attributes: dict[str, str] = {"service.version": __version__}
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not named:
        attributes["service.name"] = "realauth"
    return Resource.create(attributes)


class _Span:
    """:class:`~realauth_server.tracecontext.ServerSpan` over an OpenTelemetry span."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.trace_id = format(span.get_span_context().trace_id, "032x")

    def set(self, key: str, value: str | int | float | bool) -> None:
        if value != "":
            self.span.set_attribute(key, value)

    def finish(self, status: str, error: bool) -> None:
        if error:
            self.span.set_status(Status(StatusCode.ERROR, status))


class OtelTracing:
    """One server's tracer provider. ``exporter`` (tests: an in-memory one) replaces the environment's choice and
    is exported synchronously; otherwise spans are batched (``OTEL_BSP_*``)."""

    def __init__(self, exporter: SpanExporter | None = None) -> None:
        self.provider = TracerProvider(resource=_resource())  # the sampler follows OTEL_TRACES_SAMPLER
        processor: SpanProcessor | None
        if exporter is not None:
            processor = SimpleSpanProcessor(exporter)
        else:
            chosen = _exporter_from_env()
            processor = BatchSpanProcessor(chosen) if chosen is not None else None
        if processor is not None:
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("realauth", __version__)

    @contextmanager
    def server_span(self, name: str, carrier: Mapping[str, str], *, http: bool = False) -> Iterator[ServerSpan]:
        attributes: dict[str, Any] = {}
        if not http:
            service, _, method = name.rpartition("/")
            attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        with self.tracer.start_as_current_span(
            name,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,  # exception texts are not vetted for secrets; the status code says enough
            set_status_on_exception=False,
        ) as span:
            token = _TRACER.set(self.tracer)
            try:
                yield _Span(span)
            finally:
                _TRACER.reset(token)

    def shutdown(self) -> None:
        """Flush what is batched and stop exporting (server stop)."""
        self.provider.shutdown()


def _child_span(name: str, seconds: float, attributes: Mapping[str, Any], error: bool) -> None:
    tracer = _TRACER.get()
    if tracer is None:
        return
    end = time.time_ns()
    span = tracer.start_span(name, kind=SpanKind.CLIENT, start_time=end - int(seconds * 1e9), attributes=attributes)
    if error:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end)


def _vendor_span(provider: Provider, action: str, outcome: str, seconds: float) -> None:
    attributes: dict[str, Any] = {
        "realauth.provider": provider.name,
        "realauth.provider_kind": provider.kind,
        "realauth.vendor_action": action,
        "realauth.outcome": outcome,
    }
    if outcome.isdigit():
        attributes["http.response.status_code"] = int(outcome)
    _child_span(f"vendor {provider.kind} {action}", seconds, attributes, not (outcome.isdigit() and int(outcome) < 400))


def _store_span(backend: str, op: str, outcome: str, seconds: float) -> None:
    attributes = {"db.system.name": backend, "db.operation.name": op, "realauth.outcome": outcome}
    _child_span(f"store {op}", seconds, attributes, outcome == "error")


add_vendor_observer(_vendor_span)
add_store_observer(_store_span)
