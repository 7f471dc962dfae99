"""One contract, every backend: memory, SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from realauth_server.clock import Clock
from realauth_server.domain import AuthSession, SessionState, VerificationResult, new_session_id
from realauth_server.outbox import DeliveryStatus, WebhookDelivery
from realauth_server.store.base import SessionStore, StoreConflict, StoreUnavailable, vendor_token_key
from realauth_server.store.factory import open_store
from realauth_server.store.memory import MemoryStore
from realauth_server.store.redis import RedisStore
from realauth_server.store.retention import DAY, Retention
from realauth_server.store.sqlite import SqliteStore
from realauth_server.vendors.registry import VENDOR_RETENTION

from .conftest import free_port
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

BACKENDS = ["memory", "sqlite", "redis"]
StoreFactory = Callable[..., SessionStore]


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Builds opened stores of one backend; several calls share the same data (where it can)."""
    kind = request.param
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    pending: list[SessionStore] = []

    def factory(clock: Clock | None = None, retention: Retention | None = None) -> SessionStore:
        store: SessionStore
        if kind == "memory":
            store = pending[0] if pending else MemoryStore(retention)  # one process, one memory
        elif kind == "sqlite":
            store = SqliteStore(str(tmp_path / "store.db"), retention)
        else:
            store = RedisStore(url, retention)
        if clock is not None:
            store.use_clock(clock)
        pending.append(store)
        return store

    yield factory
    for store in {id(s): s for s in pending}.values():
        await store.close()


async def opened(store: SessionStore) -> SessionStore:
    if isinstance(store, MemoryStore):
        return store
    await store.open()
    return store


def make_session(clock: Clock, **changes: object) -> AuthSession:
    now = clock.now()
    s = AuthSession(
        session_id=new_session_id(),
        tenant="t1",
        provider="seedance",
        provider_kind="seedance",
        state=SessionState.PENDING,
        token="tok-" + new_session_id(),
        verification_url="https://vendor.example/h5",
        callback_url="https://caller.example/done",
        create_time=now,
        expire_time=now + 120,
        exchange_deadline=now + 120,
        update_time=now,
    )
    return s.evolve(**changes)


async def test_insert_read_update_with_version_check(make_store: StoreFactory) -> None:
    clock = Clock()
    store = await opened(make_store(clock))
    s = make_session(clock, idempotency_key="k1")
    assert await store.insert(s) == s
    assert await store.get(s.session_id) == s
    assert await store.get_by_token(s.token) == s
    assert await store.find_idempotent("t1", "k1") == s
    assert await store.find_idempotent("t2", "k1") is None
    assert await store.get("ses_missing") is None and await store.get_by_token("nope") is None

    dup = make_session(clock, idempotency_key="k1")
    assert (await store.insert(dup)).session_id == s.session_id
    assert await store.get(dup.session_id) is None

    done = await store.update(s.evolve(state=SessionState.COMPLETED, landing={"resultCode": "10000"}))
    assert done.version == s.version + 1
    with pytest.raises(StoreConflict):
        await store.update(s.evolve(state=SessionState.EXPIRED))  # stale version
    result = VerificationResult(passed=True, group_id="group-1", score=0.9, complete_time=clock.now())
    final = await store.update(done.evolve(state=SessionState.EXCHANGED, result=result))
    got = await store.get(s.session_id)
    assert got == final and got.result == result and got.version == 2


async def test_concurrent_updates_exactly_one_wins(make_store: StoreFactory) -> None:
    clock = Clock()
    store = await opened(make_store(clock))
    s = await store.insert(make_session(clock))
    outcomes = await asyncio.gather(
        *(store.update(s.evolve(update_time=clock.now() + i)) for i in range(20)), return_exceptions=True
    )
    assert sum(isinstance(o, AuthSession) for o in outcomes) == 1
    assert sum(isinstance(o, StoreConflict) for o in outcomes) == 19


async def test_changes_are_published_in_version_order(make_store: StoreFactory) -> None:
    clock = Clock()
    writer = await opened(make_store(clock))
    reader = await opened(make_store(clock))  # another replica for sqlite/redis
    s = make_session(clock)
    feed = reader.feed if not isinstance(reader, SqliteStore) else writer.feed  # SQLite: one process
    with feed.listen(s.session_id) as changes:
        s = await writer.insert(s)
        s = await writer.update(s.evolve(state=SessionState.COMPLETED))
        s = await writer.update(s.evolve(state=SessionState.EXCHANGED))
        seen = [await asyncio.wait_for(changes.get(), 5) for _ in range(3)]
    assert [(x.version, x.state) for x in seen] == [
        (0, SessionState.PENDING),
        (1, SessionState.COMPLETED),
        (2, SessionState.EXCHANGED),
    ]
    assert feed.listening(s.session_id) == 0


async def test_shared_secret_is_the_same_for_every_replica(make_store: StoreFactory) -> None:
    a = await opened(make_store())
    b = await opened(make_store())
    first = await a.shared_secret("landing")
    assert len(first) == 32
    assert await b.shared_secret("landing") == first
    assert await a.shared_secret("other") != first
    results = await asyncio.gather(*(make_store_secret(make_store) for _ in range(5)))
    assert set(results) == {first}


async def make_store_secret(make_store: StoreFactory) -> bytes:
    return await (await opened(make_store())).shared_secret("landing")


async def test_leases_are_exclusive_reentrant_released_and_expire(make_store: StoreFactory) -> None:
    a = await opened(make_store())
    b = await opened(make_store())
    assert await a.acquire_lease("exchange:x", "owner-a", 5)
    assert not await b.acquire_lease("exchange:x", "owner-b", 5)
    assert await a.acquire_lease("exchange:x", "owner-a", 5)  # same owner: extends
    await b.release_lease("exchange:x", "owner-b")  # not the holder: no effect
    assert not await b.acquire_lease("exchange:x", "owner-b", 5)
    await a.release_lease("exchange:x", "owner-a")
    assert await b.acquire_lease("exchange:x", "owner-b", 0.3)
    assert not await a.acquire_lease("exchange:x", "owner-a", 5)
    await asyncio.sleep(0.45)  # a holder that died: the lease lapses on its own
    assert await a.acquire_lease("exchange:x", "owner-a", 5)


async def test_idempotency_claim_reserves_before_the_vendor_call(make_store: StoreFactory) -> None:
    clock = Clock()
    a = await opened(make_store(clock))
    b = await opened(make_store(clock))
    first = await a.claim_idempotency("t1", "order-1", "claim-a", 10)
    assert first.claimed and first.session is None
    waiting = await b.claim_idempotency("t1", "order-1", "claim-b", 10)
    assert not waiting.claimed and waiting.session is None  # pending elsewhere: wait
    other_tenant = await b.claim_idempotency("t2", "order-1", "claim-c", 10)
    assert other_tenant.claimed
    # The vendor call failed: released, and the next caller may try.
    await a.release_idempotency("t1", "order-1", "claim-a")
    retry = await b.claim_idempotency("t1", "order-1", "claim-b", 10)
    assert retry.claimed
    s = await b.insert(make_session(clock, idempotency_key="order-1"))
    await b.release_idempotency("t1", "order-1", "claim-b")
    done = await a.claim_idempotency("t1", "order-1", "claim-a2", 10)
    assert not done.claimed and done.session is not None and done.session.session_id == s.session_id


async def test_vendor_token_claim_first_writer_wins_across_replicas(make_store: StoreFactory) -> None:
    """A vendor token completes at most one session ever: the claim is unique, atomic and outlives nothing."""
    clock = Clock()
    a = await opened(make_store(clock))
    b = await opened(make_store(clock))
    key = vendor_token_key("volcengine", "20260101000000ABCDEF")
    assert vendor_token_key("megvii", "20260101000000ABCDEF") != key  # the kind is part of the key
    assert await a.vendor_token_owner(key) is None  # a look-up never claims
    assert await b.vendor_token_owner(key) is None
    # Many replicas racing for the same token: exactly one session owns it, and every racer learns which.
    owners = await asyncio.gather(*(s.claim_vendor_token(key, f"ses_{i}", clock.now() + 60) for i, s in
                                    enumerate([a, b] * 5)))  # fmt: skip
    assert len(set(owners)) == 1
    winner = owners[0]
    assert await a.claim_vendor_token(key, "ses_late", clock.now() + 60) == winner
    assert await b.claim_vendor_token(key, winner, clock.now() + 60) == winner  # the owner again: still its
    assert await a.vendor_token_owner(key) == winner == await b.vendor_token_owner(key)
    # Past its retention the claim is gone (no vendor still holds a result for it) and may be taken again.
    short = vendor_token_key("tencent", "biz-token-short")
    assert await a.claim_vendor_token(short, "ses_x", clock.now() + 0.3) == "ses_x"
    assert await b.claim_vendor_token(short, "ses_y", clock.now() + 60) == "ses_x"
    await asyncio.sleep(0.45)
    assert await b.vendor_token_owner(short) is None
    assert await b.claim_vendor_token(short, "ses_y", clock.now() + 60) == "ses_y"


async def test_retention_follows_the_vendor_kind() -> None:
    clock = Clock()
    r = Retention(vendor_seconds=VENDOR_RETENTION)
    s = make_session(clock)
    assert r.until(s) == pytest.approx(s.create_time + 120 + DAY)  # seedance: window + realauth's day
    tencent = s.evolve(provider_kind="tencent", expire_time=s.create_time + 600, exchange_deadline=s.create_time + 600)
    assert r.until(tencent) == pytest.approx(s.create_time + 3 * DAY)  # Tencent keeps results 3 days
    volc = s.evolve(provider_kind="volcengine", expire_time=s.create_time + 900)
    assert r.until(volc) == pytest.approx(s.create_time + 900 + DAY)
    megvii = s.evolve(provider_kind="megvii", expire_time=s.create_time + 3600, exchange_deadline=s.create_time + 3600)
    assert r.until(megvii) == pytest.approx(s.create_time + 3600 + DAY)
    assert Retention(result_seconds=0, vendor_seconds=VENDOR_RETENTION).until(megvii) == pytest.approx(
        s.create_time + DAY
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_local_stores_forget_sessions_after_retention(kind: str, tmp_path: Path) -> None:
    clock = Clock()
    retention = Retention(result_seconds=60, vendor_seconds={})
    store: SessionStore = MemoryStore(retention) if kind == "memory" else SqliteStore(str(tmp_path / "r.db"), retention)
    store.use_clock(clock)
    await store.open()
    try:
        s = await store.insert(make_session(clock, idempotency_key="k"))
        clock.advance(120 + 59)
        assert await store.get(s.session_id) is not None
        clock.advance(2)
        assert await store.get(s.session_id) is None
        assert await store.get_by_token(s.token) is None
        assert await store.find_idempotent("t1", "k") is None
        with pytest.raises(StoreConflict):
            await store.update(s)
        # The key is free again, and nothing is left behind.
        again = await store.insert(make_session(clock, idempotency_key="k"))
        assert (await store.find_idempotent("t1", "k")) == again
        if isinstance(store, SqliteStore):
            async with store.db.execute("SELECT COUNT(*) FROM sessions") as cur:
                assert (await cur.fetchone()) == (1,)
        else:
            assert len(store) == 1
    finally:
        await store.close()


async def test_sqlite_migrates_a_database_from_before_retention(tmp_path: Path) -> None:
    import json
    import sqlite3

    path = tmp_path / "old.db"
    clock = Clock()
    s = make_session(clock)
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, token TEXT NOT NULL DEFAULT '',"
        " idempotency_key TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, version INTEGER NOT NULL,"
        " expire_at REAL NOT NULL, data TEXT NOT NULL);"
    )
    con.execute(
        "INSERT INTO sessions VALUES (?, ?, ?, '', 'pending', 0, ?, ?)",
        (s.session_id, s.tenant, s.token, s.expire_time, json.dumps(s.to_dict())),
    )
    con.commit()
    con.close()
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert await store.get(s.session_id) == s
    finally:
        await store.close()


async def test_redis_keys_carry_ttls_and_nothing_remains(redis_url: str) -> None:  # noqa: F811
    clock = Clock()
    store = RedisStore(redis_url, Retention(result_seconds=1.0, vendor_seconds={}))
    store.use_clock(clock)
    await store.open()
    r = aioredis.Redis.from_url(redis_url)
    try:
        s = make_session(clock, idempotency_key="k", expire_time=clock.now(), exchange_deadline=clock.now())
        s = await store.insert(s)
        s = await store.update(s.evolve(state=SessionState.EXPIRED))
        await store.acquire_lease("exchange:" + s.session_id, "me", 0.5)
        keys = sorted(k.decode() for k in await r.keys("realauth:*"))
        assert len(keys) == 6, keys  # session, token index, idempotency index, lease, the tenant's two list indexes
        for key in keys:
            ttl = await r.pttl(key)
            assert 0 < ttl <= 1000, (key, ttl)
        assert await store.get(s.session_id) == s
        for _ in range(50):  # at most 5 s: Redis expires keys within ~100 ms of their TTL
            if not await r.keys("realauth:*"):
                break
            await asyncio.sleep(0.1)
        assert await r.keys("realauth:*") == []
        assert await store.get(s.session_id) is None and await store.get_by_token(s.token) is None
        assert await store.find_idempotent("t1", "k") is None
    finally:
        await r.aclose()
        await store.close()


async def test_redis_ttl_is_the_retention_per_kind(redis_url: str) -> None:  # noqa: F811
    clock = Clock()
    store = RedisStore(redis_url, Retention(vendor_seconds=VENDOR_RETENTION))
    store.use_clock(clock)
    await store.open()
    r = aioredis.Redis.from_url(redis_url)
    try:
        seedance = await store.insert(make_session(clock))
        tencent = await store.insert(make_session(clock, provider_kind="tencent", provider="tencent"))
        ttl_s = await r.pttl(f"realauth:s:{seedance.session_id}") / 1000
        ttl_t = await r.pttl(f"realauth:s:{tencent.session_id}") / 1000
        assert DAY + 118 < ttl_s <= DAY + 120
        assert 3 * DAY - 2 < ttl_t <= 3 * DAY
        assert abs(await r.pttl(f"realauth:t:{seedance.token}") / 1000 - ttl_s) < 2
        # Time moved by the service's clock counts too (TTLs are set from it at each write).
        clock.advance(100)
        moved = await store.update(seedance)
        assert DAY + 18 < await r.pttl(f"realauth:s:{moved.session_id}") / 1000 <= DAY + 20
    finally:
        await r.aclose()
        await store.close()


async def test_unreachable_redis_fails_fast_and_names_no_password() -> None:
    store = open_store(f"redis://:hunter2-password@127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        await store.open()
    assert time.monotonic() - started < 8
    assert "hunter2" not in str(err.value) and "127.0.0.1" in str(err.value)


@pytest.mark.parametrize("url", ["redis:///0", "redis://localhost:6379/x", "mysql://x"])
def test_bad_store_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


# --- webhook outbox ---------------------------------------------------------------------------------------------


def _outbox_for_transitions(clock: Clock) -> Callable[[AuthSession], list[WebhookDelivery]]:
    """One record per written session (the store keeps it only when the state changes)."""

    def outbox(s: AuthSession) -> list[WebhookDelivery]:
        now = clock.now()
        return [
            WebhookDelivery(
                delivery_id=f"whd_{s.session_id}_{s.version}",
                event_id=f"evt_{s.session_id}_{s.version}",
                tenant=s.tenant,
                endpoint="ep1",
                session_id=s.session_id,
                event_type=f"session.{s.state.value}",
                sequence=s.version,
                body='{"type": "session.' + s.state.value + '", "note": "caf\\u00e9"}',
                created=now,
                next_at=now,
                give_up_at=now + 3 * DAY,
                updated=now,
            )
        ]

    return outbox


async def test_webhook_records_are_written_with_state_changes_only(make_store: StoreFactory) -> None:
    clock = Clock()
    store = await opened(make_store(clock))
    woken: list[int] = []
    store.on_enqueue = lambda: woken.append(1)
    store.use_outbox(_outbox_for_transitions(clock))
    s = await store.insert(make_session(clock))
    s = await store.update(s.evolve(state=SessionState.COMPLETED))
    s = await store.update(s.evolve(update_time=clock.now() + 1))  # no state change: no record
    with pytest.raises(StoreConflict):
        await store.update(s.evolve(version=0, state=SessionState.EXPIRED))  # a lost write leaves no record
    s = await store.update(s.evolve(state=SessionState.EXCHANGED))
    page, more = await store.list_webhooks("t1", "", None, 0, 10)
    assert more is None and len(woken) == 2
    assert [(d.event_type, d.sequence) for d in page] == [("session.exchanged", 3), ("session.completed", 1)]
    assert page[0].body == '{"type": "session.exchanged", "note": "caf\\u00e9"}'
    assert await store.list_webhooks("t2", "", None, 0, 10) == ([], None)
    assert (await store.list_webhooks("t1", s.session_id, None, 0, 1))[1] == 1
    assert await store.pending_webhooks() == 2


async def test_webhook_claims_are_exclusive_and_finish_only_with_the_claim(make_store: StoreFactory) -> None:
    clock = Clock()
    a = await opened(make_store(clock))
    b = await opened(make_store(clock))  # another replica for sqlite/redis
    for store in (a, b):
        store.use_outbox(_outbox_for_transitions(clock))
    sessions = [await a.insert(make_session(clock)) for _ in range(6)]
    for s in sessions:
        await a.update(s.evolve(state=SessionState.COMPLETED))
    got_a, got_b = await asyncio.gather(a.claim_webhooks("A", 10, 100.0), b.claim_webhooks("B", 10, 100.0))
    ids_a, ids_b = {d.delivery_id for d in got_a}, {d.delivery_id for d in got_b}
    assert not ids_a & ids_b and len(ids_a | ids_b) == 6
    assert {d.attempts for d in got_a + got_b} == {1}
    assert await a.claim_webhooks("A", 10, 30.0) == []  # claimed ones are not due until their claim runs out
    first = (got_a + got_b)[0]
    wrong = WebhookDelivery.from_dict({**first.to_dict(), "owner": "C"})
    assert not await a.finish_webhook(wrong, DeliveryStatus.DELIVERED, 0.0, "", 200)
    retry_at = clock.now() + 60
    assert await b.finish_webhook(first, DeliveryStatus.PENDING, retry_at, "HTTP 500", 500)
    assert not await b.finish_webhook(first, DeliveryStatus.DELIVERED, 0.0, "", 200)  # the claim is spent
    rec = await a.get_webhook(first.delivery_id)
    assert rec is not None and (rec.status, rec.attempts, rec.last_error, rec.owner) == ("pending", 1, "HTTP 500", "")
    clock.advance(61)
    again = await b.claim_webhooks("B2", 10, 30.0)
    assert [d.delivery_id for d in again] == [first.delivery_id] and again[0].attempts == 2
    assert await a.finish_webhook(again[0], DeliveryStatus.DELIVERED, 0.0, "", 204)
    done = await a.get_webhook(first.delivery_id)
    assert done is not None and done.status is DeliveryStatus.DELIVERED and done.delivered_at > 0
    assert await a.pending_webhooks() == 5
    clock.advance(40)  # the other claims ran out (their owners "died"): due again, as new attempts
    revived = await a.claim_webhooks("A2", 10, 30.0)
    assert len(revived) == 5 and {d.attempts for d in revived} == {2}
    stale = next(d for d in got_a + got_b if d.delivery_id != first.delivery_id)
    assert not await a.finish_webhook(stale, DeliveryStatus.DELIVERED, 0.0, "", 200)  # its claim was taken over
    again2 = await a.redeliver_webhook(first.delivery_id, clock.now() + DAY)
    assert again2 is not None and again2.status is DeliveryStatus.PENDING and again2.next_at <= clock.now()
    assert await a.redeliver_webhook("whd_missing", 0.0) is None
    delivered, _ = await a.list_webhooks("t1", "", DeliveryStatus.PENDING, 0, 100)
    assert len(delivered) == 6


async def test_redis_wait_refuses_writes_no_replica_confirmed(redis_url: str) -> None:  # noqa: F811
    """``?wait=1`` on a Redis with no replica: every write that changed something fails (UNAVAILABLE), reads
    and refused writes do not, and nothing waits longer than ``wait_timeout``."""
    from realauth_server.store.factory import UNAVAILABLE_ERRORS
    from realauth_server.store.redis import ReplicationTimeout

    clock = Clock()
    plain = await opened(RedisStore(redis_url))
    plain.use_clock(clock)
    existing = await plain.insert(make_session(clock, idempotency_key="k-old"))
    secret = await plain.shared_secret("landing")
    store = open_store(redis_url + "?wait=1&wait_timeout=0.05")
    store.use_clock(clock)
    await store.open()
    try:
        assert issubclass(ReplicationTimeout, UNAVAILABLE_ERRORS)
        assert await store.shared_secret("landing") == secret  # already there: nothing to replicate
        started = time.monotonic()
        with pytest.raises(ReplicationTimeout, match="0 of 1 replicas"):
            await store.insert(make_session(clock))
        assert time.monotonic() - started < 1
        with pytest.raises(ReplicationTimeout):
            await store.update(existing)
        stands = await store.get(existing.session_id)  # not known to be durable, yet on the primary it stands
        assert stands is not None and stands.version == existing.version + 1
        assert await store.insert(make_session(clock, idempotency_key="k-old")) == stands  # a dedup writes nothing
        with pytest.raises(StoreConflict):
            await store.update(existing)  # stale now: refused, so no wait
        key = vendor_token_key("megvii", "biz")
        with pytest.raises(ReplicationTimeout):
            await store.claim_vendor_token(key, "ses_a", clock.now() + 60)
        assert await store.claim_vendor_token(key, "ses_b", clock.now() + 60) == "ses_a"  # lost the race: no wait
        # The combined claim + update: waits when it claimed (and wrote), not when the token was another's.
        fresh = await plain.insert(make_session(clock))
        result = VerificationResult(passed=True, complete_time=clock.now())
        with pytest.raises(ReplicationTimeout):
            await store.record_result(
                vendor_token_key("megvii", "biz-2"), fresh.evolve(state=SessionState.EXCHANGED, result=result), 1e12
            )
        assert (await plain.get(fresh.session_id)).state is SessionState.EXCHANGED  # type: ignore[union-attr]
        refused = await store.record_result(key, fresh.evolve(result=result), 1e12)
        assert refused.owner == "ses_a" and refused.session is None
    finally:
        await store.close()
        await plain.close()


# --- the exchange's combined operations (one round trip each where the backend can) --------------------------------


async def test_acquire_lease_get_reads_the_session_under_the_lease(make_store: StoreFactory) -> None:
    """The lease as acquire_lease takes it (exclusive, re-entrant, expiring), and the session as it stands then."""
    clock = Clock()
    a = await opened(make_store(clock))
    b = await opened(make_store(clock))
    s = await a.insert(make_session(clock))
    s = await a.update(s.evolve(state=SessionState.COMPLETED))
    name = f"exchange:{s.session_id}"
    taken, seen = await b.acquire_lease_get(name, "owner-b", 5, s.session_id)
    assert taken and seen == s  # the latest version, written by another replica
    assert await a.acquire_lease_get(name, "owner-a", 5, s.session_id) == (False, None)
    assert not await a.acquire_lease(name, "owner-a", 5)  # the same lease as acquire_lease's
    taken, seen = await b.acquire_lease_get(name, "owner-b", 5, s.session_id)  # its owner again: extends
    assert taken and seen is not None and seen.version == s.version
    await b.release_lease(name, "owner-b")
    gone = new_session_id()
    assert await a.acquire_lease_get(f"exchange:{gone}", "owner-a", 0.3, gone) == (True, None)
    assert await b.acquire_lease_get(f"exchange:{gone}", "owner-b", 5, gone) == (False, None)
    await asyncio.sleep(0.45)  # a holder that died: the lease lapses on its own
    assert await b.acquire_lease_get(f"exchange:{gone}", "owner-b", 5, gone) == (True, None)


async def test_record_result_claims_the_token_and_writes_once(make_store: StoreFactory) -> None:
    """Claim + update (+ the lease's release where the backend does it in the same write): a token completes one
    session, a refused claim writes nothing, a stale version writes nothing but keeps the claim, and the write
    carries its webhook records and is reported finished exactly once."""
    from realauth_server.store import base

    clock = Clock()
    a = await opened(make_store(clock))
    b = await opened(make_store(clock))
    for store in (a, b):
        store.use_outbox(_outbox_for_transitions(clock))
    events: list[tuple[str, str]] = []
    base._session_observers.append(lambda event, session: events.append((event, session.session_id)))
    try:
        s = await a.insert(make_session(clock))
        name = f"exchange:{s.session_id}"
        assert await a.acquire_lease(name, "owner-a", 5)
        key = vendor_token_key("seedance", "vendor-token-1")
        result = VerificationResult(passed=True, complete_time=clock.now())
        done = s.evolve(state=SessionState.EXCHANGED, result=result)
        recorded = await a.record_result(key, done, clock.now() + 60, lease=(name, "owner-a"))
        assert recorded.owner == s.session_id and recorded.session is not None
        assert recorded.session.version == s.version + 1 and recorded.session.state is SessionState.EXCHANGED
        assert await b.get(s.session_id) == recorded.session
        assert await b.vendor_token_owner(key) == s.session_id
        # Released with the write, or (a backend doing separate steps) left to the caller: never both.
        assert await b.acquire_lease(name, "owner-b", 5) is recorded.released
        page, _ = await b.list_webhooks("t1", s.session_id, None, 0, 10)
        assert [d.event_type for d in page] == ["session.exchanged"]
        assert events.count(("finished", s.session_id)) == 1

        # The same vendor token for another session: refused, nothing written, its lease kept.
        other = await b.insert(make_session(clock))
        other_lease = f"exchange:{other.session_id}"
        assert await b.acquire_lease(other_lease, "owner-b", 5)
        refused = await b.record_result(
            key, other.evolve(state=SessionState.EXCHANGED, result=result), clock.now() + 60, (other_lease, "owner-b")
        )
        assert refused.owner == s.session_id and refused.session is None and not refused.released
        assert await a.get(other.session_id) == other
        assert not await a.acquire_lease(other_lease, "owner-a", 5)
        assert ("finished", other.session_id) not in events

        # A stale version: StoreConflict, nothing written, but the claim is this session's (a retry re-claims it).
        key2 = vendor_token_key("seedance", "vendor-token-2")
        moved = await a.update(other.evolve(update_time=clock.now() + 1))
        with pytest.raises(StoreConflict):
            await b.record_result(key2, other.evolve(state=SessionState.FAILED, result=result), clock.now() + 60)
        assert await a.get(other.session_id) == moved
        assert await a.vendor_token_owner(key2) == other.session_id
        again = await a.record_result(key2, moved.evolve(state=SessionState.FAILED, result=result), clock.now() + 60)
        assert again.session is not None and again.session.state is SessionState.FAILED and not again.released
        assert events.count(("finished", other.session_id)) == 1
    finally:
        base._session_observers.pop()


async def test_redis_store_commands_beyond_the_pool_wait_instead_of_failing(redis_url: str) -> None:  # noqa: F811
    """More store commands in flight than the pool has connections (a burst after a stall): they queue for a
    connection (QueueingPool) instead of failing at once with MaxConnectionsError (UNAVAILABLE to the caller)."""
    clock = Clock()
    small = RedisStore(redis_url + "?max_connections=3")
    default = RedisStore(redis_url)
    await small.open()
    await default.open()
    try:
        s = await small.insert(make_session(clock))
        got = await asyncio.gather(*(small.get(s.session_id) for _ in range(60)))
        assert all(g == s for g in got)
        got = await asyncio.gather(*(default.get(s.session_id) for _ in range(300)))  # redis-py's default: 100
        assert all(g == s for g in got)
        # A waiter whose call is cancelled gives up its turn; the others still get theirs.
        waiting = [asyncio.ensure_future(small.get(s.session_id)) for _ in range(20)]
        await asyncio.sleep(0)
        waiting[5].cancel()
        done = await asyncio.gather(*waiting, return_exceptions=True)
        assert isinstance(done[5], asyncio.CancelledError) and all(g == s for i, g in enumerate(done) if i != 5)
    finally:
        await small.close()
        await default.close()


async def test_redis_idempotency_reservation_is_one_script(redis_url: str) -> None:  # noqa: F811
    """One round trip (look-up and lease in one script) instead of the default's up to five."""
    from realauth_server.store import base

    clock = Clock()
    store = await opened(RedisStore(redis_url))
    ops: list[str] = []
    base._store_observers.append(lambda backend, op, outcome, seconds: ops.append(op))
    try:
        assert (await store.claim_idempotency("t1", "order-9", "claim-a", 10)).claimed
        s = await store.insert(make_session(clock, idempotency_key="order-9"))
        done = await store.claim_idempotency("t1", "order-9", "claim-b", 10)
    finally:
        base._store_observers.pop()
        await store.close()
    assert done.session == s and not done.claimed
    assert ops == ["claim_idempotency", "insert", "claim_idempotency"]


async def test_redis_index_reads_are_one_script(redis_url: str) -> None:  # noqa: F811
    """get_by_token and find_idempotent read the index and the session it names in one script; an index naming a
    session that is gone reads as absent."""
    clock = Clock()
    store = await opened(RedisStore(redis_url))
    try:
        s = await store.insert(make_session(clock, idempotency_key="order-ix"))
        assert await store.get_by_token(s.token) == s
        assert await store.find_idempotent("t1", "order-ix") == s
        assert await store.find_idempotent("t2", "order-ix") is None
        await store.r.set(store._token_key("tok-orphan"), "ses_gone")  # left by a replica that died mid-write
        assert await store.get_by_token("tok-orphan") is None
        assert await store.get_by_token("tok-never") is None
    finally:
        await store.close()
