"""The one place where exceptions become gRPC statuses.

A RealAuthError becomes its table code plus ``google.rpc.Status`` details (ErrorInfo, RetryInfo for
retriable errors, BadRequest for invalid fields) and the ResponseMetadata as binary trailing
metadata. Anything else becomes INTERNAL with only the request id: no stack trace, no secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import InternalError, RealAuthError, ServiceUnavailable
from ..store.factory import unavailable_errors
from .base import ScopeInterceptor, UnaryHandler
from .context import call_context

log = logging.getLogger("realauth.rpc")

DOMAIN = "realauth.v1"
METADATA_TRAILER = "realauth-response-metadata-bin"


def status_for(exc: RealAuthError, request_id: str) -> status_pb2.Status:
    message = exc.public_message()
    info = error_details_pb2.ErrorInfo(reason=exc.code, domain=DOMAIN)
    info.metadata["request_id"] = request_id
    if exc.provider:
        info.metadata["provider"] = exc.provider
    if exc.vendor_code:
        info.metadata["vendor_code"] = exc.vendor_code
    if exc.vendor_request_id:
        info.metadata["vendor_request_id"] = exc.vendor_request_id
    for key, value in exc.metadata.items():
        info.metadata.setdefault(key, value)
    details = [info]
    if exc.is_retriable:
        delay = exc.retry_after if exc.retry_after is not None else 1.0
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=0))
        retry.retry_delay.FromNanoseconds(int(delay * 1e9))
        details.append(retry)
    if exc.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return status_pb2.Status(code=exc.grpc_code.value[0], message=message, details=packed)


class ErrorInterceptor(ScopeInterceptor):
    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        try:
            yield
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await self._fail(context, exc)

    def unary(self, method: str, inner: UnaryHandler) -> UnaryHandler:
        fail = self._fail

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                await fail(context, exc)
                return None  # not reached: abort raises

        return handler

    async def _fail(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        """Abort the call with ``exc`` as a status: a RealAuthError as itself, a store outage as
        ServiceUnavailable, anything else as InternalError with only the request id."""
        if isinstance(exc, RealAuthError):
            await self._abort(context, exc)
        elif isinstance(exc, unavailable_errors()):
            ctx = call_context()
            log.warning("session store unavailable", extra={"request_id": ctx.request_id, "error": type(exc).__name__})
            await self._abort(context, ServiceUnavailable("the session store is unavailable; retry shortly"))
        else:
            ctx = call_context()
            log.exception("unhandled error", extra={"request_id": ctx.request_id, "action": ctx.action})
            await self._abort(context, InternalError(f"internal error (request id {ctx.request_id})"))

    async def _abort(self, context: grpc.aio.ServicerContext, exc: RealAuthError) -> None:
        ctx = call_context()
        ctx.code = exc.grpc_code
        ctx.error_code = exc.code
        ctx.error_message = exc.public_message()
        if exc.provider and not ctx.provider:
            ctx.provider = exc.provider
        if exc.vendor_request_id:
            ctx.provider_request_id = exc.vendor_request_id
        status = rpc_status.to_status(status_for(exc, ctx.request_id))
        meta = ctx.response_metadata((exc.code, exc.public_message()))
        trailing = (*status.trailing_metadata, (METADATA_TRAILER, meta.SerializeToString()))
        await context.abort(status.code, status.details, trailing_metadata=trailing)
