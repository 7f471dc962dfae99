"""One exception type for every failed call, decoded from the server's rich error details.

realauth answers every error with a `google.rpc.Status` in the `grpc-status-details-bin` trailer: an `ErrorInfo`
(reason = the neutral error code, metadata `request_id`, `provider`, `vendor_code`, …), a `BadRequest` naming the
bad fields on INVALID_ARGUMENT, and a `RetryInfo` exactly when the call is safe to retry after its delay. The
call's `ResponseMetadata` travels as the `realauth-response-metadata-bin` trailer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from .v1 import realauth_pb2 as pb

STATUS_DETAILS_KEY = "grpc-status-details-bin"
RESPONSE_METADATA_KEY = "realauth-response-metadata-bin"


class FieldViolation(NamedTuple):
    """One bad request field (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


@dataclass(frozen=True)
class StatusDetails:
    """What a `google.rpc.Status` carries, flattened; `unknown` lists detail types this library does not decode."""

    code: int = 0
    message: str = ""
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    retry_delay: float | None = None
    unknown: tuple[str, ...] = ()


def decode_status_details(raw: bytes) -> StatusDetails:
    """Decode a serialized `google.rpc.Status` (the `grpc-status-details-bin` value); ValueError if it is not one."""
    try:
        status = status_pb2.Status.FromString(raw)
    except DecodeError as exc:
        raise ValueError("not a serialized google.rpc.Status") from exc
    reason = domain = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    retry_delay: float | None = None
    unknown: list[str] = []
    for any_ in status.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif any_.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_.Unpack(retry)
            retry_delay = retry.retry_delay.ToNanoseconds() / 1e9
        else:
            unknown.append(any_.type_url)
    return StatusDetails(
        status.code, status.message, reason, domain, metadata, tuple(violations), retry_delay, tuple(unknown)
    )


class RealAuthError(Exception):
    """A failed realauth call.

    - ``grpc_code``: the gRPC status code; ``message``: the server's message (never secrets or vendor tokens);
    - ``code``: the neutral error code (``ErrorInfo.reason``, e.g. ``InvalidParameter``, ``ProviderUnavailable``;
      the list is docs/errors.md); empty when the failure never reached realauth (e.g. the connection failed);
    - ``vendor_code``: the vendor's own code when a vendor answered, else empty;
    - ``request_id``: the id to quote in a bug report (the one this library sent as ``x-request-id``);
    - ``field_violations``: the bad fields on INVALID_ARGUMENT;
    - ``retry_delay``: seconds the server asks to wait before retrying; None means do not retry as is;
    - ``metadata``: all of ``ErrorInfo.metadata``; ``response_metadata``: the call's ResponseMetadata trailer;
    - ``attempts``: how many calls this library made before giving up.
    """

    def __init__(
        self,
        grpc_code: grpc.StatusCode,
        message: str,
        *,
        code: str = "",
        vendor_code: str = "",
        request_id: str = "",
        field_violations: Iterable[FieldViolation] = (),
        retry_delay: float | None = None,
        metadata: dict[str, str] | None = None,
        response_metadata: pb.ResponseMetadata | None = None,
        attempts: int = 1,
    ) -> None:
        self.grpc_code = grpc_code
        self.message = message
        self.code = code
        self.vendor_code = vendor_code
        self.request_id = request_id
        self.field_violations = tuple(field_violations)
        self.retry_delay = retry_delay
        self.metadata = dict(metadata or {})
        self.response_metadata = response_metadata
        self.attempts = attempts
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.grpc_code.name}"
        if self.code:
            text += f" {self.code}"
        text += f": {self.message}"
        if self.field_violations:
            text += " [" + "; ".join(f"{v.field}: {v.description}" for v in self.field_violations) + "]"
        if self.vendor_code:
            text += f" (vendor_code {self.vendor_code})"
        if self.request_id:
            text += f" (request_id {self.request_id})"
        return text

    @property
    def retriable(self) -> bool:
        """Whether the server marked this failure as safe to retry (it sent a RetryInfo)."""
        return self.retry_delay is not None

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError, *, request_id: str = "", attempts: int = 1) -> RealAuthError:
        """Decode a grpc (sync or aio) error; ``request_id`` is what the caller sent, used when the server's
        answer names none (e.g. the connection failed before realauth saw the call)."""
        call: Any = err
        grpc_code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
        message = (call.details() if hasattr(call, "details") else "") or ""
        trailing = (call.trailing_metadata() if hasattr(call, "trailing_metadata") else None) or ()
        details = StatusDetails()
        response_metadata: pb.ResponseMetadata | None = None
        for key, value in trailing:
            if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
                # Not decodable (a proxy's own status?): keep the gRPC code and message.
                with contextlib.suppress(ValueError):
                    details = decode_status_details(value)
            elif key == RESPONSE_METADATA_KEY and isinstance(value, bytes):
                with contextlib.suppress(DecodeError):
                    response_metadata = pb.ResponseMetadata.FromString(value)
        code = details.reason or (response_metadata.error.code if response_metadata is not None else "")
        rid = details.metadata.get("request_id") or (response_metadata.request_id if response_metadata else "")
        return cls(
            grpc_code,
            message,
            code=code,
            vendor_code=details.metadata.get("vendor_code", ""),
            request_id=rid or request_id,
            field_violations=details.field_violations,
            retry_delay=details.retry_delay,
            metadata=details.metadata,
            response_metadata=response_metadata,
            attempts=attempts,
        )
