"""Per-call context (request id, action, tenant, …) in one context variable, set by interceptors."""

from __future__ import annotations

import contextvars
import time
import uuid
from dataclasses import dataclass, field

import grpc

from realauth.v1 import realauth_pb2 as pb

API_VERSION = "v1"
SERVICE_NAME = "realauth"


@dataclass
class CallContext:
    request_id: str
    action: str
    region: str = ""
    tenant: str = ""
    provider: str = ""
    provider_request_id: str = ""
    credentials: dict[str, object] = field(default_factory=dict)
    code: grpc.StatusCode = grpc.StatusCode.OK
    error_code: str = ""
    error_message: str = ""
    started: float = field(default_factory=time.monotonic)

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


def set_call_context(ctx: CallContext) -> contextvars.Token[CallContext | None]:
    return _CALL.set(ctx)


def reset_call_context(token: contextvars.Token[CallContext | None]) -> None:
    _CALL.reset(token)


def new_request_id() -> str:
    return uuid.uuid4().hex
