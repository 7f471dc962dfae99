"""Prometheus metrics, served on the HTTP side at /metrics. Labels never carry ids or secrets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .admission import add_rejection_observer
from .providers.base import Provider, add_breaker_observer, add_retry_observer, add_vendor_observer
from .providers.breaker import BreakerState
from .service import add_idempotency_observer, add_refusal_observer

REGISTRY = CollectorRegistry(auto_describe=True)

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
    ["provider", "action", "outcome"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

REFUSED_TOTAL = Counter(
    "realauth_landing_refused",
    "Browser landings, vendor pushes and exchanges that changed nothing, by route (landing, push, exchange),"
    " provider and reason (bad_signature, foreign_token, token_reused, result_mismatch, not_finished, replayed,"
    " expired, ...)",
    ["route", "provider", "reason"],
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
    VENDOR_LATENCY.labels(provider.name, action, outcome).observe(seconds)


add_vendor_observer(_observe_vendor)


def _observe_refusal(route: str, provider: str, reason: str) -> None:
    REFUSED_TOTAL.labels(route, provider, reason).inc()


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
