"""Caller identity. With no caller keys configured, every caller is the built-in sandbox tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from .base import ScopeInterceptor
from .context import call_context

SANDBOX_TENANT = "sandbox"


class AuthInterceptor(ScopeInterceptor):
    def __init__(self, default_tenant: str = SANDBOX_TENANT) -> None:
        self.default_tenant = default_tenant

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        call_context().tenant = self.default_tenant
        yield
