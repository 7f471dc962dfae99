"""Prometheus metrics, served on the HTTP side at /metrics. Labels never carry ids or secrets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..admission import add_rejection_observer
from ..providers.base import Provider, add_vendor_observer

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
add_rejection_observer(lambda reason, scope: REJECTED_TOTAL.labels(reason, scope).inc())
