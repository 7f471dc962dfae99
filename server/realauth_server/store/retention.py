"""How long a session (and the result realauth captured) is kept, per vendor kind.

A record is kept until the later of
- the vendor's own retention of the result, counted from creation (after that, nobody could fetch
  it again anyway), and
- ``result_seconds`` (default 1 day) after the session's last usable moment
  (``max(exchange_deadline, expire_time)``), so a caller that never called ExchangeToken can still
  read the result captured at landing with GetAuthSession.

Every backend applies the same numbers: Redis as key TTLs, SQLite and memory by purging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..domain import AuthSession

DAY = 86_400.0

#: realauth keeps every session this long after its last usable moment.
RESULT_RETENTION = DAY


@dataclass(frozen=True)
class Retention:
    result_seconds: float = RESULT_RETENTION
    #: Vendor-side retention per kind, from creation (``vendors.registry.VENDOR_RETENTION``; the server passes it).
    vendor_seconds: Mapping[str, float] = field(default_factory=dict)

    def until(self, session: AuthSession) -> float:
        """Epoch seconds after which the session and its indexes may be dropped."""
        vendor = session.create_time + self.vendor_seconds.get(session.provider_kind, 0.0)
        usable = max(session.exchange_deadline, session.expire_time)
        return max(vendor, usable + self.result_seconds)
