"""Wires the layers' observer hooks to the neutral :mod:`..metrics` (imported by the HTTP side, which serves them).

The counters live in ``realauth_server.metrics``, which imports nothing of realauth, so any layer may count there
directly; the layers below keep their observer hooks (tracing uses them too) and this module registers onto them.
"""

from __future__ import annotations

from .. import metrics
from ..admission import add_rejection_observer
from ..providers.base import Provider, add_breaker_observer, add_retry_observer, add_vendor_observer
from ..providers.breaker import BreakerState
from ..service import add_idempotency_observer, add_refusal_observer

STATES = [state.value for state in BreakerState]


def _observe_vendor(provider: Provider, action: str, outcome: str, seconds: float) -> None:
    metrics.vendor_call(provider.name, provider.kind, action, outcome, seconds)


def _observe_breaker(provider: Provider, old: BreakerState, new: BreakerState) -> None:
    metrics.breaker_transition(provider.name, STATES, new.value)


def _observe_retry(provider: Provider, action: str, allowed: bool) -> None:
    metrics.retry(provider.name, allowed=allowed)


def track_provider(provider: Provider) -> None:
    """Publish a provider's breaker state from the start (closed), not only after its first transition."""
    metrics.breaker_state(provider.name, STATES, provider.breaker.state.value)


add_vendor_observer(_observe_vendor)
add_refusal_observer(metrics.refusal)
add_breaker_observer(_observe_breaker)
add_retry_observer(_observe_retry)
add_idempotency_observer(metrics.idempotency_event)
add_rejection_observer(metrics.rejection)
