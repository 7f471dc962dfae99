"""The call's time budget, carried in one context variable into every outbound vendor timeout.

The deadline interceptor sets it from min(caller's gRPC deadline, per-RPC cap, session window);
adapters and retry loops only ever ask :func:`remaining` and never invent their own timeouts.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import ProviderTimeout


@dataclass(frozen=True)
class Budget:
    deadline: float  # time.monotonic() value
    reason: str  # what set it: "caller", "cap" or "window", for error messages

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("realauth_budget", default=None)

#: Used when no interceptor set a budget (HTTP-side work, scripts): no call may run unbounded.
DEFAULT_CAP_SECONDS = 30.0


def current() -> Budget:
    b = _BUDGET.get()
    if b is None:
        return Budget(time.monotonic() + DEFAULT_CAP_SECONDS, "cap")
    return b


def remaining() -> float:
    """Seconds left in the current call's budget (may be negative)."""
    return current().remaining()


def require(min_seconds: float = 0.0) -> float:
    """Return the remaining budget, or raise ProviderTimeout when it is already spent."""
    left = remaining()
    if left <= min_seconds:
        raise ProviderTimeout(f"deadline exceeded before the vendor call ({current().reason} budget spent)")
    return left


BudgetToken = contextvars.Token[Budget | None]


def narrow(seconds: float, reason: str) -> BudgetToken:
    """:func:`budget`'s entry without a context manager (the deadline interceptor): pair with :func:`restore`."""
    outer = _BUDGET.get()
    deadline = time.monotonic() + seconds
    if outer is not None and outer.deadline < deadline:
        return _BUDGET.set(outer)
    return _BUDGET.set(Budget(deadline, reason))


def restore(token: BudgetToken) -> None:
    _BUDGET.reset(token)


@contextmanager
def budget(seconds: float, reason: str) -> Iterator[Budget]:
    """Narrow the budget to ``seconds`` from now (never widens an outer budget)."""
    token = narrow(seconds, reason)
    try:
        yield current()
    finally:
        _BUDGET.reset(token)
