"""Prometheus metrics, served on the HTTP side at /metrics. Labels never carry ids or secrets.

Neutral: it imports nothing of realauth but the domain and the version, so any layer may count here (interceptors
do directly); http/metrics.py registers the layers' observer hooks (providers, service, admission, store, webhooks)
onto these counters. Every metric is listed in docs/operations.md, with example alerts.
"""

from __future__ import annotations

import functools
import platform
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from . import __version__
from .domain import AuthSession, SessionState

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


def register_kinds(kinds: dict[str, str]) -> None:
    """Provider instance name → kind, set at server start."""
    _KINDS.update(kinds)


def kind_of(provider: str) -> str:
    return _KINDS.get(provider, "")


_FINAL = {
    SessionState.EXCHANGED: "passed",
    SessionState.FAILED: "failed",
    SessionState.EXPIRED: "expired",
    SessionState.CANCELLED: "cancelled",
}


def observe_landing(provider: str, outcome: str) -> None:
    LANDINGS.labels(provider, kind_of(provider), outcome).inc()


def observe_push(provider: str, outcome: str) -> None:
    PUSHES.labels(provider, kind_of(provider), outcome).inc()


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


@functools.cache
def _created(provider: str, kind: str) -> Any:
    """The labelled child, looked up once per provider (``labels()`` takes a lock and builds a key each call)."""
    return SESSIONS_CREATED.labels(provider, kind)


@functools.cache
def _store_latency(backend: str, op: str, outcome: str) -> Any:
    """The labelled child per backend, operation and outcome: a small fixed set."""
    return STORE_LATENCY.labels(backend, op, outcome)


@functools.cache
def _finished(provider: str, kind: str, state: str) -> Any:
    """The labelled child per provider and final state, looked up once (every exchange ends here)."""
    return SESSIONS_FINISHED.labels(provider, kind, state)


def session_event(event: str, session: AuthSession) -> None:
    """A session was created, or moved to a final state (counted once per session by the store's observer)."""
    if event == "created":
        _created(session.provider, session.provider_kind).inc()
    elif event == "finished":
        _finished(session.provider, session.provider_kind, _FINAL[session.state]).inc()


def refusal(route: str, provider: str, reason: str) -> None:
    REFUSED_TOTAL.labels(route, provider, kind_of(provider), reason).inc()


def rejection(reason: str, scope: str) -> None:
    REJECTED_TOTAL.labels(reason, scope).inc()


def idempotency_event(event: str) -> None:
    IDEMPOTENCY_EVENTS.labels(event).inc()


def webhook_attempt(outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()


def store_operation(backend: str, op: str, outcome: str, seconds: float) -> None:
    _store_latency(backend, op, outcome).observe(seconds)
