"""Per-call context (request id, action, tenant, …) in one context variable, set by interceptors."""

from __future__ import annotations

import contextvars
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc

from realauth.v1 import realauth_pb2 as pb

from ..logs import bind_call, unbind_call
from ..providers.base import RPC_VENDOR_CALLS, VendorCalls

API_VERSION = "v1"
SERVICE_NAME = "realauth"


@dataclass
class CallContext:
    request_id: str
    action: str
    #: The caller's W3C trace id (its ``traceparent``), or the server span's when OpenTelemetry is on; "" if none.
    trace_id: str = ""
    region: str = ""
    tenant: str = ""
    provider: str = ""
    provider_request_id: str = ""
    #: The session the call created or acted on, once the handler has it (on the ``rpc`` log line); "" if none.
    session_id: str = ""
    credentials: dict[str, object] = field(default_factory=dict)
    code: grpc.StatusCode = grpc.StatusCode.OK
    error_code: str = ""
    error_message: str = ""
    started: float = field(default_factory=time.monotonic)
    #: The call's vendor calls so far (``providers.base.observe_vendor_call`` counts them; on the ``rpc`` line).
    vendor: VendorCalls = field(default_factory=VendorCalls)

    def response_metadata(self, error: tuple[str, str] | None = None) -> pb.ResponseMetadata:
        meta = pb.ResponseMetadata(
            request_id=self.request_id,
            action=self.action,
            version=API_VERSION,
            service=SERVICE_NAME,
            region=self.region,
            provider_request_id=self.provider_request_id,
        )
        if error is not None:
            meta.error.code, meta.error.message = error
        return meta


_CALL: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("realauth_call", default=None)


def call_context() -> CallContext:
    ctx = _CALL.get()
    if ctx is None:
        raise RuntimeError("no call context: the context interceptor is not installed")
    return ctx


def current_or_none() -> CallContext | None:
    return _CALL.get()


CallToken = tuple[contextvars.Token[CallContext | None], contextvars.Token[Any], contextvars.Token[Any]]


def set_call_context(ctx: CallContext) -> CallToken:
    """Make ``ctx`` the call's context; log records inside the call carry its request id, trace, tenant, provider,
    and its vendor calls are counted in ``ctx.vendor``."""
    return _CALL.set(ctx), bind_call(ctx), RPC_VENDOR_CALLS.set(ctx.vendor)


def reset_call_context(token: CallToken) -> None:
    call, logged, vendor = token
    RPC_VENDOR_CALLS.reset(vendor)
    unbind_call(logged)
    _CALL.reset(call)


def new_request_id() -> str:
    return uuid.uuid4().hex
