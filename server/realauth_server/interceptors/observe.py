"""Outermost interceptor: request id, trace id, the call context, one log line and metrics (and a span) per call."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from ..metrics import RPC_IN_FLIGHT, RPC_LATENCY, RPC_TOTAL
from ..tracecontext import ServerSpan, Tracing, parse_traceparent
from .base import ScopeInterceptor, UnaryHandler, metadata_value
from .context import CallContext, CallToken, new_request_id, reset_call_context, set_call_context

log = logging.getLogger("realauth.rpc")

MAX_REQUEST_ID = 128
#: gRPC codes that mean the server failed (OpenTelemetry's semantic conventions for gRPC server spans).
SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})


#: An ASCII request id the check below accepts (for ASCII, ``str.isalnum`` is exactly ``[A-Za-z0-9]``).
_ASCII_REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.:]+")


def _clean_request_id(value: str) -> str:
    if not value or len(value) > MAX_REQUEST_ID:
        return new_request_id()
    if value.isascii():  # the usual case, one regular-expression match instead of a generator per character
        return value if _ASCII_REQUEST_ID.fullmatch(value) else new_request_id()
    if all(c.isalnum() or c in "-_.:" for c in value):
        return value
    return new_request_id()


def _ended_by(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """Why a handler was cut off: the caller's deadline passing is what the caller sees, DEADLINE_EXCEEDED."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


#: ``code.name`` of every status code (an enum member's ``.name`` is a descriptor call, slower than a dict lookup).
_CODE_NAMES = {code: code.name for code in grpc.StatusCode}


@functools.cache
def _in_flight(action: str) -> Any:
    """The labelled gauge child, looked up once per method (``labels()`` takes a lock and builds a key each call)."""
    return RPC_IN_FLIGHT.labels(action)


@functools.cache
def _by_code(action: str, code: str) -> tuple[Any, Any]:
    """The call counter and latency children for a method and status code (a bounded set: methods × codes)."""
    return RPC_TOTAL.labels(action, code), RPC_LATENCY.labels(action, code)


class ObserveInterceptor(ScopeInterceptor):
    def __init__(self, region: str, tracing: Tracing | None = None) -> None:
        self.region = region
        self.tracing = tracing

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        call = await self._begin(method, method.rsplit("/", 1)[-1], context)
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except BaseException:
            call.cut_off(context)
            raise
        finally:
            call.end()

    def unary(self, method: str, inner: UnaryHandler) -> UnaryHandler:
        action, begin = method.rsplit("/", 1)[-1], self._begin

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = await begin(method, action, context)
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except BaseException:
                call.cut_off(context)
                raise
            finally:
                call.end()

        return handler

    async def _begin(self, method: str, action: str, context: grpc.aio.ServicerContext) -> _Call:
        """The call's context (request id, trace), its span when tracing is on, the response's ``x-request-id``."""
        parent = parse_traceparent(metadata_value(context, "traceparent"))
        ctx = CallContext(
            request_id=_clean_request_id(metadata_value(context, "x-request-id")),
            action=action,
            trace_id=parent.trace_id if parent else "",
            region=self.region,
        )
        spans = contextlib.ExitStack()  # a SERVER span around the call when tracing is on (realauth_server.tracing)
        span = None
        if self.tracing is not None:
            span = spans.enter_context(self.tracing.server_span(method.lstrip("/"), _metadata(context)))
            ctx.trace_id = span.trace_id
        call = _Call(ctx, action, span, spans, set_call_context(ctx))
        await context.send_initial_metadata((("x-request-id", ctx.request_id),))
        call.in_flight.inc()
        return call


class _Call:
    """One call being observed: what its end needs (the metrics' children, the log line, the span)."""

    __slots__ = ("action", "ctx", "in_flight", "span", "spans", "token")

    def __init__(
        self, ctx: CallContext, action: str, span: ServerSpan | None, spans: contextlib.ExitStack, token: CallToken
    ) -> None:
        self.ctx, self.action, self.span, self.spans, self.token = ctx, action, span, spans, token
        self.in_flight = _in_flight(action)

    def cut_off(self, context: grpc.aio.ServicerContext) -> None:
        """The handler ended with an exception that is not a status: say why the caller's call ended."""
        if self.ctx.code is grpc.StatusCode.OK:
            self.ctx.code = _ended_by(context)

    def end(self) -> None:
        """Metrics, the one ``rpc`` log line and the span's end; then the call's context is reset."""
        ctx, action, span = self.ctx, self.action, self.span
        elapsed = time.monotonic() - ctx.started
        code = _CODE_NAMES[ctx.code]
        self.in_flight.dec()
        total, latency = _by_code(action, code)
        total.inc()
        latency.observe(elapsed)
        vendor = ctx.vendor
        log.info(
            "rpc",
            extra={
                "request_id": ctx.request_id,
                "tenant": ctx.tenant,
                "provider": ctx.provider,
                "action": action,
                "session_id": ctx.session_id,
                "status": code,
                "error_code": ctx.error_code,
                "error": ctx.error_message,
                "latency_ms": round(elapsed * 1000, 1),
                "vendor_calls": vendor.calls,
                "vendor_ms": round(vendor.seconds * 1000, 1),
                "vendor_outcome": vendor.outcome,
            },
        )
        if span is not None:
            span.set("realauth.request_id", ctx.request_id)
            span.set("realauth.tenant", ctx.tenant)
            span.set("realauth.provider", ctx.provider)
            span.set("rpc.grpc.status_code", ctx.code.value[0])
            if ctx.error_code:
                span.set("realauth.error_code", ctx.error_code)
            span.finish(code, code in SERVER_ERRORS)
        self.spans.close()
        reset_call_context(self.token)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The call's text metadata, for the trace propagator (``traceparent``, ``tracestate``, ``baggage``)."""
    out: dict[str, str] = {}
    for k, v in context.invocation_metadata() or ():
        if k not in out and not k.endswith("-bin"):
            out[k] = v if isinstance(v, str) else v.decode("latin-1")
    return out
