"""Admission: refuse at once what this process cannot take, instead of letting it queue until its deadline.

- :class:`AdmissionInterceptor` bounds the unary realauth.v1 calls in progress in this process
  (``server.max_in_flight``). It runs before authentication, so a flood is refused before any key is hashed.
  Watches have their own bounds (``service.AuthService.watch``); health and reflection are never refused.
- :class:`TenantRateInterceptor` counts each tenant's requests per second in the session store (so every replica
  sharing a Redis store shares the count) and refuses past the tenant's ``rate_limit`` with TenantRateLimited.
  When the store cannot count, the call is let through: the limit protects capacity, it is not an access control.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from ..admission import InFlight, record_rejection
from ..errors import TenantRateLimited
from ..store.base import SessionStore
from ..store.factory import unavailable_errors
from .base import ScopeInterceptor, UnaryHandler
from .context import call_context

log = logging.getLogger("realauth.admission")

WATCH_METHOD = "/realauth.v1.RealAuthService/WatchAuthSession"
#: Tenant request rates are counted in windows of this many seconds.
RATE_WINDOW = 1.0


class AdmissionInterceptor(ScopeInterceptor):
    def __init__(self, max_in_flight: int) -> None:
        self.bound = InFlight("server", max_in_flight)

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        if method == WATCH_METHOD:
            yield
            return
        with self.bound.hold():
            yield

    def unary(self, method: str, inner: UnaryHandler) -> UnaryHandler:
        if method == WATCH_METHOD:
            return inner
        bound = self.bound

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            bound.enter()
            try:
                return await inner(request, context)
            finally:
                bound.leave()

        return handler


class TenantRateInterceptor(ScopeInterceptor):
    def __init__(self, store: SessionStore, limit_for: Callable[[str], int]) -> None:
        self.store = store
        self.limit_for = limit_for
        self._warned = False

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        tenant = call_context().tenant
        limit = self.limit_for(tenant)
        if limit > 0:
            await self._check(tenant, limit)
        yield

    def unary(self, method: str, inner: UnaryHandler) -> UnaryHandler:
        limit_for, check = self.limit_for, self._check

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            tenant = call_context().tenant
            limit = limit_for(tenant)
            if limit > 0:
                await check(tenant, limit)
            return await inner(request, context)

        return handler

    async def _check(self, tenant: str, limit: int) -> None:
        try:
            hits, window_left = await self.store.count_hit(tenant, RATE_WINDOW)
        except unavailable_errors() as exc:
            if not self._warned:
                log.warning("cannot count tenant requests; letting calls through", extra={"error": type(exc).__name__})
                self._warned = True
            return
        self._warned = False
        if hits > limit:
            record_rejection(TenantRateLimited.code, "tenant", tenant, limit)
            raise TenantRateLimited(
                f"tenant {tenant!r} exceeded its rate limit of {limit} requests per second; retry shortly",
                retry_after=max(window_left, 0.05),
                metadata={"scope": "tenant", "limit": str(limit)},
            )
