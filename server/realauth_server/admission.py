"""Bounds that refuse work at once instead of queueing it (docs/reliability.md).

Past a bound a call gets ``Overloaded`` (RESOURCE_EXHAUSTED with RetryInfo) immediately: it never waits for its
deadline holding memory and a vendor connection. Every refusal goes to the observers (the metrics module registers
one, keeping this module free of a metrics dependency) and is logged at most once per :data:`LOG_INTERVAL` per bound,
so a flood of refusals cannot flood the logs too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import Overloaded

log = logging.getLogger("realauth.admission")

#: A refused bound is logged at most once per this many seconds (with the number refused since the last line).
LOG_INTERVAL = 10.0
#: RetryInfo delay suggested with an in-flight refusal: in-flight calls usually end within a vendor round trip.
RETRY_AFTER = 1.0

_observers: list[Callable[[str, str], None]] = []


def add_rejection_observer(fn: Callable[[str, str], None]) -> None:
    """``fn(reason, scope)`` is called for every refusal (reason: the error code; scope: which bound)."""
    _observers.append(fn)


class _LogThrottle:
    """One log line per key per interval, carrying how many events it stands for."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[tuple[str, ...], float] = {}
        self._suppressed: dict[tuple[str, ...], int] = {}

    def take(self, key: tuple[str, ...]) -> int:
        """0 to stay silent now, else how many events (this one included) the line should report."""
        now = time.monotonic()
        count = self._suppressed.get(key, 0) + 1
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = count
            return 0
        self._last[key] = now
        self._suppressed[key] = 0
        return count


_THROTTLE = _LogThrottle()


def record_rejection(reason: str, scope: str, name: str, limit: int | float) -> None:
    """Count a refusal and log it (throttled). ``name`` is a provider or tenant name, never an id or secret."""
    for fn in _observers:
        fn(reason, scope)
    count = _THROTTLE.take((reason, scope, name))
    if count:
        log.warning(
            "calls refused",
            extra={"reason": reason, "scope": scope, "bound": name, "limit": limit, "refused": count},
        )


class InFlight:
    """A non-blocking bound on concurrent work: enter, or be refused at once with Overloaded."""

    def __init__(self, scope: str, limit: int, name: str = "", what: str = "calls") -> None:
        if limit < 1:
            raise ValueError(f"{scope} bound must be at least 1")
        self.scope = scope
        self.limit = limit
        self.name = name
        self.what = what
        self.count = 0

    def enter(self) -> None:
        """Take a place, or raise Overloaded at once; pair with :meth:`leave` (:meth:`hold` does both)."""
        if self.count >= self.limit:
            record_rejection(Overloaded.code, self.scope, self.name, self.limit)
            where = f" for {self.name}" if self.name else ""
            raise Overloaded(
                f"too many {self.what} in progress{where} (limit {self.limit}); retry shortly",
                provider=self.name if self.scope == "provider" else "",
                retry_after=RETRY_AFTER,
                metadata={"scope": self.scope},
            )
        self.count += 1

    def leave(self) -> None:
        self.count -= 1

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.count -= 1


class KeyedInFlight:
    """One :class:`InFlight` per key (a tenant), each with its own limit, created on first use."""

    def __init__(self, scope: str, limit_for: Callable[[str], int], what: str = "calls") -> None:
        self.scope = scope
        self.limit_for = limit_for
        self.what = what
        self._bounds: dict[str, InFlight] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        bound = self._bounds.get(key)
        if bound is None:
            bound = self._bounds[key] = InFlight(self.scope, self.limit_for(key), name=key, what=self.what)
        try:
            with bound.hold():
                yield
        finally:
            if bound.count == 0:
                self._bounds.pop(key, None)

    def count(self, key: str) -> int:
        bound = self._bounds.get(key)
        return bound.count if bound is not None else 0
