"""The vendor-neutral use cases: create, exchange, read, land. No proto and no vendor here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from . import deadlines
from . import errors as E
from .clock import Clock
from .domain import AuthSession, CreateParams, SessionState, VerificationResult, new_session_id
from .emulators.base import with_query
from .providers.base import Provider
from .store.base import SessionStore, StoreConflict

log = logging.getLogger("realauth.service")

MAX_FIELD = 128
MAX_URL = 2048


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


class LandingRefused(Exception):
    """A browser landing that must change nothing: bad signature, unknown, replayed or expired."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def validate_url(field_name: str, value: str) -> None:
    from urllib.parse import urlsplit

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
    ) -> None:
        self.store = store
        self.providers = dict(providers)
        self.default_provider = default_provider
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self._landing_key = landing_key
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # --- helpers --------------------------------------------------------------------------------

    @asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield

    def landing_signature(self, session_id: str) -> str:
        mac = hmac.new(self._landing_key, f"landing:{session_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def landing_url(self, session_id: str) -> str:
        return f"{self.public_url}/v1/callback/{session_id}/{self.landing_signature(session_id)}"

    def provider_for(self, session: AuthSession) -> Provider:
        provider = self.providers.get(session.provider)
        if provider is None:
            raise E.InternalError(f"session {session.session_id} names provider {session.provider!r}, not configured")
        return provider

    def route(self, provider: str, model: str) -> Provider:
        if provider:
            found = self.providers.get(provider)
            if found is None:
                raise E.InvalidParameter(
                    "provider", f"unknown provider {provider!r}; configured: {', '.join(self.providers)}"
                )
            if model and model not in found.models:
                served = ", ".join(found.models) or "no models"
                raise E.InvalidParameter("model", f"provider {provider!r} serves {served}")
            return found
        if model:
            for p in self.providers.values():
                if model in p.models:
                    return p
            known = sorted({m for p in self.providers.values() for m in p.models})
            raise E.InvalidParameter("model", f"unknown model {model!r}; known: {', '.join(known)}")
        return self.providers[self.default_provider]

    # --- use cases ------------------------------------------------------------------------------

    async def create(self, req: CreateInput) -> AuthSession:
        validate_url("callback_url", req.callback_url)
        validate_short("subject_id", req.subject_id)
        validate_short("idempotency_key", req.idempotency_key)
        provider = self.route(req.provider, req.model)
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
            return await self._create(req, provider, params)
        async with self._lock(f"idem:{req.tenant}:{req.idempotency_key}"):
            existing = await self.store.find_idempotent(req.tenant, req.idempotency_key)
            if existing is not None:
                return existing
            return await self._create(req, provider, params)

    async def _create(self, req: CreateInput, provider: Provider, params: CreateParams) -> AuthSession:
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
            vendor_data={**vendor.vendor_data, "request_id": vendor.vendor_request_id},
        )
        stored = await self.store.insert(session)
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
        now = self.clock.now()
        if not session.state.terminal and now > max(session.exchange_deadline, session.expire_time):
            try:
                return await self.store.update(session.evolve(state=SessionState.EXPIRED, update_time=now))
            except StoreConflict:
                fresh = await self.store.get(session.session_id)
                return fresh or session
        return session

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
        async with self._lock(f"session:{session.session_id}"):
            fresh = await self.store.get(session.session_id)
            session = fresh or session
            if session.state is SessionState.EXCHANGED or (
                session.state is SessionState.FAILED and session.result is not None
            ):
                return session  # idempotent: the vendor is never asked twice
            now = self.clock.now()
            if session.state is SessionState.EXPIRED or now > session.exchange_deadline:
                if session.state is not SessionState.EXPIRED:
                    await self.store.update(session.evolve(state=SessionState.EXPIRED, update_time=now))
                raise E.TokenExpired(f"session {session.session_id} passed its exchange deadline; create a new session")
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
            state = SessionState.EXCHANGED if result.passed else SessionState.FAILED
            return await self.store.update(session.evolve(state=state, result=result, update_time=self.clock.now()))

    async def land(self, session_id: str, signature: str, query: Mapping[str, str]) -> str:
        """Record the vendor's browser redirect, exchange at once, and return the caller's URL."""
        if not hmac.compare_digest(signature.encode(), self.landing_signature(session_id).encode()):
            raise LandingRefused(403, "This link is not valid.")
        session = await self.store.get(session_id)
        if session is None:
            raise LandingRefused(404, "This verification session does not exist.")
        provider = self.provider_for(session)
        landing = provider.parse_landing(session, query)
        if landing.token and not hmac.compare_digest(landing.token.encode(), session.token.encode()):
            raise LandingRefused(403, "This result belongs to another verification session.")
        if not landing.finished:
            raise LandingRefused(400, "The vendor did not report a finished verification.")
        if session.state is not SessionState.PENDING:
            raise LandingRefused(409, "This verification was already completed.")
        now = self.clock.now()
        if now > max(session.exchange_deadline, session.expire_time):
            await self._expire_if_due(session)
            raise LandingRefused(410, "This verification session has expired.")
        try:
            session = await self.store.update(
                session.evolve(state=SessionState.COMPLETED, landing=landing.params, update_time=now)
            )
        except StoreConflict:
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
        return with_query(session.callback_url, {"session_id": session.session_id, "state": session.state.value})
