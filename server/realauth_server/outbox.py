"""Webhook outbox records: one event for one endpoint, with its delivery state (docs/webhooks.md).

A record is written in the same store write as the session transition it reports (store/*.py), so an
event exists exactly when its transition does. It is then claimed for one attempt at a time: a claim
bumps ``attempts`` and names an ``owner``, and only that owner may report the attempt's outcome, so two
replicas never both deliver one attempt.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import Any

#: Delivered and given-up records are kept this long after their last change, then dropped.
WEBHOOK_RETENTION = 7 * 86_400.0


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or one is in flight)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: the retry window passed, or the endpoint is no longer configured


@dataclass
class WebhookDelivery:
    delivery_id: str
    event_id: str
    tenant: str
    endpoint: str  # the endpoint's id in the tenant's configuration
    session_id: str
    event_type: str
    sequence: int  # the session's version after the transition: increases per session
    body: str  # the event JSON exactly as sent (and signed)
    created: float
    next_at: float  # when the next attempt is due; while one is in flight, when its claim runs out
    give_up_at: float
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0  # attempts claimed so far (the current one included)
    owner: str = ""  # who holds the current attempt ("" when none)
    last_error: str = ""
    last_status: int = 0  # HTTP status of the last answer (0: none)
    updated: float = 0.0
    delivered_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    def to_strings(self) -> dict[str, str]:
        """Every field as text (Redis hash fields); floats in full precision."""
        return {k: repr(v) if isinstance(v, float) else str(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WebhookDelivery:
        """From :meth:`to_dict` or :meth:`to_strings` output (every value may be text)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            if f.name == "status":
                out[f.name] = DeliveryStatus(value)
            elif f.type == "int":
                out[f.name] = int(value)
            elif f.type == "float":
                out[f.name] = float(value)
            else:
                out[f.name] = str(value)
        return cls(**out)
