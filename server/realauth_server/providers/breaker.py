"""Per-provider circuit breaker and retry budget: one sick vendor must not take realauth down with it.

The breaker counts vendor *sickness* only (5xx, resets, timeouts, unreadable answers), never a vendor's
business answer (InvalidParameter, VerificationFailed, RateLimited...): a vendor that says "no" is healthy.
States: closed → (``min_calls`` attempts in ``window`` with ≥ ``failure_ratio`` failures) → open →
(``open_seconds`` later) half-open: one probe at a time → closed on success, open again on failure.

The retry budget caps retries at ``retry_ratio`` of the calls in ``window`` (plus ``retry_min`` so a quiet
provider can still retry), so a vendor outage never multiplies into ``max_attempts`` times its traffic.
Both run on an injected clock (``now``), so tests drive the transitions instead of sleeping.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ProviderUnavailable


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerSettings:
    """The knobs, per provider instance (``[providers.NAME] breaker_*`` / ``retry_budget_*``)."""

    window: float = 10.0  # seconds of history the failure ratio and the retry budget look at
    min_calls: int = 20  # no opening below this many attempts in the window (one bad minute is not a trend)
    failure_ratio: float = 0.5  # open when at least this share of the window's attempts failed
    open_seconds: float = 5.0  # fail fast this long, then let one probe through
    retry_ratio: float = 0.2  # retries allowed as a share of the window's calls
    retry_min: int = 10  # retries always allowed per window, whatever the traffic


class CircuitOpen(ProviderUnavailable):
    """The provider's breaker is open: refused before any vendor traffic (same reason as ProviderUnavailable)."""


TransitionHook = Callable[[BreakerState, BreakerState, str], None]


class _Window:
    """Events of the last ``seconds``, with running counts (O(1) amortised per call, whatever the traffic)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.events: deque[tuple[float, bool]] = deque()
        self.flagged = 0

    def add(self, now: float, flag: bool) -> None:
        self.events.append((now, flag))
        self.flagged += flag
        self.trim(now)

    def trim(self, now: float) -> None:
        while self.events and self.events[0][0] < now - self.seconds:
            _, flag = self.events.popleft()
            self.flagged -= flag

    def counts(self, now: float) -> tuple[int, int]:
        """(events, flagged events) in the window."""
        self.trim(now)
        return len(self.events), self.flagged

    def clear(self) -> None:
        self.events.clear()
        self.flagged = 0


class CircuitBreaker:
    """The state machine. Not thread-safe: it lives on one event loop, like the provider."""

    def __init__(
        self, name: str, settings: BreakerSettings, now: Callable[[], float], on_transition: TransitionHook
    ) -> None:
        self.name = name
        self.settings = settings
        self.now = now
        self.on_transition = on_transition
        self.state = BreakerState.CLOSED
        self._attempts = _Window(settings.window)  # flag: failed
        self._opened_at = 0.0
        self._probe_since: float | None = None  # a half-open probe is in flight since then
        self._calls = _Window(settings.window)  # flag: is a retry

    # --- the breaker ----------------------------------------------------------------------------

    def _move(self, to: BreakerState, why: str) -> None:
        before, self.state = self.state, to
        if to is BreakerState.OPEN:
            self._opened_at = self.now()
        if to is not BreakerState.HALF_OPEN:
            self._probe_since = None
        if to is BreakerState.CLOSED:
            self._attempts.clear()
        self.on_transition(before, to, why)

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        return max(self._opened_at + self.settings.open_seconds - self.now(), 0.0)

    def before_call(self) -> None:
        """Let one vendor request through, or raise CircuitOpen (fast, with the time to retry)."""
        now = self.now()
        if self.state is BreakerState.OPEN:
            if self.retry_in() > 0:
                raise self._refusal(self.retry_in())
            self._move(BreakerState.HALF_OPEN, f"{self.settings.open_seconds:g}s open: probing")
        if self.state is BreakerState.HALF_OPEN:
            # One probe at a time; a probe that never reported (cancelled) frees its slot after open_seconds.
            if self._probe_since is not None and now - self._probe_since < self.settings.open_seconds:
                raise self._refusal(max(self._probe_since + self.settings.open_seconds - now, 0.1))
            self._probe_since = now

    def _refusal(self, retry_after: float) -> CircuitOpen:
        return CircuitOpen(
            f"{self.name}: circuit open after repeated vendor failures; not calling the vendor, "
            f"retry in {retry_after:.1f}s",
            provider=self.name,
            retry_after=max(retry_after, 0.1),
        )

    def record(self, failed: bool) -> None:
        """The outcome of one vendor request let through by :meth:`before_call`."""
        now = self.now()
        if self.state is BreakerState.HALF_OPEN:
            if failed:
                self._move(BreakerState.OPEN, "the half-open probe failed")
            else:
                self._move(BreakerState.CLOSED, "the half-open probe succeeded")
            return
        if self.state is BreakerState.OPEN:
            return  # a request let through before the breaker opened: the decision is made
        self._attempts.add(now, failed)
        total, failures = self._attempts.counts(now)
        s = self.settings
        if failed and total >= s.min_calls and failures >= s.failure_ratio * total:
            self._move(BreakerState.OPEN, f"{failures} of {total} vendor requests failed in {s.window:g}s")

    # --- the retry budget -----------------------------------------------------------------------

    def note_call(self) -> None:
        """A first attempt (not a retry) of one vendor action."""
        self._calls.add(self.now(), False)

    def allow_retry(self) -> bool:
        """Take one retry from the budget if it has one (then it counts against the next ones)."""
        now = self.now()
        total, retries = self._calls.counts(now)
        calls = total - retries
        if retries >= self.settings.retry_min + self.settings.retry_ratio * calls:
            return False
        self._calls.add(now, True)
        return True
