"""Read realauth's Prometheus counters the way an operator's query would (tests only)."""

from __future__ import annotations

from realauth_server.metrics import REGISTRY


def landing_refusals(provider: str, reason: str, route: str = "landing") -> float:
    """``realauth_landing_refused_total`` for one provider and reason, summed over the ``kind`` label."""
    labels = {"route": route, "provider": provider, "reason": reason}
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == "realauth_landing_refused_total" and labels.items() <= sample.labels.items()
    )
