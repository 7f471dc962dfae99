"""Caller identity: ``authorization: Bearer <key>`` or an mTLS client certificate names a tenant.

Keys are kept only as SHA-256 digests and compared in constant time against every digest. The
tenant's vendor credentials and allowed providers travel in context variables for the call
(``credentials.using``), so concurrent tenants never share signing keys. With no tenants
configured every caller is the built-in ``sandbox`` tenant (logged loudly at start-up).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc

from .. import credentials
from ..config import TenantSettings
from ..errors import Unauthenticated
from .base import ScopeInterceptor, UnaryHandler, metadata_value
from .context import call_context

SANDBOX_TENANT = "sandbox"


class AuthInterceptor(ScopeInterceptor):
    def __init__(self, tenants: Sequence[TenantSettings]) -> None:
        self.open = not tenants
        self._sandbox = TenantSettings(name=SANDBOX_TENANT)
        self._tenants = list(tenants)
        self._digests: list[tuple[bytes, TenantSettings]] = []
        self.refresh()
        self._cert_names = {n: t for t in tenants for n in t.client_cert_names}

    def refresh(self) -> None:
        """Recompute the key digests, after a SIGHUP re-read the tenants' ``file:`` keys (one swap)."""
        self._digests = [(hashlib.sha256(k.reveal_bytes()).digest(), t) for t in self._tenants for k in t.keys]

    def _by_key(self, header: str) -> TenantSettings:
        scheme, _, key = header.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthenticated("authorization metadata must be 'Bearer <key>'")
        digest = hashlib.sha256(key.encode()).digest()
        found: TenantSettings | None = None
        for candidate, tenant in self._digests:  # no early exit: time does not depend on which key matched
            if hmac.compare_digest(candidate, digest):
                found = tenant
        if found is None:
            raise Unauthenticated("unknown API key")
        return found

    def _by_cert(self, context: grpc.aio.ServicerContext) -> TenantSettings | None:
        auth = context.auth_context() or {}
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in auth.get("x509_common_name", [])]
        if not names:
            return None
        for name in names:
            tenant = self._cert_names.get(name)
            if tenant is not None:
                return tenant
        return None

    def identify(self, context: grpc.aio.ServicerContext) -> TenantSettings:
        if self.open:
            return self._sandbox
        header = metadata_value(context, "authorization")
        by_cert = self._by_cert(context) if self._cert_names else None
        if header:
            tenant = self._by_key(header)
            if by_cert is not None and by_cert is not tenant:
                raise Unauthenticated("the API key and the client certificate name different tenants")
            return tenant
        if by_cert is not None:
            return by_cert
        raise Unauthenticated("missing credentials: send 'authorization: Bearer <key>' metadata")

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        tenant = self.identify(context)
        call_context().tenant = tenant.name
        access = tenant.access
        with credentials.using(access.profile, access.allowed):
            yield

    def unary(self, method: str, inner: UnaryHandler) -> UnaryHandler:
        identify, enter, leave = self.identify, credentials.enter, credentials.leave

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            tenant = identify(context)
            call_context().tenant = tenant.name
            access = tenant.access
            token = enter(access.profile, access.allowed)
            try:
                return await inner(request, context)
            finally:
                leave(token)

        return handler
