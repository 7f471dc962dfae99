"""Prometheus metrics, served on the HTTP side at /metrics. Labels never carry ids or secrets.

Every metric is listed in docs/operations.md, with example alerts. Lower layers report through observer hooks
(vendor calls in providers.base, store operations and session lifecycle in store.base, refusals in service), so
none of them imports prometheus_client.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .. import __version__
from ..admission import add_rejection_observer
from ..domain import AuthSession, SessionState
from ..providers.base import Provider, add_breaker_observer, add_retry_observer, add_vendor_observer
from ..providers.breaker import BreakerState
from ..service import add_idempotency_observer, add_refusal_observer
from ..store.base import add_session_observer, add_store_observer
from ..webhooks import add_webhook_observer

# A counter's `_created` series doubles the series count and no dashboard or alert here reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

RPC_TOTAL = Counter(
    "realauth_rpc_requests",
    "gRPC calls handled, by method and status code",
    ["method", "code"],
    registry=REGISTRY,
)
RPC_LATENCY = Histogram(
    "realauth_rpc_latency_seconds",
    "gRPC call latency, by method and status code",
    ["method", "code"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RPC_IN_FLIGHT = Gauge("realauth_rpc_in_flight", "gRPC calls in progress", ["method"], registry=REGISTRY)
VENDOR_TOTAL = Counter(
    "realauth_vendor_calls",
    "Outbound vendor calls, by provider, action and outcome (HTTP status, timeout, transport_error)",
    ["provider", "kind", "action", "outcome"],
    registry=REGISTRY,
)
VENDOR_LATENCY = Histogram(
    "realauth_vendor_latency_seconds",
    "Outbound vendor call latency, by provider, action and outcome",
    ["provider", "kind", "action", "outcome"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

REFUSED_TOTAL = Counter(
    "realauth_landing_refused",
    "Browser landings, vendor pushes and exchanges that changed nothing, by route (landing, push, exchange),"
    " provider and reason (bad_signature, foreign_token, token_reused, result_mismatch, not_finished, replayed,"
    " expired, ...)",
    ["route", "provider", "kind", "reason"],
    registry=REGISTRY,
)
REJECTED_TOTAL = Counter(
    "realauth_rejected",
    "Calls refused at once under load, by reason (Overloaded, TenantRateLimited) and scope (the bound that refused: "
    "server, provider, watches_server, watches_tenant, tenant)",
    ["reason", "scope"],
    registry=REGISTRY,
)


def _observe_vendor(provider: Provider, action: str, outcome: str, seconds: float) -> None:
    VENDOR_TOTAL.labels(provider.name, provider.kind, action, outcome).inc()
    VENDOR_LATENCY.labels(provider.name, provider.kind, action, outcome).observe(seconds)


add_vendor_observer(_observe_vendor)


def _observe_refusal(route: str, provider: str, reason: str) -> None:
    REFUSED_TOTAL.labels(route, provider, kind_of(provider), reason).inc()


add_refusal_observer(_observe_refusal)

BREAKER_STATE = Gauge(
    "realauth_provider_circuit_state",
    "Circuit breaker state per provider instance: 1 for the current state, 0 for the others",
    ["provider", "state"],
    registry=REGISTRY,
)
BREAKER_TRANSITIONS = Counter(
    "realauth_provider_circuit_transitions",
    "Circuit breaker transitions, by provider and the state entered",
    ["provider", "to"],
    registry=REGISTRY,
)
VENDOR_RETRIES = Counter(
    "realauth_vendor_retries",
    "Vendor call retries, by provider and whether the retry budget allowed them (allowed, refused)",
    ["provider", "decision"],
    registry=REGISTRY,
)
IDEMPOTENCY_EVENTS = Counter(
    "realauth_idempotency_events",
    "CreateAuthSession idempotency outcomes: replayed, key_reused (refused), outcome_unknown (a create whose "
    "vendor call got no answer), retry_after_unknown (a retry that called the vendor again after one)",
    ["event"],
    registry=REGISTRY,
)


def _observe_breaker(provider: Provider, old: BreakerState, new: BreakerState) -> None:
    for state in BreakerState:
        BREAKER_STATE.labels(provider.name, state.value).set(1 if state is new else 0)
    BREAKER_TRANSITIONS.labels(provider.name, new.value).inc()


def _observe_retry(provider: Provider, action: str, allowed: bool) -> None:
    VENDOR_RETRIES.labels(provider.name, "allowed" if allowed else "refused").inc()


def _observe_idempotency(event: str) -> None:
    IDEMPOTENCY_EVENTS.labels(event).inc()


def track_provider(provider: Provider) -> None:
    """Publish a provider's breaker state from the start (closed), not only after its first transition."""
    for state in BreakerState:
        BREAKER_STATE.labels(provider.name, state.value).set(1 if state is provider.breaker.state else 0)


add_breaker_observer(_observe_breaker)
add_retry_observer(_observe_retry)
add_idempotency_observer(_observe_idempotency)
add_rejection_observer(lambda reason, scope: REJECTED_TOTAL.labels(reason, scope).inc())

# --- build, session lifecycle, landings, pushes, store (docs/operations.md) ------------------------------------------

BUILD_INFO = Gauge(
    "realauth_build_info",
    "Always 1: the running realauth version and Python implementation/version",
    ["version", "python"],
    registry=REGISTRY,
)
BUILD_INFO.labels(__version__, f"{platform.python_implementation()} {platform.python_version()}").set(1)

SESSIONS_CREATED = Counter(
    "realauth_sessions_created",
    "Sessions this replica created (the vendor's start call succeeded and the session was stored), by provider",
    ["provider", "kind"],
    registry=REGISTRY,
)
SESSIONS_FINISHED = Counter(
    "realauth_sessions_finished",
    "Sessions this replica moved to a final state, by provider and outcome (passed, failed, expired, cancelled)",
    ["provider", "kind", "outcome"],
    registry=REGISTRY,
)
LANDINGS = Counter(
    "realauth_landings",
    "Browser landings on /v1/callback, by provider and outcome (redirected, refused, error)",
    ["provider", "kind", "outcome"],
    registry=REGISTRY,
)
PUSHES = Counter(
    "realauth_pushes",
    "Vendor result pushes on /v1/push, by provider and outcome (recorded, unchanged, refused, unavailable)",
    ["provider", "kind", "outcome"],
    registry=REGISTRY,
)
STORE_LATENCY = Histogram(
    "realauth_store_latency_seconds",
    "Session store operations, by backend (memory, sqlite, redis), operation and outcome (ok, conflict, error)",
    ["backend", "op", "outcome"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

#: Provider instance name → kind, for the metrics whose reporters know only the name (refusals, landings, pushes).
_KINDS: dict[str, str] = {}


def register_providers(providers: Iterable[Provider]) -> None:
    """Called at server start: lets name-only reporters label by kind too."""
    for p in providers:
        _KINDS[p.name] = p.kind


def kind_of(provider: str) -> str:
    return _KINDS.get(provider, "")


_FINAL = {
    SessionState.EXCHANGED: "passed",
    SessionState.FAILED: "failed",
    SessionState.EXPIRED: "expired",
    SessionState.CANCELLED: "cancelled",
}


def _observe_session(event: str, session: AuthSession) -> None:
    if event == "created":
        SESSIONS_CREATED.labels(session.provider, session.provider_kind).inc()
    elif event == "finished":
        SESSIONS_FINISHED.labels(session.provider, session.provider_kind, _FINAL[session.state]).inc()


def observe_landing(provider: str, outcome: str) -> None:
    LANDINGS.labels(provider, kind_of(provider), outcome).inc()


def observe_push(provider: str, outcome: str) -> None:
    PUSHES.labels(provider, kind_of(provider), outcome).inc()


add_store_observer(lambda backend, op, outcome, seconds: STORE_LATENCY.labels(backend, op, outcome).observe(seconds))
add_session_observer(_observe_session)

WEBHOOK_ATTEMPTS = Counter(
    "realauth_webhook_attempts",
    "Webhook delivery attempts, by outcome: delivered (2xx), retrying (failed; another attempt is scheduled),"
    " failed (failed and given up: the retry window passed or the endpoint is gone)",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_PENDING = Gauge(
    "realauth_webhook_pending",
    "Webhook deliveries waiting for an attempt (or with one in flight), as last counted by this replica",
    registry=REGISTRY,
)


def _observe_webhook(outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()


add_webhook_observer(_observe_webhook, WEBHOOK_PENDING.set)
