"""The vendor-neutral use cases: create, exchange, read, land. No proto and no vendor here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import random
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from . import credentials, deadlines, paging
from . import errors as E
from .admission import InFlight, KeyedInFlight
from .clock import Clock
from .domain import AuthSession, CreateParams, SessionState, VerificationResult, new_session_id
from .logs import annotate
from .outbox import DeliveryStatus, WebhookDelivery
from .providers.base import BOUND_TOKEN, Provider, PushRejected
from .store.base import SessionFilter, SessionStore, StoreConflict, unknown_outcome_marker, vendor_token_key
from .text import unsafe_char
from .urls import LANDING_PATH, PUSH_PATH, URLRejected, normalize_callback_url, with_query
from .webhooks import MAX_AGE as WEBHOOK_MAX_AGE

log = logging.getLogger("realauth.service")

MAX_FIELD = 128

#: Leases outlive the call they guard by this much, so a slow store round trip never frees them early.
LEASE_MARGIN = 5.0
#: Waiting for another replica's vendor call: first and longest poll interval.
POLL_FIRST, POLL_MAX = 0.02, 0.25
#: A watcher re-checks the clock this often (a test clock can jump) and re-reads the store every
#: RESYNC_TICKS ticks (pub/sub is at-most-once: a lost notification only delays a watcher).
WATCH_TICK = 0.5
RESYNC_TICKS = 10
#: A push body larger than this is refused (vendors push a few KiB of JSON or form data).
MAX_PUSH_BYTES = 64 * 1024
#: How long a push may wait for a running exchange of its session before asking the vendor to retry.
PUSH_BUDGET = 10.0
#: How long the store remembers that a create with an idempotency key got no answer from the vendor (the
#: vendor may hold a session for it): a retry within this time is counted and logged as such.
UNKNOWN_OUTCOME_SECONDS = 86_400.0
#: Failover to the next candidate only while at least this much of the call's budget is left.
FAILOVER_MIN_BUDGET = 0.2
#: ListAuthSessions page sizes (AIP-158): 0 asks for the default, larger values than the maximum get the maximum.
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
#: ListWebhookDeliveries page sizes.
WEBHOOK_PAGE_DEFAULT, WEBHOOK_PAGE_MAX = 50, 100
#: The create parameters an idempotency key is bound to (CreateAuthSessionRequest field names).
FINGERPRINT_FIELDS = ("provider", "model", "callback_url", "subject_id", "locale", "options")

#: Hook set by the metrics module (the service never imports http/): idempotency events by name.
_idempotency_observers: list[Callable[[str], None]] = []


def add_idempotency_observer(fn: Callable[[str], None]) -> None:
    _idempotency_observers.append(fn)


def observe_idempotency(event: str) -> None:
    for fn in _idempotency_observers:
        fn(event)


@dataclass(frozen=True)
class WatchLimits:
    """How long one watch may stay open, and how many may be open (in all, and per tenant; docs/reliability.md)."""

    cap_seconds: float = 300.0
    max_open: int = 10000
    default_per_tenant: int = 1000
    per_tenant: Mapping[str, int] = field(default_factory=dict)


@dataclass
class CreateInput:
    tenant: str
    provider: str
    model: str
    callback_url: str
    locale: str
    subject_id: str
    idempotency_key: str
    options_kind: str  # which oneof field was set ("" for none)
    options: Any


@dataclass
class ListInput:
    """A ListAuthSessions request, its state and times already read from proto (None: not set)."""

    tenant: str
    page_size: int = 0
    page_token: str = ""
    subject_id: str = ""
    state: SessionState | None = None
    provider: str = ""
    create_time_start: float | None = None
    create_time_end: float | None = None


def fingerprint(req: CreateInput) -> dict[str, str]:
    """A digest per create parameter, so a reused idempotency key can name what differs (and store no new PII)."""
    options = b""
    if req.options_kind and req.options is not None:
        serialize = getattr(req.options, "SerializeToString", None)
        raw = serialize(deterministic=True) if callable(serialize) else repr(req.options).encode()
        options = req.options_kind.encode() + b"\0" + bytes(raw)
    values: dict[str, bytes] = {
        "provider": req.provider.encode(),
        "model": req.model.encode(),
        "callback_url": req.callback_url.encode(),
        "subject_id": req.subject_id.encode(),
        "locale": (req.locale or "zh").encode(),
        "options": options,
    }
    return {k: hashlib.sha256(k.encode() + b"\0" + values[k]).hexdigest()[:32] for k in FINGERPRINT_FIELDS}


def fingerprint_mismatch(stored: Mapping[str, str], given: Mapping[str, str]) -> tuple[str, ...]:
    """Fields whose digests differ (a field missing on either side, e.g. a session from before this, is skipped)."""
    return tuple(f for f in FINGERPRINT_FIELDS if f in stored and f in given and stored[f] != given[f])


def fails_over(exc: E.RealAuthError) -> bool:
    """A create error that says "this vendor cannot serve now" (down, open breaker, garbage), not "no"."""
    return isinstance(exc, E.ProviderUnavailable | E.ProviderError)


class LandingRefused(Exception):
    """A browser landing that must change nothing: bad signature, unknown, replayed or expired.

    ``reason`` is a short fixed word for the refusal metric (never an id or a token); ``provider`` is
    the session's provider instance once it is known.
    """

    def __init__(self, status: int, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.provider = ""


class TokenClaimed(E.AccessDenied):
    """The vendor token this result was fetched or pushed with already completed another session."""


#: Called with (route, provider, reason) for every refused landing, push or claim (the metrics hook, so
#: this layer needs no metrics import). Routes: landing, push, exchange.
_refusal_observers: list[Callable[[str, str, str], None]] = []


def add_refusal_observer(fn: Callable[[str, str, str], None]) -> None:
    _refusal_observers.append(fn)


def note_refusal(route: str, provider: str, reason: str) -> None:
    for fn in _refusal_observers:
        fn(route, provider, reason)


class PushRefused(LandingRefused):
    """A vendor push that must change nothing (same shape as a refused landing: HTTP status, plain text)."""


@dataclass(frozen=True)
class PushOutcome:
    """What a verified push did: the session's state afterwards, and whether this push wrote it."""

    state: SessionState
    recorded: bool


def validate_url(field_name: str, value: str) -> str:
    """The URL's normal form (stored, and later redirected to as is), or InvalidParameter naming the field."""
    try:
        return normalize_callback_url(value)
    except URLRejected as exc:
        raise E.InvalidParameter(field_name, exc.reason) from None


def due_time(session: AuthSession) -> float:
    """After this moment a non-terminal session is expired."""
    return session.due_time


async def single_flight_tries(busy: str) -> AsyncGenerator[None, None]:
    """One turn per try of a cross-replica single flight (a store lease or reservation another replica may hold):
    between tries it waits POLL_FIRST, doubling up to POLL_MAX, within the call's budget, and past the budget it
    raises ProviderTimeout(``busy``)."""
    delay = POLL_FIRST
    while True:
        yield
        left = deadlines.remaining()
        if left <= 0:
            raise E.ProviderTimeout(busy)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, POLL_MAX)


def exchange_lease(session_id: str) -> str:
    return f"exchange:{session_id}"


def validate_short(field_name: str, value: str) -> None:
    """Short caller text (ids, keys, names): bounded, and none of the code points :mod:`.text` refuses."""
    if len(value) > MAX_FIELD:
        raise E.InvalidParameter(field_name, f"is longer than {MAX_FIELD} characters")
    bad = unsafe_char(value)
    if bad is not None:
        raise E.InvalidParameter(field_name, bad)


@dataclass
class Held:
    """A store lease held by :meth:`AuthService._lease`."""

    name: str
    owner: str
    session: AuthSession | None = None  # read with the lease when asked (None: gone, or not asked)
    released: bool = False  # released by the store write that recorded the result


class AuthService:
    def __init__(
        self,
        *,
        store: SessionStore,
        providers: Mapping[str, Provider],
        default_provider: str,
        clock: Clock,
        public_url: str,
        landing_key: bytes,
        tenants: Mapping[str, credentials.TenantAccess] | None = None,
        watch_limits: WatchLimits | None = None,
    ) -> None:
        self.store = store
        self.tenants = dict(tenants or {})
        self.providers = dict(providers)
        self.default_provider = default_provider
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self._landing_key = landing_key
        #: HMAC-SHA256 keyed and fed "landing:" once; each signature copies it (the same MAC, without re-keying).
        self._landing_mac = hmac.new(landing_key, b"landing:", hashlib.sha256)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.watch_limits = limits = watch_limits or WatchLimits()
        self.watches = InFlight("watches_server", limits.max_open, what="open watches")
        self.tenant_watches = KeyedInFlight(
            "watches_tenant", lambda t: limits.per_tenant.get(t, limits.default_per_tenant), what="open watches"
        )
        self._page_key: bytes | None = None
        store.use_clock(clock)

    def begin_shutdown(self) -> None:
        """End open watches (they get UNAVAILABLE and reconnect elsewhere); called before the gRPC stop."""
        self.store.feed.close_all()

    # --- helpers --------------------------------------------------------------------------------

    def _lock_for(self, key: str) -> asyncio.Lock:
        """The in-process lock for ``key`` (kept while someone holds or waits for it)."""
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    @asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        async with self._lock_for(key):
            yield

    async def _acquire(self, name: str, seconds: float, busy: str, read: str = "") -> Held:
        """Take a store lease (single flight across replicas), waiting within the call's budget; the caller releases
        it unless the result's write did (``Held.released``).

        ``read``: also read that session with the lease, in the same store operation (``Held.session``). The first
        try is made directly: the polling generator is only started when another holder makes the caller wait.
        """
        held = Held(name, os.urandom(16).hex())
        ttl = seconds + LEASE_MARGIN

        async def take() -> bool:
            if read:
                taken, held.session = await self.store.acquire_lease_get(name, held.owner, ttl, read)
                return taken
            return await self.store.acquire_lease(name, held.owner, ttl)

        if await take():
            return held
        async with aclosing(single_flight_tries(busy)) as tries:
            await anext(tries)  # its first turn is the try just made
            async for _ in tries:
                if await take():
                    break
        return held

    @asynccontextmanager
    async def _lease(self, name: str, seconds: float, busy: str) -> AsyncIterator[None]:
        """Hold a store lease for the block (:meth:`_acquire`). ExchangeToken, which may release it with its result's
        write, holds its lease without this wrapper."""
        held = await self._acquire(name, seconds, busy)
        try:
            yield
        finally:
            await self._release(name, held.owner)

    async def _move(
        self, session: AuthSession, state: SessionState, now: float, *, reread_on_conflict: bool = False
    ) -> AuthSession:
        """The one place a session's state is written outside recording a result (EXPIRED, CANCELLED).

        A landing or push may have written the session first (StoreConflict): with ``reread_on_conflict`` the stored
        copy is returned (it decided), else the conflict is raised for the caller to decide again.
        """
        try:
            return await self.store.update(session.evolve(state=state, update_time=now))
        except StoreConflict:
            if not reread_on_conflict:
                raise
            return await self.store.get(session.session_id) or session

    async def _release(self, name: str, owner: str) -> None:
        try:
            await self.store.release_lease(name, owner)
        except Exception:  # the lease expires on its own; never hide the call's own outcome
            log.warning("could not release a lease", extra={"lease": name.split(":", 1)[0]})

    def landing_signature(self, session_id: str) -> str:
        h = self._landing_mac.copy()  # = hmac.new(key, f"landing:{session_id}".encode(), sha256)
        h.update(session_id.encode())
        mac = h.digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def landing_url(self, session_id: str) -> str:
        return f"{self.public_url}{LANDING_PATH}{session_id}/{self.landing_signature(session_id)}"

    def push_url(self, session_id: str) -> str:
        return f"{self.public_url}{PUSH_PATH}{session_id}/{self.landing_signature(session_id)}"

    def provider_for(self, session: AuthSession) -> Provider:
        provider = self.providers.get(session.provider)
        if provider is None:
            raise E.InternalError(f"session {session.session_id} names provider {session.provider!r}, not configured")
        return provider

    def visible_providers(self) -> list[Provider]:
        """The providers the caller may use, in configuration order; no answer names any other."""
        return [p for p in self.providers.values() if credentials.provider_allowed(p.name)]

    def caller_default(self) -> Provider | None:
        """The caller's default: the server's if it may use it, else its first allowed one (None: it may use none).

        A tenant is never routed to, or shown as default, a provider it may not use.
        """
        default = self.providers.get(self.default_provider)
        if default is not None and credentials.provider_allowed(default.name):
            return default
        visible = self.visible_providers()
        return visible[0] if visible else None

    def route(self, provider: str, model: str) -> Provider:
        """Pick the provider instance; the caller's allow-list is applied before anything else is said about it.

        Lists in error messages (providers, models) name only what the caller may use.
        """
        if provider:
            found = self.providers.get(provider)
            if found is None or not credentials.provider_allowed(found.name):
                # A provider this caller may not use is reported exactly like one that does not exist.
                names = ", ".join(p.name for p in self.visible_providers()) or "none"
                raise E.InvalidParameter(
                    "provider", f"unknown provider {E.echo(provider)!r}; this caller may use: {names}"
                )
            if model and model not in found.models:
                served = ", ".join(found.models) or "no models"
                raise E.InvalidParameter("model", f"provider {E.echo(provider)!r} serves {served}")
            return found
        if model:
            visible = self.visible_providers()
            serving = [p for p in visible if model in p.models]
            if not serving:
                known = ", ".join(sorted({m for p in visible for m in p.models})) or "none"
                raise E.InvalidParameter("model", f"unknown model {E.echo(model)!r}; known: {known}")
            return serving[0]
        default = self.caller_default()
        if default is None:
            raise E.AccessDenied("this caller may use no provider (its [tenants] providers list is empty)")
        return default

    def candidates(self, req: CreateInput) -> list[Provider]:
        """Where a create may go, in order: the routed provider, then its failover candidates.

        An explicit ``provider`` has no failover. By ``model``: every allowed instance serving it (the
        tenant's ``provider_order`` first, then configuration order). Neither: the tenant's ``provider_order``
        when it has one, else only the default provider. Candidates of another kind than the request's
        ``options`` are left out. The tenant's ``provider_weights`` then pick which candidate goes first.
        """
        access = self.tenants.get(req.tenant)
        order = list(access.provider_order) if access else []
        if req.provider or not (req.model or order):
            return [self.route(req.provider, req.model)]
        if req.model:
            first = self.route(req.provider, req.model)  # the model's errors (unknown, not allowed) come first
            pool = [p for p in self.providers.values() if req.model in p.models]
        else:
            pool = [self.providers[n] for n in order]
            first = pool[0]
        rank = {name: i for i, name in enumerate(order)}
        pool.sort(key=lambda p: rank.get(p.name, len(rank)))  # stable: configuration order after the tenant's
        allowed = [p for p in pool if credentials.provider_allowed(p.name)]
        if allowed and (not req.options_kind or allowed[0].options_field == req.options_kind):
            first = allowed[0]
        rest = [p for p in allowed if p is not first and (not req.options_kind or p.options_field == req.options_kind)]
        ranked = [first, *rest]
        weights = dict(access.provider_weights) if access else {}
        if weights and not (req.options_kind and first.options_field != req.options_kind):
            eligible = [p for p in ranked if weights.get(p.name, 0.0) > 0]
            if eligible:  # spread first tries by weight; the others stay in order behind it
                chosen = random.choices(eligible, weights=[weights[p.name] for p in eligible])[0]
                ranked = [chosen, *(p for p in ranked if p is not chosen)]
        return ranked

    @staticmethod
    def _check_allowed(provider: Provider) -> None:
        if not credentials.provider_allowed(provider.name):
            raise E.AccessDenied(f"this caller may not use provider {provider.name!r}", provider=provider.name)

    # --- use cases ------------------------------------------------------------------------------

    async def create(self, req: CreateInput) -> AuthSession:
        callback_url = validate_url("callback_url", req.callback_url)
        if callback_url != req.callback_url:  # most callers send the normal form: nothing to copy then
            req = replace(req, callback_url=callback_url)
        for name in ("subject_id", "idempotency_key", "locale", "provider", "model"):
            validate_short(name, getattr(req, name))
        candidates = self.candidates(req)
        provider = candidates[0]
        annotate(provider=provider.name)
        if req.options_kind and req.options_kind != provider.options_field:
            raise E.InvalidParameter(
                req.options_kind,
                f"provider {provider.name!r} is of kind {provider.kind!r}; "
                f"set options.{provider.options_field} or none",
            )
        session_id = new_session_id()
        params = CreateParams(
            session_id=session_id,
            callback_url=self.landing_url(session_id),
            locale=req.locale or "zh",
            subject_id=req.subject_id,
            model=req.model,
            options=req.options if req.options_kind else None,
        )
        provider.validate(params)
        if not req.idempotency_key:
            return await self._create_failover(req, candidates, params, {})
        async with self._lock(f"idem:{req.tenant}:{req.idempotency_key}"):
            return await self._create_once(req, candidates, params)

    def _replay(self, req: CreateInput, session: AuthSession, given: Mapping[str, str]) -> AuthSession:
        """The earlier session for this key, if this request asks for the same thing; else refuse (naming why)."""
        differ = fingerprint_mismatch(session.fingerprint, given)
        if differ:
            observe_idempotency("key_reused")
            log.info(
                "idempotency key reused with other parameters",
                extra={"session_id": session.session_id, "tenant": req.tenant, "fields": ",".join(differ)},
            )
            raise E.IdempotencyKeyReused(differ)
        observe_idempotency("replayed")
        return session

    async def _create_once(self, req: CreateInput, candidates: list[Provider], params: CreateParams) -> AuthSession:
        """Reserve the idempotency key in the store before the vendor call; duplicates wait for it.

        The in-process lock serialises duplicates within this replica; the store's reservation
        (a lease, released on failure and expiring on its own if this replica dies) does so across
        replicas. A waiter gives up with ProviderTimeout when its own deadline runs out. A key's earlier
        session is returned only to a request with the same parameters (IdempotencyKeyReused otherwise).
        """
        owner = params.session_id
        given = fingerprint(req)
        marker = unknown_outcome_marker(req.tenant, req.idempotency_key)
        busy = "another CreateAuthSession with this idempotency_key is still in progress; retry later"
        async with aclosing(single_flight_tries(busy)) as tries:
            async for _ in tries:
                lease = max(deadlines.remaining(), 0.0) + LEASE_MARGIN
                claim = await self.store.claim_idempotency(req.tenant, req.idempotency_key, owner, lease)
                if claim.session is not None:
                    return self._replay(req, claim.session, given)
                if claim.claimed:
                    try:
                        note: dict[str, str] = {}
                        if await self.store.has_marker(marker):
                            # Deliberate: the earlier attempt's vendor session (if any) never reached anyone; a new one
                            # is the only way to serve this key. Counted, logged, and recorded on the session.
                            observe_idempotency("retry_after_unknown")
                            log.warning(
                                "create retried after a vendor call with an unknown outcome",
                                extra={"tenant": req.tenant, "provider": candidates[0].name},
                            )
                            note = {"retry_after_unknown_outcome": "true"}
                        try:
                            return await self._create_failover(req, candidates, params, note)
                        except E.RealAuthError as exc:
                            if exc.outcome_unknown:  # shielded: the caller's deadline often lands right now
                                await asyncio.shield(self._mark_unknown(marker))
                            raise
                        except asyncio.CancelledError:
                            # The caller gave up (its deadline, a disconnect) maybe mid vendor call: unknown too.
                            await asyncio.shield(self._mark_unknown(marker))
                            raise
                    finally:
                        try:  # shielded too: a cancelled release would block retries until the lease expires
                            await asyncio.shield(self.store.release_idempotency(req.tenant, req.idempotency_key, owner))
                        except Exception:
                            log.warning("could not release an idempotency reservation")
        raise E.InternalError("unreachable single-flight state")  # pragma: no cover

    async def _mark_unknown(self, marker: str) -> None:
        """Record that this key's vendor create may have happened without realauth learning its result."""
        observe_idempotency("outcome_unknown")
        try:
            await self.store.put_marker(marker, UNKNOWN_OUTCOME_SECONDS)
        except Exception:  # the call's own error matters more; the retry is then merely not flagged
            log.warning("could not record an unknown create outcome")

    async def _create_failover(
        self, req: CreateInput, candidates: list[Provider], params: CreateParams, note: dict[str, str]
    ) -> AuthSession:
        """Create at the first candidate that can serve; the session records the provider that did."""
        for i, provider in enumerate(candidates):
            if i:
                try:
                    provider.validate(params)
                except E.InvalidParameter:
                    continue  # this candidate cannot take these options: not a candidate after all
            try:
                return await self._create(req, provider, params, note)
            except E.RealAuthError as exc:
                if not fails_over(exc) or i == len(candidates) - 1 or deadlines.remaining() < FAILOVER_MIN_BUDGET:
                    raise
                log.warning(
                    "create failing over to the next provider",
                    extra={"provider": provider.name, "next": candidates[i + 1].name, "error_code": exc.code},
                )
        raise E.InternalError("no provider candidate could be tried")  # only if every fallback was skipped

    async def _create(
        self, req: CreateInput, provider: Provider, params: CreateParams, note: dict[str, str]
    ) -> AuthSession:
        with provider.in_flight.hold():
            vendor = await provider.create_session(params)
        now = self.clock.now()
        session = AuthSession(
            session_id=params.session_id,
            tenant=req.tenant,
            provider=provider.name,
            provider_kind=provider.kind,
            state=SessionState.PENDING,
            token=vendor.token,
            verification_url=vendor.verification_url,
            callback_url=req.callback_url,
            create_time=now,
            expire_time=vendor.expire_time,
            exchange_deadline=now + provider.settings.exchange_window,
            update_time=now,
            subject_id=req.subject_id,
            locale=params.locale,
            model=vendor.vendor_data.get("model", req.model),
            idempotency_key=req.idempotency_key,
            vendor_data={**vendor.vendor_data, "request_id": vendor.vendor_request_id, **note},
            fingerprint=fingerprint(req) if req.idempotency_key else {},
        )
        stored = await self.store.insert(session)
        if stored.session_id != session.session_id:  # another replica stored its session for this key first
            return self._replay(req, stored, session.fingerprint)
        # DEBUG: at INFO the call's `rpc` line names the session (session_id) with everything else this line has.
        log.debug(
            "session created",
            extra={"session_id": stored.session_id, "provider": provider.name, "tenant": req.tenant},
        )
        return stored

    async def get(self, tenant: str, session_id: str) -> AuthSession:
        if not session_id:
            raise E.InvalidParameter("session_id", "is required")
        validate_short("session_id", session_id)
        session = await self.store.get(session_id)
        if session is None or session.tenant != tenant:
            # Another tenant's session is reported exactly like a missing one.
            raise E.SessionNotFound(f"session {E.echo(session_id)} not found")
        annotate(provider=session.provider)
        return await self._expire_if_due(session)

    async def _expire_if_due(self, session: AuthSession) -> AuthSession:
        """Mark a session past its window expired, unless an exchange for it is running right now.

        Expiring takes the same lease as exchanging, so a result fetched in the last moment of the
        window is never overwritten by (or hidden behind) an expiry.
        """
        now = self.clock.now()
        if session.state.terminal or now <= due_time(session):
            return session
        owner = uuid.uuid4().hex
        name = exchange_lease(session.session_id)
        if not await self.store.acquire_lease(name, owner, LEASE_MARGIN):
            return session  # an exchange holds it: it decides the outcome
        try:
            fresh = await self.store.get(session.session_id)
            if fresh is None or fresh.state.terminal:
                return fresh or session
            return await self._move(fresh, SessionState.EXPIRED, now, reread_on_conflict=True)
        finally:
            await self._release(name, owner)

    async def list_sessions(self, req: ListInput) -> tuple[list[AuthSession], str]:
        """A page of the tenant's sessions, newest first, and the next page's token ("" when there is none).

        Sessions past their window are reported EXPIRED, as GetAuthSession would (without writing them here: a
        listing is a read). The token is bound to the tenant and the filters (:mod:`.paging`).
        """
        if req.page_size < 0:
            raise E.InvalidParameter("page_size", "must not be negative (0 means the default, 50)")
        size = min(req.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        for name in ("subject_id", "provider"):
            validate_short(name, getattr(req, name))
        start, end = req.create_time_start, req.create_time_end
        if start is not None and end is not None and end <= start:
            raise E.InvalidParameter("create_time_end", "must be later than create_time_start")
        flt = SessionFilter(
            subject_id=req.subject_id,
            state=req.state,
            provider=req.provider,
            create_time_start=start,
            create_time_end=end,
        )
        key = await self._page_token_key()
        after = paging.decode(key, req.tenant, flt, req.page_token) if req.page_token else None
        page = await self.store.list_sessions(req.tenant, flt, size, after)
        now = self.clock.now()
        sessions = [
            s if s.reported_state(now) is s.state else s.evolve(state=SessionState.EXPIRED) for s in page.sessions
        ]
        token = paging.encode(key, req.tenant, flt, page.cursor) if page.cursor is not None else ""
        return sessions, token

    async def _page_token_key(self) -> bytes:
        if self._page_key is None:
            self._page_key = await self.store.shared_secret(paging.SECRET_NAME)
        return self._page_key

    async def cancel(self, tenant: str, session_id: str) -> AuthSession:
        """End a pending session for good: no landing, push or exchange records anything for it afterwards.

        Written under the session's exchange lease (like exchange and push), so a cancel and an exchange never
        both win: whichever takes the lease first decides, the other sees its outcome. Cancelling a cancelled
        session returns it (idempotent); any other state is SessionNotCancellable.
        """
        session = await self.get(tenant, session_id)  # validates session_id and the tenant; expires if due
        if session.state is SessionState.CANCELLED:
            return session
        sid = session.session_id
        async with (
            self._lock(f"session:{sid}"),
            self._lease(exchange_lease(sid), 0.0, f"the exchange of session {sid} is in progress; retry"),
        ):
            for _attempt in range(3):
                fresh = await self.store.get(sid)
                if fresh is None or fresh.tenant != tenant:
                    raise E.SessionNotFound(f"session {sid} not found")
                if fresh.state is SessionState.CANCELLED:
                    return fresh
                now = self.clock.now()
                try:
                    if fresh.state is SessionState.PENDING and now > due_time(fresh):
                        fresh = await self._move(fresh, SessionState.EXPIRED, now)
                    if fresh.state is not SessionState.PENDING:
                        raise E.SessionNotCancellable(
                            f"session {sid} is {fresh.state.value}; only a pending session can be cancelled",
                            provider=fresh.provider,
                        )
                    cancelled = await self._move(fresh, SessionState.CANCELLED, now)
                except StoreConflict:  # a landing moved it on meanwhile: decide again on what it wrote
                    continue
                log.info("session cancelled", extra={"session_id": sid, "provider": fresh.provider, "tenant": tenant})
                return cancelled
        raise E.InternalError(f"could not cancel session {sid}")

    async def exchange(self, tenant: str, *, session_id: str = "", token: str = "") -> AuthSession:
        if session_id:
            session = await self.get(tenant, session_id)
        elif token:
            validate_short("token", token)
            found = await self.store.get_by_token(token)
            if found is None or found.tenant != tenant:
                raise E.TokenNotFound("no session has this token")
            annotate(provider=found.provider)
            session = found
        else:
            raise E.InvalidParameter("key", "set token or session_id")
        try:
            return await self._exchange(session)
        except TokenClaimed:
            note_refusal("exchange", session.provider, "token_reused")
            raise

    async def _exchange(self, session: AuthSession) -> AuthSession:
        """Exchange once: an in-process lock, then a store lease shared by all replicas.

        A vendor token is single use, so two replicas (say, the landing on one and an ExchangeToken
        on another) must never both send it; the second waits and then reads the first one's result.
        """
        sid = session.session_id
        window = max(session.exchange_deadline - self.clock.now(), 0.0)
        # The lock and the lease as plain awaits and try/finally, not two context-manager generators: every
        # ExchangeToken pays for them.
        async with self._lock_for(f"session:{sid}"):
            held = await self._acquire(
                exchange_lease(sid),
                min(window, max(deadlines.remaining(), 0.0)),
                f"the exchange of session {sid} is in progress elsewhere; retry",
                read=sid,
            )
            try:
                session = held.session or session
                if session.state is SessionState.EXCHANGED or (
                    session.state is SessionState.FAILED and session.result is not None
                ):
                    return session  # idempotent: the vendor is never asked twice
                if session.state is SessionState.CANCELLED:
                    raise E.SessionCancelled(
                        f"session {sid} was cancelled; nothing is exchanged for it", provider=session.provider
                    )
                now = self.clock.now()
                if session.state is SessionState.EXPIRED or now > session.exchange_deadline:
                    if session.state is not SessionState.EXPIRED:
                        await self._move(session, SessionState.EXPIRED, now)
                    raise E.TokenExpired(f"session {sid} passed its exchange deadline; create a new session")
                provider = self.provider_for(session)
                token = provider.exchange_token(session)
                if not token:
                    raise E.VerificationPending(
                        f"{session.provider}: no vendor result is bound to session {sid} yet (the vendor's push is"
                        " awaited); retry later",
                        provider=session.provider,
                    )
                with deadlines.budget(session.exchange_deadline - now, "window"), provider.in_flight.hold():
                    try:
                        result = await provider.exchange(session)
                    except E.VerificationFailed as exc:
                        result = VerificationResult(
                            passed=False,
                            vendor_result_code=exc.vendor_code,
                            vendor_result_message=exc.message,
                            complete_time=self.clock.now(),
                            vendor_request_id=exc.vendor_request_id,
                        )
                    except E.TokenExpired:
                        await self._move(session, SessionState.EXPIRED, self.clock.now())
                        raise
                return await self._record(session, result, token, held=held)
            finally:
                if not held.released:  # not already released with the write that recorded the result
                    await self._release(held.name, held.owner)

    async def _record(
        self,
        session: AuthSession,
        result: VerificationResult,
        token: str,
        bind: bool = False,
        held: Held | None = None,
    ) -> AuthSession:
        """Store a vendor result. It was fetched with a single-use token: it wins over any other write.

        First the vendor token is claimed for this session (unique in the store, across replicas): a
        token that already completed another session records nothing (:class:`TokenClaimed`). ``bind``
        also stores the token as the session's own (a push brought it: no landing could have).
        """
        if not token:
            raise E.InternalError(f"the result of session {session.session_id} names no vendor token")
        key = vendor_token_key(session.provider_kind, token)
        state = SessionState.EXCHANGED if result.passed else SessionState.FAILED

        def written(s: AuthSession) -> AuthSession:
            vendor_data = {**s.vendor_data, BOUND_TOKEN: token} if bind else s.vendor_data
            return s.evolve(state=state, result=result, vendor_data=vendor_data, update_time=self.clock.now())

        # The claim and the first write in one store operation (and the lease's release with it, where the store
        # can); a conflict leaves the claim made, and the writes below retry on a fresh read.
        try:
            recorded = await self.store.record_result(
                key,
                written(session),
                self.store.retain_until(session),
                lease=(held.name, held.owner) if held is not None else None,
            )
        except StoreConflict:
            pass
        else:
            if recorded.session is None:
                log.warning(
                    "vendor result refused: its token completed another session",
                    extra={"session_id": session.session_id, "provider": session.provider},
                )
                raise TokenClaimed(
                    "this vendor result already completed another verification session", provider=session.provider
                )
            if held is not None and recorded.released:
                held.released = True
            return recorded.session
        for attempt in range(3):  # after each conflict: read, then write again (three writes in all, as before)
            fresh = await self.store.get(session.session_id)
            if fresh is None:
                break
            if fresh.result is not None:
                return fresh
            if attempt == 2:
                break
            session = fresh
            try:
                return await self.store.update(written(session))
            except StoreConflict:
                continue
        raise E.InternalError(f"could not record the result of session {session.session_id}")

    async def watch(self, tenant: str, session_id: str) -> AsyncIterator[AuthSession]:
        """The session now, then every change, until a terminal state or the watch cap.

        Changes come from the store's feed (in-process, or Redis pub/sub from other replicas); the
        session's own deadline is a timer here, so expiry is reported with no request arriving. A watch
        open for ``watch_limits.cap_seconds`` (real time) ends with status OK on a non-terminal state: the
        caller watches again and first gets the state at that moment. Open watches are bounded in all and
        per tenant; past a bound the watch is refused at once with Overloaded.
        """
        with self.watches.hold(), self.tenant_watches.hold(tenant):
            async for session in self._watch(tenant, session_id, time.monotonic() + self.watch_limits.cap_seconds):
                yield session

    async def _watch(self, tenant: str, session_id: str, ends: float) -> AsyncIterator[AuthSession]:
        with self.store.feed.listen(session_id) as changes:  # before the first read: miss nothing
            session = await self.get(tenant, session_id)  # validates session_id and the tenant
            yield session
            ticks = 0
            while not session.state.terminal:
                left = ends - time.monotonic()
                if left <= 0:
                    log.info("watch reached its cap", extra={"session_id": session_id, "tenant": tenant})
                    return
                wait = min(WATCH_TICK, max(due_time(session) - self.clock.now(), 0.0) + 0.01, left)
                try:
                    nxt = await asyncio.wait_for(changes.get(), wait)
                except TimeoutError:
                    ticks += 1
                    if self.clock.now() <= due_time(session) and ticks % RESYNC_TICKS:
                        continue
                    stored = await self.store.get(session_id)
                    if stored is None:
                        raise E.SessionNotFound(f"session {E.echo(session_id)} not found") from None
                    nxt = await self._expire_if_due(stored)
                if nxt is None:
                    raise E.ServiceUnavailable("the server is shutting down; watch again (another replica)")
                if nxt.version > session.version:
                    session = nxt
                    yield session

    # --- webhooks (docs/webhooks.md) -------------------------------------------------------------

    async def list_webhook_deliveries(
        self, tenant: str, session_id: str, status: DeliveryStatus | None, page_size: int, page_token: str
    ) -> tuple[list[WebhookDelivery], str]:
        """The tenant's own deliveries, newest first, and the next page's token ("" after the last)."""
        if session_id:
            validate_short("session_id", session_id)
        if not 0 <= page_size <= WEBHOOK_PAGE_MAX:
            raise E.InvalidParameter("page_size", f"must be in [0, {WEBHOOK_PAGE_MAX}] (0: {WEBHOOK_PAGE_DEFAULT})")
        offset = 0
        if page_token:
            validate_short("page_token", page_token)
            offset = decode_page_token(page_token)
        items, nxt = await self.store.list_webhooks(
            tenant, session_id, status, offset, page_size or WEBHOOK_PAGE_DEFAULT
        )
        return items, (encode_page_token(nxt) if nxt is not None else "")

    async def redeliver_webhook(self, tenant: str, delivery_id: str) -> WebhookDelivery:
        """Send a delivery again now, with a new retry window (a record of another tenant is "not found")."""
        if not delivery_id:
            raise E.InvalidParameter("delivery_id", "is required")
        validate_short("delivery_id", delivery_id)
        record = await self.store.get_webhook(delivery_id)
        if record is None or record.tenant != tenant:
            raise E.WebhookDeliveryNotFound(f"webhook delivery {E.echo(delivery_id)} not found")
        again = await self.store.redeliver_webhook(delivery_id, self.clock.now() + WEBHOOK_MAX_AGE)
        if again is None:
            raise E.WebhookDeliveryNotFound(f"webhook delivery {E.echo(delivery_id)} not found")
        log.info("webhook redelivery requested", extra={"delivery_id": delivery_id, "tenant": tenant})
        return again

    async def land(self, session_id: str, signature: str, query: Mapping[str, str]) -> str:
        """Record the vendor's browser redirect, exchange at once, and return the caller's URL.

        The browser is the attacker's (docs/security.md, threat model): everything in ``query`` may be
        edited. A landing is accepted only when its vendor token is this session's bound token (or, while
        none is bound, no other session's claimed one); the result itself always comes from the vendor.
        """
        provider_name = ""
        try:
            if not hmac.compare_digest(signature.encode(), self.landing_signature(session_id).encode()):
                raise LandingRefused(403, "This link is not valid.", "bad_signature")
            session = await self.store.get(session_id)
            if session is None:
                raise LandingRefused(404, "This verification session does not exist.", "unknown_session")
            provider_name = session.provider
            annotate(tenant=session.tenant, provider=session.provider)
            return await self._land(session, query)
        except LandingRefused as exc:
            exc.provider = provider_name
            note_refusal("landing", provider_name, exc.reason)
            log.info(
                "landing refused",
                extra={"session_id": session_id, "provider": provider_name, "status": exc.status, "reason": exc.reason},
            )
            raise

    async def _land(self, session: AuthSession, query: Mapping[str, str]) -> str:
        session_id = session.session_id
        if session.state is SessionState.CANCELLED:  # before anything else: no parsing, no claim, no vendor call
            raise LandingRefused(410, "This verification was cancelled.", "cancelled")
        # No RPC context here: sign and verify with the session tenant's own credentials, as its calls would.
        access = self.tenants.get(session.tenant, credentials.TenantAccess())
        with credentials.using(access.profile, access.allowed):
            provider = self.provider_for(session)
            landing = provider.parse_landing(session, query)
            await self._check_landing_token(provider, session, landing.token)
            if not landing.finished:
                raise LandingRefused(400, "The vendor did not report a finished verification.", "not_finished")
            if session.state is not SessionState.PENDING:
                if settled_before_landing(session):
                    check_verdict(provider, session, landing.passed)
                    return caller_url(session)
                raise LandingRefused(409, "This verification was already completed.", "replayed")
            now = self.clock.now()
            if now > due_time(session):
                await self._expire_if_due(session)
                raise LandingRefused(410, "This verification session has expired.", "expired")
            try:
                session = await self.store.update(
                    session.evolve(state=SessionState.COMPLETED, landing=landing.params, update_time=now)
                )
            except StoreConflict:
                fresh = await self.store.get(session_id)
                if fresh is not None and fresh.state is SessionState.CANCELLED:
                    raise LandingRefused(410, "This verification was cancelled.", "cancelled") from None
                if fresh is not None and settled_before_landing(fresh):
                    check_verdict(provider, fresh, landing.passed)
                    return caller_url(fresh)
                raise LandingRefused(409, "This verification was already completed.", "replayed") from None
            if not provider.exchange_token(session):
                # Nothing bound yet (a Volcengine H5 push is awaited): the browser's token is never used.
                return caller_url(session)
            try:
                session = await self._exchange(session)
            except TokenClaimed:
                raise LandingRefused(
                    403, "This result belongs to another verification session.", "token_reused"
                ) from None
            except E.RealAuthError as exc:
                # The caller can still ExchangeToken within the window; the landing itself succeeded.
                log.warning(
                    "exchange at landing failed",
                    extra={"session_id": session_id, "error_code": exc.code, "provider": session.provider},
                )
                session = await self.store.get(session_id) or session
                return caller_url(session)
            check_verdict(provider, session, landing.passed)
        return caller_url(session)

    async def _check_landing_token(self, provider: Provider, session: AuthSession, token: str) -> None:
        """Refuse a landing whose vendor token is not this session's (bound) or is another session's (claimed)."""
        if not token:
            return
        bound = provider.bound_token(session)
        if bound:
            if not hmac.compare_digest(token.encode(), bound.encode()):
                raise LandingRefused(403, "This result belongs to another verification session.", "foreign_token")
            return
        owner = await self.store.vendor_token_owner(vendor_token_key(session.provider_kind, token))
        if owner is not None and owner != session.session_id:
            raise LandingRefused(403, "This result belongs to another verification session.", "token_reused")

    async def push(self, session_id: str, signature: str, body: bytes, content_type: str) -> PushOutcome:
        """Record a result the vendor pushed server to server; the browser may never come back.

        Idempotent: a push for a session that already has its outcome changes nothing and still succeeds
        (the vendor stops retrying). Writes only under the session's exchange lease, so a push and an
        exchange never both record a result.
        """
        provider_name = ""
        try:
            if not hmac.compare_digest(signature.encode(), self.landing_signature(session_id).encode()):
                raise PushRefused(403, "This push URL is not valid.", "bad_signature")
            if len(body) > MAX_PUSH_BYTES:
                raise PushRefused(400, f"The push body is larger than {MAX_PUSH_BYTES} bytes.", "too_large")
            session = await self.store.get(session_id)
            if session is None:
                raise PushRefused(404, "This verification session does not exist.", "unknown_session")
            provider_name = session.provider
            annotate(tenant=session.tenant, provider=session.provider)
            outcome = await self._push(session, body, content_type)
        except LandingRefused as exc:
            exc.provider = provider_name
            note_refusal("push", provider_name, exc.reason)
            log.info(
                "vendor push refused",
                extra={"session_id": session_id, "provider": provider_name, "status": exc.status, "reason": exc.reason},
            )
            raise
        except E.RealAuthError as exc:
            log.warning(
                "vendor push not recorded",
                extra={"session_id": session_id, "provider": provider_name, "error_code": exc.code},
            )
            raise
        log.info(
            "vendor push",
            extra={
                "session_id": session_id,
                "provider": provider_name,
                "state": outcome.state.value,
                "recorded": outcome.recorded,
            },
        )
        return outcome

    async def _push(self, session: AuthSession, body: bytes, content_type: str) -> PushOutcome:
        access = self.tenants.get(session.tenant, credentials.TenantAccess())
        with credentials.using(access.profile, access.allowed):
            provider = self.provider_for(session)
            try:
                pushed = provider.parse_push(session, body, content_type)
            except PushRejected as exc:
                raise PushRefused(exc.status, exc.message, exc.reason) from None
            except E.RealAuthError:
                # No usable credential for this tenant (or the provider is not allowed to it).
                raise PushRefused(403, "This push cannot be verified for this session.", "bad_credentials") from None
        if pushed is None:
            raise PushRefused(404, "This provider takes no result pushes.", "no_pushes")
        if pushed.result is None:
            return PushOutcome(session.state, recorded=False)  # progress only: nothing to record
        if not pushed.token:
            raise PushRefused(403, "This push names no vendor token.", "unbound")
        sid = session.session_id
        with deadlines.budget(PUSH_BUDGET, "push"):
            async with (
                self._lock(f"session:{sid}"),
                self._lease(exchange_lease(sid), 0.0, f"the exchange of session {sid} is in progress; retry"),
            ):
                fresh = await self.store.get(sid) or session
                if fresh.state.terminal:
                    return PushOutcome(fresh.state, recorded=False)
                now = self.clock.now()
                if now > fresh.exchange_deadline:
                    fresh = await self._move(fresh, SessionState.EXPIRED, now, reread_on_conflict=True)
                    return PushOutcome(fresh.state, recorded=False)
                bound = provider.bound_token(fresh)
                if bound and not hmac.compare_digest(pushed.token.encode(), bound.encode()):
                    raise PushRefused(403, "This push is for another verification session.", "foreign_token")
                try:
                    stored = await self._record(fresh, pushed.result, pushed.token, bind=not bound)
                except TokenClaimed:
                    raise PushRefused(403, "This push's result completed another session.", "token_reused") from None
                return PushOutcome(stored.state, recorded=stored.result == pushed.result)


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """The offset in a token from :func:`encode_page_token`, or InvalidParameter naming page_token."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind == "o" and number.isdigit() and len(number) <= 9:
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise E.InvalidParameter("page_token", "is not a next_page_token this server returned")


def settled_before_landing(session: AuthSession) -> bool:
    """A result is recorded but no browser landing was (a vendor push, or an early ExchangeToken).

    The person's browser then returning is not a replay: it goes on to the caller with the stored state.
    """
    return (
        session.state in (SessionState.EXCHANGED, SessionState.FAILED)
        and session.result is not None
        and (not session.landing)
    )


def check_verdict(provider: Provider, session: AuthSession, claimed: bool | None) -> None:
    """Refuse a landing whose own verdict contradicts the vendor's recorded one (the session keeps the vendor's).

    A genuine vendor redirect always agrees with the vendor's result, so a mismatch is an edited landing.
    An unbound result (a provider's opt-in) is never a pass whatever the vendor said: nothing to compare.
    """
    result = session.result
    if not provider.bound_token(session):
        return
    if claimed is not None and result is not None and claimed != result.passed:
        raise LandingRefused(409, "The vendor did not confirm the result this page reports.", "result_mismatch")


def caller_url(session: AuthSession) -> str:
    """Where the landing sends the browser: the stored normal form plus session_id and state.

    Normalizing again is a no-op for what create stored; it only matters for a row stored before URLs were
    normalized, which then gets a clear page instead of a failed redirect.
    """
    try:
        target = normalize_callback_url(session.callback_url)
    except URLRejected:
        log.warning("stored callback_url cannot be redirected to", extra={"session_id": session.session_id})
        raise LandingRefused(
            500, "Your verification was recorded, but the address to return to is not valid. Go back to the app."
        ) from None
    return with_query(target, {"session_id": session.session_id, "state": session.state.value})
