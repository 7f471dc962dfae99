"""The session store: one interface, several backends (memory, SQLite; Redis for many replicas)."""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, Clock
from ..domain import AuthSession
from ..events import ChangeFeed
from ..outbox import DeliveryStatus, WebhookDelivery
from .retention import Retention


class StoreConflict(Exception):
    """The session changed since it was read (optimistic concurrency)."""


class StoreUnavailable(OSError):
    """The backing store cannot be reached (raised at start-up; an OSError so the CLI reports it)."""


@dataclass(frozen=True)
class IdempotencyClaim:
    """Outcome of :meth:`SessionStore.claim_idempotency`: exactly one field says what to do."""

    claimed: bool = False  # this caller may call the vendor, then must release the lease
    session: AuthSession | None = None  # already created: return it
    # neither: another request (maybe on another replica) is calling the vendor right now: wait


def idempotency_lease(tenant: str, key: str) -> str:
    return "idem:" + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()


def vendor_token_key(kind: str, token: str) -> str:
    """The claim key of a vendor token: its kind and a hash (the token itself is never a store key)."""
    return hashlib.sha256(f"{kind}\0{token}".encode()).hexdigest()


#: Given a session about to be written, the webhook records to write with it should its state change.
Outbox = Callable[[AuthSession], list[WebhookDelivery]]


class SessionStore(abc.ABC):
    def __init__(self, retention: Retention | None = None) -> None:
        self.clock: Clock = SYSTEM_CLOCK
        self.retention = retention or Retention()
        #: Every successful insert/update is published here (for Redis: also by other replicas).
        self.feed = ChangeFeed()
        self._outbox: Outbox | None = None
        #: Called after a write that stored webhook records (the dispatcher's wake-up; no polling wait).
        self.on_enqueue: Callable[[], None] | None = None

    def use_outbox(self, outbox: Outbox | None) -> None:
        """Write webhook records with every :meth:`update` that changes a session's state.

        The records are written atomically with the session (one transaction or one script), and only
        when the stored state differs from the new one: every transition, whoever makes it, gets its
        events exactly once, and a crash can never keep one without the other.
        """
        self._outbox = outbox

    def outbox_for(self, session: AuthSession) -> list[WebhookDelivery]:
        """The records to write if this write changes the state (none: no webhook wants it)."""
        return self._outbox(session) if self._outbox is not None else []

    def enqueued(self) -> None:
        if self.on_enqueue is not None:
            self.on_enqueue()

    def use_clock(self, clock: Clock) -> None:
        """Retention is measured on the service's clock (tests move it)."""
        self.clock = clock

    def retain_until(self, session: AuthSession) -> float:
        return self.retention.until(session)

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def insert(self, session: AuthSession) -> AuthSession:
        """Insert a new session. When (tenant, idempotency_key) already exists, return that one."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> AuthSession | None: ...

    @abc.abstractmethod
    async def get_by_token(self, token: str) -> AuthSession | None: ...

    @abc.abstractmethod
    async def find_idempotent(self, tenant: str, key: str) -> AuthSession | None: ...

    @abc.abstractmethod
    async def shared_secret(self, name: str) -> bytes:
        """A random secret created once and shared by every replica using this store."""

    @abc.abstractmethod
    async def update(self, session: AuthSession) -> AuthSession:
        """Write back a session read at ``session.version``; raise StoreConflict if it moved on."""

    @abc.abstractmethod
    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take the named lease for ``seconds`` of real time unless someone else holds it.

        Leases make vendor calls single-flight across replicas; they expire on their own so that a
        replica dying mid-call blocks nobody for longer than the call could have lasted.
        """

    @abc.abstractmethod
    async def release_lease(self, name: str, owner: str) -> None:
        """Release the lease if ``owner`` still holds it."""

    @abc.abstractmethod
    async def claim_vendor_token(self, key: str, session_id: str, until: float) -> str:
        """Claim a vendor token for one session, first writer wins; returns the owner's session id.

        A vendor result completes at most one session ever: the claim is atomic across replicas and
        is kept until ``until`` (epoch seconds on the store's clock: the session's retention), after
        which no vendor still holds a result for the token. ``key`` comes from :func:`vendor_token_key`.
        """

    @abc.abstractmethod
    async def vendor_token_owner(self, key: str) -> str | None:
        """The session that claimed this vendor token, if any (a look-up only: it never claims)."""

    async def claim_idempotency(self, tenant: str, key: str, owner: str, seconds: float) -> IdempotencyClaim:
        """Reserve (tenant, key) before the vendor call, or report who has it."""
        done = await self.find_idempotent(tenant, key)
        if done is not None:
            return IdempotencyClaim(session=done)
        lease = idempotency_lease(tenant, key)
        if not await self.acquire_lease(lease, owner, seconds):
            return IdempotencyClaim()
        # The previous holder may have stored its session between our look-up and our lease.
        done = await self.find_idempotent(tenant, key)
        if done is not None:
            await self.release_lease(lease, owner)
            return IdempotencyClaim(session=done)
        return IdempotencyClaim(claimed=True)

    async def release_idempotency(self, tenant: str, key: str, owner: str) -> None:
        await self.release_lease(idempotency_lease(tenant, key), owner)

    # --- webhook outbox (docs/webhooks.md) -------------------------------------------------------

    @abc.abstractmethod
    async def claim_webhooks(self, owner: str, limit: int, lease: float) -> list[WebhookDelivery]:
        """Claim up to ``limit`` due pending records for one attempt each (atomic across replicas).

        A claim bumps ``attempts``, names ``owner`` and moves ``next_at`` to now + ``lease`` (the store's
        clock): should the owner die mid-attempt the record is due again then, as a new attempt.
        """

    @abc.abstractmethod
    async def finish_webhook(
        self,
        claimed: WebhookDelivery,
        status: DeliveryStatus,
        next_at: float,
        last_error: str,
        last_status: int,
    ) -> bool:
        """Record the outcome of the claimed attempt; False (nothing written) if the claim was lost."""

    @abc.abstractmethod
    async def get_webhook(self, delivery_id: str) -> WebhookDelivery | None: ...

    @abc.abstractmethod
    async def list_webhooks(
        self, tenant: str, session_id: str, status: DeliveryStatus | None, offset: int, limit: int
    ) -> tuple[list[WebhookDelivery], int | None]:
        """A tenant's records, newest first, from ``offset``; also the next page's offset (None: no more)."""

    @abc.abstractmethod
    async def redeliver_webhook(self, delivery_id: str, give_up_at: float) -> WebhookDelivery | None:
        """Make a record pending and due now (any claim is dropped), with a new retry window."""

    @abc.abstractmethod
    async def pending_webhooks(self) -> int:
        """How many records are pending (the pending-deliveries gauge)."""

    @abc.abstractmethod
    async def put_marker(self, name: str, seconds: float) -> None:
        """Remember ``name`` for ``seconds`` of real time, for every replica (e.g. an unknown create outcome)."""

    @abc.abstractmethod
    async def has_marker(self, name: str) -> bool:
        """Whether ``name`` was marked and has not expired."""


def unknown_outcome_marker(tenant: str, key: str) -> str:
    """Marks (tenant, idempotency key) whose vendor create got no answer: the vendor may hold a session for it."""
    return "unknown:" + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()
