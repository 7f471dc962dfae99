"""In-process store (``memory://``): for tests and throwaway runs; lost on restart."""

from __future__ import annotations

import heapq
import secrets
import time
from collections.abc import AsyncIterator

from ..domain import AuthSession
from ..outbox import WEBHOOK_RETENTION, DeliveryStatus, WebhookDelivery
from .base import Cursor, Recorded, SessionFilter, SessionStore, StoreConflict, position
from .retention import Retention


class MemoryStore(SessionStore):
    def __init__(self, retention: Retention | None = None) -> None:
        super().__init__(retention)
        self._rows: dict[str, dict[str, object]] = {}
        self._retain: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []  # heap of (retain_until, session_id)
        self._tokens: dict[str, str] = {}
        self._idem: dict[tuple[str, str], str] = {}
        self._secrets: dict[str, bytes] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # name → (owner, monotonic deadline)
        self._claims: dict[str, tuple[str, float]] = {}  # vendor token key → (session id, retain until)
        self._claim_expiry: list[tuple[float, str]] = []  # heap of (retain until, key): claims leave when due
        #: Heap entries the clean-up has looked at so far (what tests count instead of timing it).
        self.claims_touched = 0
        self._markers: dict[str, float] = {}  # name → monotonic deadline
        self._webhooks: dict[str, WebhookDelivery] = {}  # delivery id → record (insertion order: oldest first)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _purge(self) -> None:
        """Drop sessions past retention, with their token and idempotency entries."""
        now = self.clock.now()
        while self._expiry and self._expiry[0][0] < now:
            until, sid = heapq.heappop(self._expiry)
            if self._retain.get(sid) != until:
                continue  # re-scheduled by a later write
            row = self._rows.pop(sid)
            del self._retain[sid]
            token, tenant, key = str(row["token"]), str(row["tenant"]), str(row["idempotency_key"])
            if token and self._tokens.get(token) == sid:
                del self._tokens[token]
            if key and self._idem.get((tenant, key)) == sid:
                del self._idem[(tenant, key)]
        # Claims past retention leave oldest first, each looked at once when due: a scan of every claim on every
        # operation made exchanges quadratic once 10,000 claims were held.
        claims = self._claim_expiry
        while claims and claims[0][0] < now:
            until, key = heapq.heappop(claims)
            self.claims_touched += 1
            held = self._claims.get(key)
            if held is not None and held[1] == until:
                del self._claims[key]

    def _store(self, session: AuthSession) -> None:
        self._rows[session.session_id] = session.to_dict()
        until = self.retain_until(session)
        if self._retain.get(session.session_id) != until:
            self._retain[session.session_id] = until
            heapq.heappush(self._expiry, (until, session.session_id))
        if session.token:
            self._tokens[session.token] = session.session_id
        self.feed.publish(session)

    async def insert(self, session: AuthSession) -> AuthSession:
        self._purge()
        if session.idempotency_key:
            existing = self._idem.get((session.tenant, session.idempotency_key))
            if existing is not None:
                return AuthSession.from_dict(self._rows[existing])
            self._idem[(session.tenant, session.idempotency_key)] = session.session_id
        self._store(session)
        return session

    async def get(self, session_id: str) -> AuthSession | None:
        self._purge()
        row = self._rows.get(session_id)
        return AuthSession.from_dict(row) if row is not None else None

    async def get_by_token(self, token: str) -> AuthSession | None:
        self._purge()
        sid = self._tokens.get(token)
        return await self.get(sid) if sid else None

    async def find_idempotent(self, tenant: str, key: str) -> AuthSession | None:
        self._purge()
        sid = self._idem.get((tenant, key))
        return await self.get(sid) if sid else None

    async def shared_secret(self, name: str) -> bytes:
        return self._secrets.setdefault(name, secrets.token_bytes(32))

    async def update(self, session: AuthSession) -> AuthSession:
        return self._update(session)

    def _update(self, session: AuthSession) -> AuthSession:
        self._purge()
        row = self._rows.get(session.session_id)
        if row is None or row["version"] != session.version:
            raise StoreConflict(session.session_id)
        new = session.evolve(version=session.version + 1)
        records = self.outbox_for(new) if row["state"] != new.state.value else []
        self._store(new)
        for record in records:
            self._webhooks[record.delivery_id] = record
        if records:
            self._purge_webhooks()
            self.enqueued()
        return new

    def _purge_webhooks(self) -> None:
        cutoff = self.clock.now() - WEBHOOK_RETENTION
        for k in [
            k for k, d in self._webhooks.items() if d.status is not DeliveryStatus.PENDING and d.updated < cutoff
        ]:
            del self._webhooks[k]

    async def claim_webhooks(self, owner: str, limit: int, lease: float) -> list[WebhookDelivery]:
        now = self.clock.now()
        due = sorted(
            (d for d in self._webhooks.values() if d.status is DeliveryStatus.PENDING and d.next_at <= now),
            key=lambda d: d.next_at,
        )[:limit]
        out = []
        for d in due:
            d.attempts += 1
            d.owner, d.next_at, d.updated = owner, now + lease, now
            out.append(WebhookDelivery.from_dict(d.to_dict()))
        return out

    async def finish_webhook(
        self,
        claimed: WebhookDelivery,
        status: DeliveryStatus,
        next_at: float,
        last_error: str,
        last_status: int,
    ) -> bool:
        d = self._webhooks.get(claimed.delivery_id)
        if d is None or d.owner != claimed.owner or d.attempts != claimed.attempts or not claimed.owner:
            return False
        now = self.clock.now()
        d.status, d.next_at, d.last_error, d.last_status, d.updated, d.owner = (
            status,
            next_at,
            last_error,
            last_status,
            now,
            "",
        )
        if status is DeliveryStatus.DELIVERED:
            d.delivered_at = now
        return True

    async def get_webhook(self, delivery_id: str) -> WebhookDelivery | None:
        d = self._webhooks.get(delivery_id)
        return WebhookDelivery.from_dict(d.to_dict()) if d is not None else None

    async def list_webhooks(
        self, tenant: str, session_id: str, status: DeliveryStatus | None, offset: int, limit: int
    ) -> tuple[list[WebhookDelivery], int | None]:
        self._purge_webhooks()
        match = [
            d
            for d in reversed(self._webhooks.values())
            if d.tenant == tenant and (not session_id or d.session_id == session_id) and (status in (None, d.status))
        ]
        page = [WebhookDelivery.from_dict(d.to_dict()) for d in match[offset : offset + limit]]
        return page, (offset + limit if offset + limit < len(match) else None)

    async def redeliver_webhook(self, delivery_id: str, give_up_at: float) -> WebhookDelivery | None:
        d = self._webhooks.get(delivery_id)
        if d is None:
            return None
        now = self.clock.now()
        d.status, d.next_at, d.owner, d.give_up_at, d.updated = DeliveryStatus.PENDING, now, "", give_up_at, now
        self.enqueued()
        return WebhookDelivery.from_dict(d.to_dict())

    async def pending_webhooks(self) -> int:
        return sum(1 for d in self._webhooks.values() if d.status is DeliveryStatus.PENDING)

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        return self._acquire(name, owner, seconds)

    async def acquire_lease_get(
        self, name: str, owner: str, seconds: float, session_id: str
    ) -> tuple[bool, AuthSession | None]:
        if not self._acquire(name, owner, seconds):
            return False, None
        self._purge()
        row = self._rows.get(session_id)
        return True, AuthSession.from_dict(row) if row is not None else None

    async def record_result(
        self, key: str, session: AuthSession, until: float, lease: tuple[str, str] | None = None
    ) -> Recorded:
        owner = self._claim(key, session.session_id, until)
        if owner != session.session_id:
            return Recorded(owner, None)
        written = self._update(session)
        if lease is not None:
            self._release(*lease)
        return Recorded(owner, written, released=lease is not None)

    def _acquire(self, name: str, owner: str, seconds: float) -> bool:
        now = time.monotonic()
        held = self._leases.get(name)
        if held is not None and held[1] > now and held[0] != owner:
            return False
        self._leases[name] = (owner, now + seconds)
        return True

    async def release_lease(self, name: str, owner: str) -> None:
        self._release(name, owner)

    def _release(self, name: str, owner: str) -> None:
        held = self._leases.get(name)
        if held is not None and held[0] == owner:
            del self._leases[name]

    async def claim_vendor_token(self, key: str, session_id: str, until: float) -> str:
        return self._claim(key, session_id, until)

    def _claim(self, key: str, session_id: str, until: float) -> str:
        held = self._claims.get(key)
        free = held is None or held[1] < self.clock.now()
        if free or (held is not None and held[0] == session_id and held[1] < until):
            self._claims[key] = held = (session_id, until)
            heapq.heappush(self._claim_expiry, (until, key))
        assert held is not None
        return held[0]

    async def vendor_token_owner(self, key: str) -> str | None:
        held = self._claims.get(key)
        return held[0] if held is not None and held[1] >= self.clock.now() else None

    async def scan_tenant(self, tenant: str, flt: SessionFilter, after: Cursor | None) -> AsyncIterator[AuthSession]:
        """A sorted copy of the tenant's rows: simple, and enough for tests and throwaway runs."""
        self._purge()
        rows = [AuthSession.from_dict(r) for r in self._rows.values() if r["tenant"] == tenant]
        rows.sort(key=position, reverse=True)
        for session in rows:
            if after is None or position(session) < after:
                yield session

    async def put_marker(self, name: str, seconds: float) -> None:
        now = time.monotonic()
        self._markers = {k: t for k, t in self._markers.items() if t > now}  # bounded by what is still live
        self._markers[name] = now + seconds

    async def has_marker(self, name: str) -> bool:
        return self._markers.get(name, 0.0) > time.monotonic()

    def __len__(self) -> int:
        self._purge()
        return len(self._rows)
