"""The memory store's clean-up costs nothing per operation while no vendor-token claim is due.

It used to scan every claim on every store operation once more than 10,000 were held, so exchanges on
``memory://`` became quadratic past 10,000 within retention (0.15 → 1.6–3.5 ms per call at 10–20k claims).
The store counts the claims its clean-up looks at (``claims_touched``) instead of timing it.
"""

from __future__ import annotations

from realauth_server.clock import Clock
from realauth_server.store.memory import MemoryStore


async def test_fresh_claims_are_never_looked_at_and_due_ones_once() -> None:
    store = MemoryStore()
    clock = Clock()
    store.use_clock(clock)
    now = clock.now()
    for i in range(20_000):  # all fresh: their retention ends in an hour
        assert await store.claim_vendor_token(f"seedance:t{i}", f"s{i}", now + 3600 + i) == f"s{i}"
    assert await store.claim_vendor_token("seedance:soon", "s-soon", now + 10) == "s-soon"
    for _ in range(200):
        assert await store.get("missing") is None
    assert store.claims_touched == 0  # 200 operations, 20,001 claims held, none due: nothing looked at

    clock.advance(11)  # only "soon" is due
    assert await store.get("missing") is None
    assert store.claims_touched == 1
    assert await store.vendor_token_owner("seedance:soon") is None
    assert await store.claim_vendor_token("seedance:soon", "s-other", clock.now() + 60) == "s-other"
    assert await store.vendor_token_owner("seedance:t0") == "s0"  # a fresh claim is still held
    assert await store.claim_vendor_token("seedance:t0", "s-thief", clock.now() + 60) == "s0"


async def test_an_extended_claim_is_not_dropped_at_its_old_retention() -> None:
    store = MemoryStore()
    clock = Clock()
    store.use_clock(clock)
    now = clock.now()
    assert await store.claim_vendor_token("k", "s1", now + 10) == "s1"
    assert await store.claim_vendor_token("k", "s1", now + 100) == "s1"  # the owner extends it
    clock.advance(11)
    assert await store.get("missing") is None
    assert await store.vendor_token_owner("k") == "s1"
    assert await store.claim_vendor_token("k", "s2", clock.now() + 60) == "s1"
