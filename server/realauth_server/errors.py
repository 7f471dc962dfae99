"""One exception hierarchy, one table from neutral error codes to gRPC status codes.

Handlers and adapters raise these; the error interceptor is the only place that turns them into
gRPC statuses. Vendor adapters translate vendor codes into these classes through their own
tables (see ``providers.base.VendorErrorRule``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import grpc

#: A caller's value quoted in an error message is cut to this many characters (see :func:`echo`).
ECHO_LIMIT = 64
#: A public message (status message, ErrorInfo, the ResponseMetadata trailer, the RPC log line) is cut
#: to this many characters: three copies of it travel as trailers, and gRPC refuses trailers above 16 KiB.
MAX_PUBLIC_MESSAGE = 1024
ELLIPSIS = "\u2026"


def echo(value: str, limit: int = ECHO_LIMIT) -> str:
    """A caller-supplied value as quoted in a message: at most ``limit`` characters, then "…".

    Every message that repeats what the caller sent goes through this, so a huge value never
    becomes a huge status message, trailer or log line.
    """
    return value if len(value) <= limit else value[:limit] + ELLIPSIS


def clip(text: str, limit: int = MAX_PUBLIC_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters (the last one "…" when cut)."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, reported as a google.rpc.BadRequest violation."""

    field: str
    description: str


class RealAuthError(Exception):
    """Base of every error realauth reports to a caller."""

    code: ClassVar[str] = "InternalError"
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    retriable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        vendor_code: str = "",
        vendor_request_id: str = "",
        retriable: bool | None = None,
        retry_after: float | None = None,
        violations: tuple[FieldViolation, ...] = (),
        outcome_unknown: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.vendor_code = vendor_code
        self.vendor_request_id = vendor_request_id
        self.is_retriable = self.retriable if retriable is None else retriable
        self.retry_after = retry_after
        self.violations = violations
        #: A request went out and no answer came back: the vendor may have acted on it (idempotency records it).
        self.outcome_unknown = outcome_unknown
        #: Extra ErrorInfo metadata (e.g. which bound refused the call); never ids of others or secrets.
        self.metadata = dict(metadata or {})

    def public_message(self) -> str:
        """Message shown to the caller: ours, plus the vendor's code and request id when present."""
        parts = [self.message]
        if self.vendor_code:
            parts.append(f"vendor code {self.vendor_code}")
        if self.vendor_request_id:
            parts.append(f"vendor request id {self.vendor_request_id}")
        return clip("; ".join(parts))


class InvalidParameter(RealAuthError):
    code = "InvalidParameter"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field_name: str, description: str, **kw: object) -> None:
        description = clip(description)
        violations = (FieldViolation(field_name, description),)
        super().__init__(f"invalid {field_name}: {description}", violations=violations, **kw)  # type: ignore[arg-type]
        self.field = field_name


class IdempotencyKeyReused(RealAuthError):
    """The idempotency_key was first used with other parameters (named in the violations): use a new key."""

    code = "IdempotencyKeyReused"
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, fields: tuple[str, ...]) -> None:
        violations = tuple(
            FieldViolation(f, "differs from the request that first used this idempotency_key") for f in fields
        )
        super().__init__(
            f"idempotency_key was already used with a different {', '.join(fields)}; "
            "send the same parameters to get the earlier session, or use a new key",
            violations=violations,
        )
        self.fields = fields


class Unauthenticated(RealAuthError):
    code = "Unauthenticated"
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class AccessDenied(RealAuthError):
    code = "AccessDenied"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class SessionNotFound(RealAuthError):
    code = "SessionNotFound"
    grpc_code = grpc.StatusCode.NOT_FOUND


class WebhookDeliveryNotFound(RealAuthError):
    """No webhook delivery of the calling tenant has this id (another tenant's is reported the same way)."""

    code = "WebhookDeliveryNotFound"
    grpc_code = grpc.StatusCode.NOT_FOUND


class ProviderAuthFailed(RealAuthError):
    """The vendor rejected our signature or key: a configuration problem, never retried."""

    code = "ProviderAuthFailed"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class TokenExpired(RealAuthError):
    code = "TokenExpired"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class TokenNotFound(RealAuthError):
    code = "TokenNotFound"
    grpc_code = grpc.StatusCode.NOT_FOUND


class VerificationPending(RealAuthError):
    code = "VerificationPending"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class VerificationFailed(RealAuthError):
    """The vendor gave a final negative verdict and has no result to exchange."""

    code = "VerificationFailed"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class SessionCancelled(RealAuthError):
    """The caller cancelled this session (CancelAuthSession): nothing is exchanged for it; create a new one."""

    code = "SessionCancelled"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class SessionNotCancellable(RealAuthError):
    """Only a pending session can be cancelled; this one already finished, failed, expired or was exchanged."""

    code = "SessionNotCancellable"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class RateLimited(RealAuthError):
    code = "RateLimited"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retriable = True


class Overloaded(RealAuthError):
    """realauth refused the call at once to stay responsive (an in-flight or open-watch bound); retry after RetryInfo.

    ErrorInfo metadata ``scope`` names the bound: server, provider, watches_server or watches_tenant.
    """

    code = "Overloaded"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retriable = True


class TenantRateLimited(RealAuthError):
    """The calling tenant exceeded its configured request rate; retry after RetryInfo."""

    code = "TenantRateLimited"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retriable = True


class ProviderUnavailable(RealAuthError):
    code = "ProviderUnavailable"
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retriable = True


class ProviderTimeout(RealAuthError):
    code = "ProviderTimeout"
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    retriable = True


class ProviderError(RealAuthError):
    """The vendor answered with something we cannot interpret (malformed body, unknown code)."""

    code = "ProviderError"
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retriable = True


class ServiceUnavailable(RealAuthError):
    """realauth itself cannot serve right now (session store unreachable, shutting down): retry, elsewhere."""

    code = "ServiceUnavailable"
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retriable = True


class InternalError(RealAuthError):
    code = "InternalError"
    grpc_code = grpc.StatusCode.INTERNAL


ALL_ERRORS: tuple[type[RealAuthError], ...] = (
    InvalidParameter,
    IdempotencyKeyReused,
    Unauthenticated,
    AccessDenied,
    SessionNotFound,
    WebhookDeliveryNotFound,
    ProviderAuthFailed,
    TokenExpired,
    TokenNotFound,
    VerificationPending,
    VerificationFailed,
    SessionCancelled,
    SessionNotCancellable,
    RateLimited,
    Overloaded,
    TenantRateLimited,
    ProviderUnavailable,
    ProviderTimeout,
    ProviderError,
    ServiceUnavailable,
    InternalError,
)


@dataclass(frozen=True)
class ErrorCodeInfo:
    code: str
    grpc_code: grpc.StatusCode
    retriable: bool
    description: str = field(default="")


#: The single mapping from neutral ``Error.code`` to gRPC status (documented in docs/errors.md).
ERROR_CODES: Mapping[str, ErrorCodeInfo] = {
    cls.code: ErrorCodeInfo(cls.code, cls.grpc_code, cls.retriable, (cls.__doc__ or "").strip()) for cls in ALL_ERRORS
}

ERROR_CLASSES: Mapping[str, type[RealAuthError]] = {cls.code: cls for cls in ALL_ERRORS}
