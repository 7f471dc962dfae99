"""Prometheus metrics, served on the HTTP side at /metrics. Labels never carry ids or secrets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..providers.base import Provider, add_vendor_observer
from ..service import add_refusal_observer

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


def _observe_vendor(provider: Provider, action: str, outcome: str, seconds: float) -> None:
    VENDOR_TOTAL.labels(provider.name, provider.kind, action, outcome).inc()
    VENDOR_LATENCY.labels(provider.name, action, outcome).observe(seconds)


add_vendor_observer(_observe_vendor)


def _observe_refusal(route: str, provider: str, reason: str) -> None:
    REFUSED_TOTAL.labels(route, provider, reason).inc()


add_refusal_observer(_observe_refusal)
