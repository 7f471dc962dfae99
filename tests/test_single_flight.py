"""The one cross-replica single-flight wait (service.single_flight_tries): store leases and idempotency reservations
both wait through it, so both back off the same way and both give up at the call's deadline with the same error."""

from __future__ import annotations

import itertools
import time

import pytest

from realauth_server import deadlines
from realauth_server.errors import ProviderTimeout
from realauth_server.service import POLL_FIRST, single_flight_tries


async def test_tries_back_off_and_stop_at_the_budget() -> None:
    start = time.monotonic()
    moments: list[float] = []
    with deadlines.budget(0.3, "test"), pytest.raises(ProviderTimeout, match="busy elsewhere"):
        async for _ in single_flight_tries("busy elsewhere"):
            moments.append(time.monotonic() - start)
    assert moments[0] < 0.05  # the first try is at once
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    # Each wait at least as long as the one before (the last one may be cut short by the deadline).
    assert gaps and gaps[0] >= POLL_FIRST * 0.9 and all(b >= a * 0.9 for a, b in itertools.pairwise(gaps[:-1]))
    assert 0.25 < time.monotonic() - start < 0.6  # gave up at the deadline, not later


async def test_a_try_that_succeeds_ends_the_wait() -> None:
    tries = 0
    with deadlines.budget(5, "test"):
        async for _ in single_flight_tries("busy"):
            tries += 1
            if tries == 3:
                break
    assert tries == 3
