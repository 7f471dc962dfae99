"""The vendor-neutral use cases: create, exchange, read, land. No proto and no vendor here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import credentials, deadlines
from . import errors as E
from .clock import Clock
from .domain import AuthSession, CreateParams, SessionState, VerificationResult, new_session_id
from .emulators.base import with_query
from .providers.base import LANDING_PATH, PUSH_PATH, Provider, PushRejected
from .store.base import SessionStore, StoreConflict, unknown_outcome_marker

log = logging.getLogger("realauth.service")

MAX_FIELD = 128
MAX_URL = 2048

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
#: The create parameters an idempotency key is bound to (CreateAuthSessionRequest field names).
FINGERPRINT_FIELDS = ("provider", "model", "callback_url", "subject_id", "locale", "options")

#: Hook set by the metrics module (the service never imports http/): idempotency events by name.
_idempotency_observers: list[Callable[[str], None]] = []


def add_idempotency_observer(fn: Callable[[str], None]) -> None:
    _idempotency_observers.append(fn)


def observe_idempotency(event: str) -> None:
    for fn in _idempotency_observers:
        fn(event)


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
    """A browser landing that must change nothing: bad signature, unknown, replayed or expired."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PushRefused(LandingRefused):
    """A vendor push that must change nothing (same shape as a refused landing: HTTP status, plain text)."""


@dataclass(frozen=True)
class PushOutcome:
    """What a verified push did: the session's state afterwards, and whether this push wrote it."""

    state: SessionState
    recorded: bool


def validate_url(field_name: str, value: str) -> None:
    if not value:
        raise E.InvalidParameter(field_name, "is required")
    if len(value) > MAX_URL:
        raise E.InvalidParameter(field_name, f"is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise E.InvalidParameter(field_name, "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise E.InvalidParameter(field_name, "must be an absolute http:// or https:// URL")
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        raise E.InvalidParameter(field_name, "must not contain spaces or control characters")


def due_time(session: AuthSession) -> float:
    """After this moment a non-terminal session is expired."""
    return max(session.exchange_deadline, session.expire_time)


def exchange_lease(session_id: str) -> str:
    return f"exchange:{session_id}"


def validate_short(field_name: str, value: str) -> None:
    if len(value) > MAX_FIELD:
        raise E.InvalidParameter(field_name, f"is longer than {MAX_FIELD} characters")
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise E.InvalidParameter(field_name, "must not contain control characters")


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
    ) -> None:
        self.store = store
        self.tenants = dict(tenants or {})
        self.providers = dict(providers)
        self.default_provider = default_provider
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self._landing_key = landing_key
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        store.use_clock(clock)

    def begin_shutdown(self) -> None:
        """End open watches (they get UNAVAILABLE and reconnect elsewhere); called before the gRPC stop."""
        self.store.feed.close_all()

    # --- helpers --------------------------------------------------------------------------------

    @asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield

    @asynccontextmanager
    async def _lease(self, name: str, seconds: float, busy: str) -> AsyncIterator[None]:
        """Hold a store lease (single flight across replicas), waiting within the call's budget."""
        owner = uuid.uuid4().hex
        delay = POLL_FIRST
        while not await self.store.acquire_lease(name, owner, seconds + LEASE_MARGIN):
            left = deadlines.remaining()
            if left <= 0:
                raise E.ProviderTimeout(busy)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, POLL_MAX)
        try:
            yield
        finally:
            await self._release(name, owner)

    async def _release(self, name: str, owner: str) -> None:
        try:
            await self.store.release_lease(name, owner)
        except Exception:  # the lease expires on its own; never hide the call's own outcome
            log.warning("could not release a lease", extra={"lease": name.split(":", 1)[0]})

    def landing_signature(self, session_id: str) -> str:
        mac = hmac.new(self._landing_key, f"landing:{session_id}".encode(), hashlib.sha256).digest()
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

    def route(self, provider: str, model: str) -> Provider:
        """Pick the provider instance; the caller's allow-list is applied before anything else is said about it."""
        if provider:
            found = self.providers.get(provider)
            if found is None:
                raise E.InvalidParameter(
                    "provider", f"unknown provider {provider!r}; configured: {', '.join(self.providers)}"
                )
            self._check_allowed(found)
            if model and model not in found.models:
                served = ", ".join(found.models) or "no models"
                raise E.InvalidParameter("model", f"provider {provider!r} serves {served}")
            return found
        if model:
            serving = [p for p in self.providers.values() if model in p.models]
            if not serving:
                known = sorted({m for p in self.providers.values() for m in p.models})
                raise E.InvalidParameter("model", f"unknown model {model!r}; known: {', '.join(known)}")
            allowed = [p for p in serving if credentials.provider_allowed(p.name)]
            self._check_allowed(allowed[0] if allowed else serving[0])
            return allowed[0]
        default = self.providers[self.default_provider]
        self._check_allowed(default)
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
        validate_url("callback_url", req.callback_url)
        validate_short("subject_id", req.subject_id)
        validate_short("idempotency_key", req.idempotency_key)
        candidates = self.candidates(req)
        provider = candidates[0]
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
        delay = POLL_FIRST
        while True:
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
            left = deadlines.remaining()
            if left <= 0:
                raise E.ProviderTimeout(
                    "another CreateAuthSession with this idempotency_key is still in progress; retry later"
                )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, POLL_MAX)

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
        log.info(
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
            raise E.SessionNotFound(f"session {session_id} not found")
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
            try:
                return await self.store.update(fresh.evolve(state=SessionState.EXPIRED, update_time=now))
            except StoreConflict:
                return await self.store.get(session.session_id) or fresh
        finally:
            await self._release(name, owner)

    async def exchange(self, tenant: str, *, session_id: str = "", token: str = "") -> AuthSession:
        if session_id:
            session = await self.get(tenant, session_id)
        elif token:
            validate_short("token", token)
            found = await self.store.get_by_token(token)
            if found is None or found.tenant != tenant:
                raise E.TokenNotFound("no session has this token")
            session = found
        else:
            raise E.InvalidParameter("key", "set token or session_id")
        return await self._exchange(session)

    async def _exchange(self, session: AuthSession) -> AuthSession:
        """Exchange once: an in-process lock, then a store lease shared by all replicas.

        A vendor token is single use, so two replicas (say, the landing on one and an ExchangeToken
        on another) must never both send it; the second waits and then reads the first one's result.
        """
        sid = session.session_id
        window = max(session.exchange_deadline - self.clock.now(), 0.0)
        async with (
            self._lock(f"session:{sid}"),
            self._lease(
                exchange_lease(sid),
                min(window, max(deadlines.remaining(), 0.0)),
                f"the exchange of session {sid} is in progress elsewhere; retry",
            ),
        ):
            fresh = await self.store.get(sid)
            session = fresh or session
            if session.state is SessionState.EXCHANGED or (
                session.state is SessionState.FAILED and session.result is not None
            ):
                return session  # idempotent: the vendor is never asked twice
            now = self.clock.now()
            if session.state is SessionState.EXPIRED or now > session.exchange_deadline:
                if session.state is not SessionState.EXPIRED:
                    await self.store.update(session.evolve(state=SessionState.EXPIRED, update_time=now))
                raise E.TokenExpired(f"session {sid} passed its exchange deadline; create a new session")
            provider = self.provider_for(session)
            with deadlines.budget(session.exchange_deadline - now, "window"):
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
                    await self.store.update(session.evolve(state=SessionState.EXPIRED, update_time=self.clock.now()))
                    raise
            return await self._record(session, result)

    async def _record(self, session: AuthSession, result: VerificationResult) -> AuthSession:
        """Store a vendor result. It was fetched with a single-use token: it wins over any other write."""
        state = SessionState.EXCHANGED if result.passed else SessionState.FAILED
        for _attempt in range(3):
            try:
                return await self.store.update(session.evolve(state=state, result=result, update_time=self.clock.now()))
            except StoreConflict:
                fresh = await self.store.get(session.session_id)
                if fresh is None:
                    break
                if fresh.result is not None:
                    return fresh
                session = fresh
        raise E.InternalError(f"could not record the result of session {session.session_id}")

    async def watch(self, tenant: str, session_id: str) -> AsyncIterator[AuthSession]:
        """The session now, then every change, until a terminal state.

        Changes come from the store's feed (in-process, or Redis pub/sub from other replicas); the
        session's own deadline is a timer here, so expiry is reported with no request arriving.
        """
        with self.store.feed.listen(session_id) as changes:  # before the first read: miss nothing
            session = await self.get(tenant, session_id)  # validates session_id and the tenant
            yield session
            ticks = 0
            while not session.state.terminal:
                wait = min(WATCH_TICK, max(due_time(session) - self.clock.now(), 0.0) + 0.01)
                try:
                    nxt = await asyncio.wait_for(changes.get(), wait)
                except TimeoutError:
                    ticks += 1
                    if self.clock.now() <= due_time(session) and ticks % RESYNC_TICKS:
                        continue
                    stored = await self.store.get(session_id)
                    if stored is None:
                        raise E.SessionNotFound(f"session {session_id} not found") from None
                    nxt = await self._expire_if_due(stored)
                if nxt is None:
                    raise E.ServiceUnavailable("the server is shutting down; watch again (another replica)")
                if nxt.version > session.version:
                    session = nxt
                    yield session

    async def land(self, session_id: str, signature: str, query: Mapping[str, str]) -> str:
        """Record the vendor's browser redirect, exchange at once, and return the caller's URL."""
        if not hmac.compare_digest(signature.encode(), self.landing_signature(session_id).encode()):
            raise LandingRefused(403, "This link is not valid.")
        session = await self.store.get(session_id)
        if session is None:
            raise LandingRefused(404, "This verification session does not exist.")
        # No RPC context here: sign and verify with the session tenant's own credentials, as its calls would.
        access = self.tenants.get(session.tenant, credentials.TenantAccess())
        with credentials.using(access.profile, access.allowed):
            provider = self.provider_for(session)
            landing = provider.parse_landing(session, query)
            if landing.token and not hmac.compare_digest(landing.token.encode(), session.token.encode()):
                raise LandingRefused(403, "This result belongs to another verification session.")
            if not landing.finished:
                raise LandingRefused(400, "The vendor did not report a finished verification.")
            if session.state is not SessionState.PENDING:
                if settled_before_landing(session):
                    return caller_url(session)
                raise LandingRefused(409, "This verification was already completed.")
            now = self.clock.now()
            if now > due_time(session):
                await self._expire_if_due(session)
                raise LandingRefused(410, "This verification session has expired.")
            try:
                session = await self.store.update(
                    session.evolve(state=SessionState.COMPLETED, landing=landing.params, update_time=now)
                )
            except StoreConflict:
                fresh = await self.store.get(session_id)
                if fresh is not None and settled_before_landing(fresh):
                    return caller_url(fresh)
                raise LandingRefused(409, "This verification was already completed.") from None
            try:
                session = await self._exchange(session)
            except E.RealAuthError as exc:
                # The caller can still ExchangeToken within the window; the landing itself succeeded.
                log.warning(
                    "exchange at landing failed",
                    extra={"session_id": session_id, "error_code": exc.code, "provider": session.provider},
                )
                session = await self.store.get(session_id) or session
        return caller_url(session)

    async def push(self, session_id: str, signature: str, body: bytes, content_type: str) -> PushOutcome:
        """Record a result the vendor pushed server to server; the browser may never come back.

        Idempotent: a push for a session that already has its outcome changes nothing and still succeeds
        (the vendor stops retrying). Writes only under the session's exchange lease, so a push and an
        exchange never both record a result.
        """
        provider_name = ""
        try:
            if not hmac.compare_digest(signature.encode(), self.landing_signature(session_id).encode()):
                raise PushRefused(403, "This push URL is not valid.")
            if len(body) > MAX_PUSH_BYTES:
                raise PushRefused(400, f"The push body is larger than {MAX_PUSH_BYTES} bytes.")
            session = await self.store.get(session_id)
            if session is None:
                raise PushRefused(404, "This verification session does not exist.")
            provider_name = session.provider
            outcome = await self._push(session, body, content_type)
        except LandingRefused as exc:
            log.info(
                "vendor push refused",
                extra={"session_id": session_id, "provider": provider_name, "status": exc.status},
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
                raise PushRefused(exc.status, exc.message) from None
            except E.RealAuthError:
                # No usable credential for this tenant (or the provider is not allowed to it).
                raise PushRefused(403, "This push cannot be verified for this session.") from None
        if pushed is None:
            raise PushRefused(404, "This provider takes no result pushes.")
        if pushed.result is None:
            return PushOutcome(session.state, recorded=False)  # progress only: nothing to record
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
                    try:
                        fresh = await self.store.update(fresh.evolve(state=SessionState.EXPIRED, update_time=now))
                    except StoreConflict:
                        fresh = await self.store.get(sid) or fresh
                    return PushOutcome(fresh.state, recorded=False)
                stored = await self._record(fresh, pushed.result)
                return PushOutcome(stored.state, recorded=stored.result == pushed.result)


def settled_before_landing(session: AuthSession) -> bool:
    """A result is recorded but no browser landing was (a vendor push, or an early ExchangeToken).

    The person's browser then returning is not a replay: it goes on to the caller with the stored state.
    """
    return (
        session.state in (SessionState.EXCHANGED, SessionState.FAILED)
        and session.result is not None
        and (not session.landing)
    )


def caller_url(session: AuthSession) -> str:
    return with_query(session.callback_url, {"session_id": session.session_id, "state": session.state.value})
