"""Wires the layers' observer hooks to the neutral :mod:`..metrics` (imported by the HTTP side, which serves them).

The counters live in ``realauth_server.metrics``, which imports nothing of the layers, so any layer may count there
directly; the layers below keep their observer hooks (tracing uses them too) and this module registers onto them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from .. import metrics
from ..admission import add_rejection_observer
from ..metrics import BREAKER_STATE, BREAKER_TRANSITIONS, VENDOR_LATENCY, VENDOR_RETRIES, VENDOR_TOTAL
from ..providers.base import Provider, add_breaker_observer, add_retry_observer, add_vendor_observer
from ..providers.breaker import BreakerState
from ..service import add_idempotency_observer, add_refusal_observer
from ..store.base import add_session_observer, add_store_observer
from ..webhooks import add_webhook_observer


@functools.cache
def _vendor_children(name: str, kind: str, action: str, outcome: str) -> tuple[Any, Any]:
    """The counter and histogram children of one label set, looked up once (``labels()`` locks and builds a key).

    The label sets are bounded (configured providers × their actions × outcomes) and prometheus_client keeps every
    child for good anyway, so remembering them here holds nothing more.
    """
    return VENDOR_TOTAL.labels(name, kind, action, outcome), VENDOR_LATENCY.labels(name, kind, action, outcome)


def _observe_vendor(provider: Provider, action: str, outcome: str, seconds: float) -> None:
    total, latency = _vendor_children(provider.name, provider.kind, action, outcome)
    total.inc()
    latency.observe(seconds)


def _observe_breaker(provider: Provider, old: BreakerState, new: BreakerState) -> None:
    for state in BreakerState:
        BREAKER_STATE.labels(provider.name, state.value).set(1 if state is new else 0)
    BREAKER_TRANSITIONS.labels(provider.name, new.value).inc()


def _observe_retry(provider: Provider, action: str, allowed: bool) -> None:
    VENDOR_RETRIES.labels(provider.name, "allowed" if allowed else "refused").inc()


def track_provider(provider: Provider) -> None:
    """Publish a provider's breaker state from the start (closed), not only after its first transition."""
    for state in BreakerState:
        BREAKER_STATE.labels(provider.name, state.value).set(1 if state is provider.breaker.state else 0)


def register_providers(providers: Iterable[Provider]) -> None:
    """Called at server start: lets name-only reporters (refusals, landings, pushes) label by kind too."""
    metrics.register_kinds({p.name: p.kind for p in providers})


observe_landing = metrics.observe_landing
observe_push = metrics.observe_push

add_vendor_observer(_observe_vendor)
add_refusal_observer(metrics.refusal)
add_breaker_observer(_observe_breaker)
add_retry_observer(_observe_retry)
add_idempotency_observer(metrics.idempotency_event)
add_rejection_observer(metrics.rejection)
add_store_observer(metrics.store_operation)
add_session_observer(metrics.session_event)
add_webhook_observer(metrics.webhook_attempt, metrics.WEBHOOK_PENDING.set)
