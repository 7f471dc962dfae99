"""Prometheus metrics, served on the HTTP side at /metrics. Labels never carry ids or secrets.

Neutral: it imports nothing of realauth, so any layer may count here (interceptors do directly; http/metrics.py
registers the providers', service's and admission's observer hooks onto the functions below).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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


def vendor_call(provider: str, kind: str, action: str, outcome: str, seconds: float) -> None:
    VENDOR_TOTAL.labels(provider, kind, action, outcome).inc()
    VENDOR_LATENCY.labels(provider, action, outcome).observe(seconds)


def refusal(route: str, provider: str, reason: str) -> None:
    REFUSED_TOTAL.labels(route, provider, reason).inc()


def rejection(reason: str, scope: str) -> None:
    REJECTED_TOTAL.labels(reason, scope).inc()


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


def breaker_state(provider: str, states: Iterable[str], current: str) -> None:
    """Publish a provider's breaker state (1 for ``current``, 0 for the other ``states``)."""
    for state in states:
        BREAKER_STATE.labels(provider, state).set(1 if state == current else 0)


def breaker_transition(provider: str, states: Iterable[str], new: str) -> None:
    breaker_state(provider, states, new)
    BREAKER_TRANSITIONS.labels(provider, new).inc()


def retry(provider: str, *, allowed: bool) -> None:
    VENDOR_RETRIES.labels(provider, "allowed" if allowed else "refused").inc()


def idempotency_event(event: str) -> None:
    IDEMPOTENCY_EVENTS.labels(event).inc()
