"""The session store: one interface, several backends (memory, SQLite; Redis for many replicas)."""

from __future__ import annotations

import abc
import contextlib
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..domain import AuthSession, SessionState
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


@dataclass(frozen=True)
class Recorded:
    """Outcome of :meth:`SessionStore.record_result`."""

    owner: str  # the session that owns the vendor token (not this one: nothing was written)
    session: AuthSession | None  # the session as written (None: the token completed another session)
    released: bool = False  # the lease passed to record_result was released in the same write


#: A listing position: (create_time, session_id) of the last session seen. Sessions are listed newest first, by
#: that pair descending, so "after" a cursor means a strictly smaller pair.
Cursor = tuple[float, str]

#: One ListAuthSessions call looks at most this many of the tenant's sessions (a very selective filter over a
#: large tenant then returns a short, maybe empty, page with a next-page cursor, as AIP-158 allows).
MAX_SCAN = 5_000


@dataclass(frozen=True)
class SessionFilter:
    """What ListAuthSessions selects within one tenant; every set field must match."""

    subject_id: str = ""
    state: SessionState | None = None  # as a read now reports it (SessionFilter.matches)
    provider: str = ""
    create_time_start: float | None = None  # inclusive
    create_time_end: float | None = None  # exclusive

    def stored_states(self) -> tuple[SessionState, ...]:
        """Stored states that can be reported as ``state`` (empty: any). Pending and completed may have expired."""
        if self.state is None:
            return ()
        if self.state is SessionState.EXPIRED:
            return (SessionState.EXPIRED, SessionState.PENDING, SessionState.COMPLETED)
        return (self.state,)

    def matches(self, session: AuthSession, now: float) -> bool:
        """The one definition of a match; backends' own pre-filtering only ever narrows what reaches it."""
        if self.subject_id and session.subject_id != self.subject_id:
            return False
        if self.provider and session.provider != self.provider:
            return False
        if self.create_time_start is not None and session.create_time < self.create_time_start:
            return False
        if self.create_time_end is not None and session.create_time >= self.create_time_end:
            return False
        return self.state is None or session.reported_state(now) is self.state


def position(session: AuthSession) -> Cursor:
    """Where ``session`` sits in a listing (the cursor a page after it starts from)."""
    return (session.create_time, session.session_id)


@dataclass(frozen=True)
class ListPage:
    """One page of a listing; ``cursor`` is where the next page starts (None: there is nothing more)."""

    sessions: list[AuthSession]
    cursor: Cursor | None


def idempotency_lease(tenant: str, key: str) -> str:
    return "idem:" + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()


def vendor_token_key(kind: str, token: str) -> str:
    """The claim key of a vendor token: its kind and a hash (the token itself is never a store key)."""
    return hashlib.sha256(f"{kind}\0{token}".encode()).hexdigest()


#: Hooks set by the metrics and tracing modules (keeps the store free of their dependencies):
#: (backend, operation, outcome, seconds) after every store operation; outcome is ok, conflict or error.
_store_observers: list[Callable[[str, str, str, float], None]] = []
#: ("created" | "finished", session) after a write that created a session or put it in a final state.
_session_observers: list[Callable[[str, AuthSession], None]] = []

#: The operations that are timed and reported (each backend's own implementation of them).
TIMED_OPS = (
    "insert",
    "get",
    "get_by_token",
    "find_idempotent",
    "shared_secret",
    "update",
    "acquire_lease",
    "release_lease",
    "claim_vendor_token",
    "vendor_token_owner",
    "acquire_lease_get",
    "record_result",
    "claim_idempotency",
)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def add_store_observer(fn: Callable[[str, str, str, float], None]) -> None:
    _store_observers.append(fn)


def add_session_observer(fn: Callable[[str, AuthSession], None]) -> None:
    _session_observers.append(fn)


def _session_event(op: str, args: tuple[Any, ...], result: Any) -> None:
    if not _session_observers:
        return
    if isinstance(result, Recorded):
        if result.session is None:
            return
        op, result = "update", result.session
    if not isinstance(result, AuthSession):
        return
    if op == "insert" and args and getattr(args[0], "session_id", None) == result.session_id:
        event = "created"  # not an idempotent duplicate, which returns the earlier session
    elif op == "update" and result.state.terminal:
        event = "finished"  # final states are final: each session is reported once
    else:
        return
    for fn in _session_observers:
        fn(event, result)


def _timed(op: str, method: F) -> F:
    @functools.wraps(method)
    async def timed(self: SessionStore, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        outcome = "error"
        try:
            result = await method(self, *args, **kwargs)
            outcome = "ok"
        except StoreConflict:
            outcome = "conflict"
            raise
        finally:
            elapsed = time.monotonic() - start
            for fn in _store_observers:
                fn(self.backend, op, outcome, elapsed)
        _session_event(op, args, result)
        return result

    timed._realauth_timed = True  # type: ignore[attr-defined]
    return timed  # type: ignore[return-value]


def in_steps(method: F) -> F:
    """Marks a default made of other (timed) operations: it is not timed again, nor reported twice."""
    method._realauth_timed = True  # type: ignore[attr-defined]
    return method


#: Given a session about to be written, the webhook records to write with it should its state change.
Outbox = Callable[[AuthSession], list[WebhookDelivery]]


class SessionStore(abc.ABC):
    #: Label of this backend in metrics and spans (default: the class name without "Store", lowercased).
    backend: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Time every backend's own store operations (and report session lifecycle), whatever the backend."""
        super().__init_subclass__(**kwargs)
        if "backend" not in cls.__dict__:
            cls.backend = cls.__name__.removesuffix("Store").lower() or "store"
        for op in TIMED_OPS:
            method = cls.__dict__.get(op)
            if method is not None and not getattr(method, "_realauth_timed", False):
                setattr(cls, op, _timed(op, method))

    def __init__(self, retention: Retention | None = None) -> None:
        self.clock: Clock = SYSTEM_CLOCK
        self.retention = retention or Retention()
        #: Every successful insert/update is published here (for Redis: also by other replicas).
        self.feed = ChangeFeed()
        self._windows: dict[str, tuple[int, int]] = {}  # rate key → (window index, hits) for count_hit

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

    @in_steps
    async def acquire_lease_get(
        self, name: str, owner: str, seconds: float, session_id: str
    ) -> tuple[bool, AuthSession | None]:
        """:meth:`acquire_lease`, then, if it was taken, :meth:`get` of ``session_id`` (the session as it stands
        under the lease; None when the lease was not taken or the session is gone).

        Backends that can do both in one round trip (one script, one transaction) override this; this default is
        the two steps, which is what a Redis Cluster must do when the lease and the session live in other slots.
        """
        if not await self.acquire_lease(name, owner, seconds):
            return False, None
        return True, await self.get(session_id)

    @in_steps
    async def record_result(
        self, key: str, session: AuthSession, until: float, lease: tuple[str, str] | None = None
    ) -> Recorded:
        """Claim the vendor token ``key`` for ``session`` (:meth:`claim_vendor_token`) and, if this session owns
        it, write ``session`` back (:meth:`update`, with its webhook records). StoreConflict when the session moved
        on: the claim then stays made (the owner's re-claim is a no-op), as it would with the two steps.

        ``lease`` (name, owner) may be released in the same write when it succeeds (``Recorded.released``); a
        backend that cannot (this default, which is the two separate steps) leaves it to the caller.
        """
        owner = await self.claim_vendor_token(key, session.session_id, until)
        if owner != session.session_id:
            return Recorded(owner, None)
        return Recorded(owner, await self.update(session))

    async def ping(self) -> None:
        """Raise when the store cannot serve right now (the readiness probe calls this periodically)."""
        return None

    async def count_hit(self, key: str, window_seconds: float) -> tuple[int, float]:
        """Count one request against ``key`` in the current fixed window of real time.

        Returns the hits in this window (this one included) and the seconds until the window ends. This default
        counts in process (memory and SQLite are single-replica stores); Redis counts for every replica at once.
        """
        now = time.time()
        index = int(now // window_seconds)
        seen, hits = self._windows.get(key, (index, 0))
        hits = hits + 1 if seen == index else 1
        if len(self._windows) > 10_000:  # keys are tenant names; never let stale windows pile up
            self._windows = {k: v for k, v in self._windows.items() if v[0] == index}
        self._windows[key] = (index, hits)
        return hits, (index + 1) * window_seconds - now

    @in_steps
    async def claim_idempotency(self, tenant: str, key: str, owner: str, seconds: float) -> IdempotencyClaim:
        """Reserve (tenant, key) before the vendor call, or report who has it.

        This default is three steps (look-up, lease, look-up again); SQLite and Redis do it in one transaction or
        script, where the second look-up is not needed (nothing can store the session in between)."""
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
    def scan_tenant(self, tenant: str, flt: SessionFilter, after: Cursor | None) -> AsyncIterator[AuthSession]:
        """The tenant's retained sessions strictly after ``after``, newest first (create_time, then session_id).

        A backend may leave out sessions ``flt`` cannot match (an index does the work); :meth:`list_sessions`
        checks every yielded one against ``flt`` anyway.
        """

    async def list_sessions(
        self, tenant: str, flt: SessionFilter, page_size: int, after: Cursor | None, scan_limit: int = MAX_SCAN
    ) -> ListPage:
        """Up to ``page_size`` matching sessions after ``after`` (keyset pagination: stable under new inserts).

        Sessions created while a listing is paged through are newer than its first cursor, so later pages never
        repeat or skip an older one. At most ``scan_limit`` candidates are read per call.
        """
        now = self.clock.now()
        out: list[AuthSession] = []
        scanned = 0
        last = after
        candidates = self.scan_tenant(tenant, flt, after)
        try:
            async for session in candidates:
                if flt.matches(session, now):
                    if len(out) == page_size:  # one more exists: the next page starts after the last one given
                        return ListPage(out, position(out[-1]))
                    out.append(session)
                last = position(session)
                scanned += 1
                if scanned >= scan_limit:
                    return ListPage(out, last)
        finally:
            aclose = getattr(candidates, "aclose", None)  # an async generator: let it close its cursor now
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        return ListPage(out, None)

    @abc.abstractmethod
    async def put_marker(self, name: str, seconds: float) -> None:
        """Remember ``name`` for ``seconds`` of real time, for every replica (e.g. an unknown create outcome)."""

    @abc.abstractmethod
    async def has_marker(self, name: str) -> bool:
        """Whether ``name`` was marked and has not expired."""


def unknown_outcome_marker(tenant: str, key: str) -> str:
    """Marks (tenant, idempotency key) whose vendor create got no answer: the vendor may hold a session for it."""
    return "unknown:" + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()
