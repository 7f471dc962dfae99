"""Domain ↔ proto conversion, kept apart from handlers so both stay readable."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from realauth.v1 import realauth_pb2 as pb

from .. import errors as E
from ..domain import AuthSession, SessionState, VerificationResult
from ..outbox import DeliveryStatus, WebhookDelivery
from ..providers.base import Provider
from ..providers.breaker import BreakerState

STATES = {
    SessionState.PENDING: pb.AUTH_SESSION_STATE_PENDING,
    SessionState.COMPLETED: pb.AUTH_SESSION_STATE_COMPLETED,
    SessionState.EXCHANGED: pb.AUTH_SESSION_STATE_EXCHANGED,
    SessionState.FAILED: pb.AUTH_SESSION_STATE_FAILED,
    SessionState.EXPIRED: pb.AUTH_SESSION_STATE_EXPIRED,
    SessionState.CANCELLED: pb.AUTH_SESSION_STATE_CANCELLED,
}


STATES_FROM_PB: dict[int, SessionState] = {int(v): k for k, v in STATES.items()}

#: The range google.protobuf.Timestamp allows (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z).
MIN_TIMESTAMP, MAX_TIMESTAMP = -62_135_596_800, 253_402_300_799


def state_filter(value: int) -> SessionState | None:
    """A request's AuthSessionState filter: UNSPECIFIED is "any"; unknown numbers (open enum) are invalid."""
    if value == pb.AUTH_SESSION_STATE_UNSPECIFIED:
        return None
    state = STATES_FROM_PB.get(value)
    if state is None:
        raise E.InvalidParameter("state", f"{value} is not an AuthSessionState")
    return state


def time_filter(msg: pb.ListAuthSessionsRequest, field_name: str) -> float | None:
    """A Timestamp filter as epoch seconds (None when unset), refusing values outside Timestamp's range."""
    if not msg.HasField(field_name):
        return None
    ts: Timestamp = getattr(msg, field_name)
    if not (MIN_TIMESTAMP <= ts.seconds <= MAX_TIMESTAMP) or not (0 <= ts.nanos < 1_000_000_000):
        raise E.InvalidParameter(field_name, "is not a valid timestamp (years 1 to 9999, nanos in [0, 1e9))")
    return ts.seconds + ts.nanos / 1e9


CIRCUIT_STATES = {
    BreakerState.CLOSED: pb.CIRCUIT_STATE_CLOSED,
    BreakerState.OPEN: pb.CIRCUIT_STATE_OPEN,
    BreakerState.HALF_OPEN: pb.CIRCUIT_STATE_HALF_OPEN,
}


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def result_pb(r: VerificationResult) -> pb.VerificationResult:
    out = pb.VerificationResult()
    fill_result(out, r)
    return out


def fill_result(out: pb.VerificationResult, r: VerificationResult) -> None:
    """Set ``r`` into ``out`` in place (a result built apart and then copied in is built twice)."""
    out.SetInParent()  # present even when every field is at its default (a failed result without codes)
    out.passed = r.passed
    out.group_id = r.group_id
    out.vendor_result_code = r.vendor_result_code
    out.vendor_result_message = r.vendor_result_message
    out.vendor_request_id = r.vendor_request_id
    if r.score is not None:
        out.score = r.score
    if r.complete_time:
        out.complete_time.FromNanoseconds(int(r.complete_time * 1e9))


def _session_fields(s: AuthSession) -> pb.AuthSession:
    """The session's scalar fields (one constructor call: faster than setting them one by one)."""
    return pb.AuthSession(
        session_id=s.session_id,
        provider=s.provider,
        provider_kind=s.provider_kind,
        verification_url=s.verification_url,
        token=s.token,
        state=STATES[s.state],
        subject_id=s.subject_id,
        callback_url=s.callback_url,
        model=s.model,
        locale=s.locale,
    )


def _session_rest(out: pb.AuthSession, s: AuthSession) -> None:
    # Set in place (each is present, even at 0): a Timestamp built apart and passed in is built, then copied.
    out.create_time.FromNanoseconds(int(s.create_time * 1e9))
    out.expire_time.FromNanoseconds(int(s.expire_time * 1e9))
    out.exchange_deadline.FromNanoseconds(int(s.exchange_deadline * 1e9))
    out.update_time.FromNanoseconds(int(s.update_time * 1e9))
    if s.result is not None:
        fill_result(out.result, s.result)


def session_pb(s: AuthSession) -> pb.AuthSession:
    out = _session_fields(s)
    _session_rest(out, s)
    return out


def fill_session(out: pb.AuthSession, s: AuthSession) -> None:
    """:func:`session_pb` into a response's own field: only the scalars are copied in, the timestamps and the
    result are set in place (a whole session passed to a response's constructor is copied whole)."""
    out.MergeFrom(_session_fields(s))
    _session_rest(out, s)


def provider_pb(p: Provider, *, is_default: bool) -> pb.Provider:
    """``is_default`` is the caller's default (a tenant may not use the server's), so the handler decides it."""
    window = Duration()
    window.FromNanoseconds(int(p.settings.exchange_window * 1e9))
    return pb.Provider(
        name=p.name,
        kind=p.kind,
        sandbox=p.settings.sandbox,
        is_default=is_default,
        models=list(p.models),
        exchange_window=window,
        circuit_state=CIRCUIT_STATES[p.breaker.state],
    )


DELIVERY_STATUSES = {
    DeliveryStatus.PENDING: pb.WEBHOOK_DELIVERY_STATUS_PENDING,
    DeliveryStatus.DELIVERED: pb.WEBHOOK_DELIVERY_STATUS_DELIVERED,
    DeliveryStatus.FAILED: pb.WEBHOOK_DELIVERY_STATUS_FAILED,
}
DELIVERY_STATUS_FILTER = {v: k for k, v in DELIVERY_STATUSES.items()}


def delivery_pb(d: WebhookDelivery) -> pb.WebhookDelivery:
    out = pb.WebhookDelivery(
        delivery_id=d.delivery_id,
        event_id=d.event_id,
        event_type=d.event_type,
        session_id=d.session_id,
        sequence=d.sequence,
        endpoint_id=d.endpoint,
        status=DELIVERY_STATUSES[d.status],
        attempts=d.attempts,
        last_error=d.last_error,
        last_http_status=d.last_status,
        create_time=timestamp(d.created),
    )
    if d.status is DeliveryStatus.PENDING:
        out.next_attempt_time.CopyFrom(timestamp(d.next_at))
    if d.delivered_at:
        out.delivered_time.CopyFrom(timestamp(d.delivered_at))
    return out
