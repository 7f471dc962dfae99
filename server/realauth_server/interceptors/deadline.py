"""Sets the call's budget: min(caller's gRPC deadline, per-RPC server cap).

``time_remaining()`` has no "no deadline" value (grpc/grpc#26236): with no deadline it returns a
huge number, so anything beyond the cap is treated as "use the cap". ExchangeToken narrows the
budget further to the session's exchange deadline (see ``service.AuthService._exchange``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from .. import deadlines
from .base import ScopeInterceptor, UnaryHandler


class DeadlineInterceptor(ScopeInterceptor):
    def __init__(self, cap_seconds: float) -> None:
        self.cap = cap_seconds

    def budget_seconds(self, context: grpc.aio.ServicerContext) -> tuple[float, str]:
        remaining = context.time_remaining()
        if remaining is None or remaining != remaining or remaining >= self.cap:
            return self.cap, "cap"
        return max(remaining, 0.0), "caller"

    @asynccontextmanager
    async def scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        seconds, reason = self.budget_seconds(context)
        with deadlines.budget(seconds, reason):
            yield

    def unary(self, method: str, inner: UnaryHandler) -> UnaryHandler:
        budget_seconds, narrow, restore = self.budget_seconds, deadlines.narrow, deadlines.restore

        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = narrow(*budget_seconds(context))
            try:
                return await inner(request, context)
            finally:
                restore(token)

        return handler
