"""Outermost interceptor: request id, the call context, one log line and metrics per call."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from ..metrics import RPC_IN_FLIGHT, RPC_LATENCY, RPC_TOTAL
from .base import ScopeInterceptor, metadata_value
from .context import CallContext, new_request_id, reset_call_context, set_call_context

log = logging.getLogger("realauth.rpc")

MAX_REQUEST_ID = 128


def _clean_request_id(value: str) -> str:
    if value and len(value) <= MAX_REQUEST_ID and all(c.isalnum() or c in "-_.:" for c in value):
        return value
    return new_request_id()


def _ended_by(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """Why a handler was cut off: the caller's deadline passing is what the caller sees, DEADLINE_EXCEEDED."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


class ObserveInterceptor(ScopeInterceptor):
    def __init__(self, region: str) -> None:
        self.region = region

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        action = method.rsplit("/", 1)[-1]
        ctx = CallContext(
            request_id=_clean_request_id(metadata_value(context, "x-request-id")),
            action=action,
            region=self.region,
        )
        token = set_call_context(ctx)
        await context.send_initial_metadata((("x-request-id", ctx.request_id),))
        RPC_IN_FLIGHT.labels(action).inc()
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except BaseException:
            if ctx.code is grpc.StatusCode.OK:
                ctx.code = _ended_by(context)
            raise
        finally:
            elapsed = time.monotonic() - ctx.started
            code = ctx.code.name
            RPC_IN_FLIGHT.labels(action).dec()
            RPC_TOTAL.labels(action, code).inc()
            RPC_LATENCY.labels(action, code).observe(elapsed)
            log.info(
                "rpc",
                extra={
                    "request_id": ctx.request_id,
                    "tenant": ctx.tenant,
                    "provider": ctx.provider,
                    "action": action,
                    "status": code,
                    "error_code": ctx.error_code,
                    "error": ctx.error_message,
                    "latency_ms": round(elapsed * 1000, 1),
                },
            )
            reset_call_context(token)
