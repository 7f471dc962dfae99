"""ListAuthSessions and CancelAuthSession over the real gRPC and HTTP ports, on memory, SQLite and a real Redis.

Filters, keyset pagination while sessions are being created, page tokens bound to the tenant and the filters,
tenant scoping, the cancelled landing (refused, nothing recorded, no vendor exchange: the emulator's own counts),
idempotent cancel and a cancel racing an exchange (in one process and across two replicas).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from realauth.v1 import realauth_pb2 as pb
from realauth_server.clock import Clock
from realauth_server.domain import AuthSession, SessionState, new_session_id
from realauth_server.emulators.base import FaultPlan
from realauth_server.store.base import SessionFilter, SessionStore
from realauth_server.store.memory import MemoryStore
from realauth_server.store.redis import RedisStore
from realauth_server.store.sqlite import SqliteStore

from .conftest import Harness, ServerFactory, read_all
from .errors_util import decode
from .metrics_util import landing_refusals
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

S = pb.AuthSessionState
T = TypeVar("T")
BACKENDS = ["memory", "sqlite", "redis"]
KEY_A = "ak-list-alpha-0123456789abcdef"
KEY_B = "ak-list-beta-0123456789abcdefg"
TENANTS = f"""
[providers.seedance]
kind = "seedance"
sandbox = true

[providers.tencent]
kind = "tencent"
sandbox = true

[tenants.alpha]
keys = ["{KEY_A}"]

[tenants.beta]
keys = ["{KEY_B}"]
"""
ALPHA = (("authorization", f"Bearer {KEY_A}"),)
BETA = (("authorization", f"Bearer {KEY_B}"),)


def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/list.db"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=BACKENDS)
async def h(request: pytest.FixtureRequest, make_realauth: ServerFactory, tmp_path: Path) -> Harness:
    return await make_realauth(store=store_url(request, tmp_path))


@pytest.fixture(params=BACKENDS)
async def scoped(request: pytest.FixtureRequest, make_realauth: ServerFactory, tmp_path: Path) -> Harness:
    return await make_realauth(TENANTS, store=store_url(request, tmp_path))


async def listing(h: Harness, md: tuple[tuple[str, str], ...] = (), **fields: object) -> pb.ListAuthSessionsResponse:
    return await h.stub.ListAuthSessions(pb.ListAuthSessionsRequest(**fields), metadata=md, timeout=10)  # type: ignore[arg-type]


async def ids(h: Harness, md: tuple[tuple[str, str], ...] = (), **fields: object) -> list[str]:
    resp = await listing(h, md, **fields)
    assert resp.next_page_token == ""
    return [s.session_id for s in resp.sessions]


async def cancel(h: Harness, session_id: str, md: tuple[tuple[str, str], ...] = ()) -> pb.AuthSession:
    resp = await h.stub.CancelAuthSession(pb.CancelAuthSessionRequest(session_id=session_id), metadata=md, timeout=10)
    assert resp.response_metadata.action == "CancelAuthSession"
    return resp.session


async def failure(call: object) -> tuple[grpc.StatusCode, str, list[str]]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    d = decode(err.value)
    return d.code, d.reason, d.fields


def ts(seconds: float) -> Timestamp:
    out = Timestamp()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


def refused(reason: str, provider: str = "seedance") -> float:
    return landing_refusals(provider, reason)


async def exchange_call(h: Harness, session_id: str) -> pb.ExchangeTokenResponse:
    return await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session_id), timeout=10)


async def until(condition: object, seconds: float = 5.0) -> None:
    """Poll ``condition()`` (bounded): the test fails rather than hangs."""
    for _ in range(int(seconds / 0.01)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def exchanges(h: Harness) -> int:
    return int(h.emulator("seedance").stats.by_action.get("GroupsFromToken", 0))


# --- filters --------------------------------------------------------------------------------------------------------


async def test_each_filter_newest_first(h: Harness) -> None:
    a1 = await h.create(provider="seedance", subject_id="alice")
    h.clock.advance(1)
    b1 = await h.create(provider="seedance", subject_id="bob")
    h.clock.advance(1)
    t1 = await h.create(provider="tencent", subject_id="alice")
    h.clock.advance(1)
    a2 = await h.create(provider="seedance", subject_id="alice")
    await h.complete(b1, "pass")  # exchanged at the landing
    await cancel(h, a2.session_id)
    everyone = [a2, t1, b1, a1]

    assert await ids(h) == [s.session_id for s in everyone]  # newest first
    assert await ids(h, subject_id="alice") == [a2.session_id, t1.session_id, a1.session_id]
    assert await ids(h, subject_id="nobody") == []
    assert await ids(h, provider="tencent") == [t1.session_id]
    assert await ids(h, provider="seedance", subject_id="alice") == [a2.session_id, a1.session_id]
    assert await ids(h, state=S.AUTH_SESSION_STATE_EXCHANGED) == [b1.session_id]
    assert await ids(h, state=S.AUTH_SESSION_STATE_CANCELLED) == [a2.session_id]
    assert await ids(h, state=S.AUTH_SESSION_STATE_PENDING) == [t1.session_id, a1.session_id]
    # create time: [start, end)
    start, end = t1.create_time.ToNanoseconds() / 1e9, a2.create_time.ToNanoseconds() / 1e9
    assert await ids(h, create_time_start=ts(start)) == [a2.session_id, t1.session_id]
    assert await ids(h, create_time_end=ts(end)) == [t1.session_id, b1.session_id, a1.session_id]
    assert await ids(h, create_time_start=ts(start), create_time_end=ts(end)) == [t1.session_id]
    listed = (await listing(h, state=S.AUTH_SESSION_STATE_EXCHANGED)).sessions[0]
    assert listed.result.passed and listed.subject_id == "bob" and listed.provider == "seedance"

    # Past their window, pending sessions are listed as EXPIRED (as GetAuthSession would say), before any Get.
    h.clock.advance(200)  # seedance's 120 s window passed; tencent's has not
    assert await ids(h, state=S.AUTH_SESSION_STATE_EXPIRED) == [a1.session_id]
    assert await ids(h, state=S.AUTH_SESSION_STATE_PENDING) == [t1.session_id]
    states = {s.session_id: s.state for s in (await listing(h)).sessions}
    assert states[a1.session_id] == S.AUTH_SESSION_STATE_EXPIRED
    assert states[a2.session_id] == S.AUTH_SESSION_STATE_CANCELLED  # terminal: never turns into expired


async def test_bad_filters_are_invalid_argument_naming_the_field(realauth: Harness) -> None:
    h = realauth
    cases: list[tuple[dict[str, object], str]] = [
        ({"page_size": -1}, "page_size"),
        ({"state": 99}, "state"),
        ({"subject_id": "x" * 129}, "subject_id"),
        ({"provider": "a\u200bb"}, "provider"),
        ({"create_time_start": ts(100), "create_time_end": ts(100)}, "create_time_end"),
        ({"create_time_start": Timestamp(seconds=10**12)}, "create_time_start"),
        ({"create_time_end": Timestamp(seconds=0, nanos=-1)}, "create_time_end"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": "x" * 10_000}, "page_token"),
    ]
    for fields, name in cases:
        code, reason, named = await failure(listing(h, **fields))
        assert (code, reason, named) == (grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter", [name]), fields


# --- pagination -----------------------------------------------------------------------------------------------------


async def test_pages_have_no_duplicates_or_misses_while_sessions_are_created(h: Harness) -> None:
    before = [await h.create(subject_id=f"p{i}") for i in range(23)]
    expected = [s.session_id for s in reversed(before)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = await listing(h, page_size=5, page_token=token)
        seen += [s.session_id for s in resp.sessions]
        pages += 1
        for _ in range(2):  # newer sessions arrive between the pages
            await h.create(subject_id="late")
        token = resp.next_page_token
        if not token:
            break
        assert len(resp.sessions) == 5
    assert seen == expected and pages == 5  # 5 + 5 + 5 + 5 + 3, the last with no next_page_token
    # The page size may change between pages (AIP-158); 0 is 50 and values above 1000 are taken as 1000.
    first = await listing(h, page_size=3)
    rest = await listing(h, page_size=1000, page_token=first.next_page_token)
    assert len(rest.sessions) == 23 + 10 - 3 and not rest.next_page_token
    assert len((await listing(h)).sessions) == 33
    assert len((await listing(h, page_size=1_000_000)).sessions) == 33


async def test_a_page_token_is_bound_to_its_filters_and_tenant_and_tamper_evident(scoped: Harness) -> None:
    h = scoped
    for _ in range(3):
        await create_as(h, ALPHA, subject_id="carol")
    first = await listing(h, ALPHA, page_size=1, subject_id="carol")
    token = first.next_page_token
    assert token and len(first.sessions) == 1
    ok = await listing(h, ALPHA, page_size=1, subject_id="carol", page_token=token)
    assert ok.sessions[0].session_id != first.sessions[0].session_id

    other_filter = listing(h, ALPHA, page_size=1, subject_id="dave", page_token=token)
    code, _, fields = await failure(other_filter)
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    code, _, fields = await failure(listing(h, ALPHA, page_token=token, subject_id="carol", state=1))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    # Another tenant cannot use (or learn anything from) alpha's token.
    code, _, fields = await failure(listing(h, BETA, page_size=1, subject_id="carol", page_token=token))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    # Any edit of the token is refused, however small.
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[10] ^= 1
    edited = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    code, _, fields = await failure(listing(h, ALPHA, page_size=1, subject_id="carol", page_token=edited))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])


# --- tenant scoping -------------------------------------------------------------------------------------------------


async def create_as(h: Harness, md: tuple[tuple[str, str], ...], **fields: object) -> pb.AuthSession:
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", **fields)  # type: ignore[arg-type]
    return (await h.stub.CreateAuthSession(req, metadata=md, timeout=10)).session


async def test_a_tenant_lists_and_cancels_only_its_own_sessions(scoped: Harness) -> None:
    h = scoped
    mine = [await create_as(h, ALPHA, subject_id="same-user") for _ in range(3)]
    theirs = [await create_as(h, BETA, subject_id="same-user") for _ in range(2)]
    assert await ids(h, ALPHA) == [s.session_id for s in reversed(mine)]
    assert await ids(h, BETA, subject_id="same-user") == [s.session_id for s in reversed(theirs)]
    assert await ids(h, BETA, provider="seedance", page_size=1000) == [s.session_id for s in reversed(theirs)]

    code, reason, _ = await failure(cancel(h, mine[0].session_id, BETA))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "SessionNotFound")
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=mine[0].session_id), metadata=ALPHA)
    assert got.session.state == S.AUTH_SESSION_STATE_PENDING  # untouched
    assert (await cancel(h, mine[0].session_id, ALPHA)).state == S.AUTH_SESSION_STATE_CANCELLED
    assert await ids(h, BETA, state=S.AUTH_SESSION_STATE_CANCELLED) == []


# --- cancel ---------------------------------------------------------------------------------------------------------


async def test_a_cancelled_sessions_landing_is_refused_and_nothing_is_exchanged(h: Harness) -> None:
    session = await h.create(provider="seedance")
    watch = h.stub.WatchAuthSession(pb.WatchAuthSessionRequest(session_id=session.session_id), timeout=10)
    assert (await watch.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    cancelled = await cancel(h, session.session_id)
    assert cancelled.state == S.AUTH_SESSION_STATE_CANCELLED and cancelled.session_id == session.session_id
    assert [s.state for s in await read_all(watch)] == [S.AUTH_SESSION_STATE_CANCELLED]  # terminal: the watch ends

    before_exchanges, before_refused = exchanges(h), refused("cancelled")
    landing_url, _query = await h.vendor_redirect(session, "pass")  # the person still finishes at the vendor
    page = await h.http.get(landing_url)
    assert page.status_code == 410 and "cancelled" in page.text.lower()
    assert "location" not in page.headers  # never sent on to the caller
    assert refused("cancelled") == before_refused + 1
    code, reason, _ = await failure(h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionCancelled")
    code, reason, _ = await failure(h.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionCancelled")
    assert exchanges(h) == before_exchanges  # the vendor was never asked for the result

    stored = await h.server.service.store.get(session.session_id)
    assert stored is not None and stored.state is SessionState.CANCELLED
    assert stored.result is None and stored.landing == {}  # nothing recorded
    assert stored.version == 1  # the cancel was the only write


async def test_cancel_is_idempotent_and_only_for_pending_sessions(h: Harness) -> None:
    session = await h.create()
    first = await cancel(h, session.session_id)
    again = await cancel(h, session.session_id)
    assert again == first  # same session, same update_time: nothing written twice

    done = await h.create()
    await h.complete(done, "pass")
    code, reason, _ = await failure(cancel(h, done.session_id))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionNotCancellable")
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=done.session_id))
    assert got.session.state == S.AUTH_SESSION_STATE_EXCHANGED

    late = await h.create()
    h.clock.advance(200)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cancel(h, late.session_id)
    d = decode(err.value)
    assert (d.code, d.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionNotCancellable")
    assert "expired" in d.message
    assert (await cancel(h, session.session_id)).state == S.AUTH_SESSION_STATE_CANCELLED  # still idempotent

    code, _, fields = await failure(cancel(h, ""))
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["session_id"])
    code, reason, _ = await failure(cancel(h, "ses_" + "0" * 24))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "SessionNotFound")


async def test_cancel_racing_an_exchange_one_wins(h: Harness) -> None:
    seedance = h.emulator("seedance")

    # The exchange takes the lease first (its vendor call is slow): the cancel waits, then loses.
    first = await h.create()
    await h.vendor_redirect(first, "pass")  # the vendor holds a result; the landing has not arrived
    seedance.set_fault(FaultPlan(latency=0.6, path="GroupsFromToken", count=1))
    before = exchanges(h)
    exchange = asyncio.create_task(exchange_call(h, first.session_id))
    await until(lambda: exchanges(h) > before)  # the vendor call is in flight
    code, reason, _ = await failure(cancel(h, first.session_id))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionNotCancellable")
    assert (await exchange).session.state == S.AUTH_SESSION_STATE_EXCHANGED

    # Both at once, many times: exactly one of them wins each time, and the vendor is asked only when it did.
    seedance.set_fault(None)
    for _ in range(4):
        session = await h.create()
        await h.vendor_redirect(session, "pass")
        before = exchanges(h)
        ex, ca = await asyncio.gather(
            exchange_call(h, session.session_id),
            cancel(h, session.session_id),
            return_exceptions=True,
        )
        exchanged = not isinstance(ex, BaseException)
        cancelled = not isinstance(ca, BaseException)
        assert exchanged != cancelled, (ex, ca)
        loser = ca if exchanged else ex
        assert isinstance(loser, grpc.aio.AioRpcError)
        assert decode(loser).reason == ("SessionNotCancellable" if exchanged else "SessionCancelled")
        got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
        want = S.AUTH_SESSION_STATE_EXCHANGED if exchanged else S.AUTH_SESSION_STATE_CANCELLED
        assert got.session.state == want
        assert exchanges(h) == before + (1 if exchanged else 0)


async def test_cancel_on_another_replica_waits_for_the_exchange_lease(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
) -> None:
    a = await make_realauth(store=redis_url)
    b = await make_realauth(store=redis_url, clock=a.clock)
    session = await a.create()
    await a.vendor_redirect(session, "pass")
    a.emulator("seedance").set_fault(FaultPlan(latency=0.6, path="GroupsFromToken", count=1))
    exchange = asyncio.create_task(exchange_call(a, session.session_id))
    await until(lambda: exchanges(a) > 0)
    # B shares only the store with A: the store lease alone keeps it from cancelling under A's exchange.
    code, reason, _ = await failure(cancel(b, session.session_id))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionNotCancellable")
    assert (await exchange).session.state == S.AUTH_SESSION_STATE_EXCHANGED
    # And the other way round: cancelled on B, A's exchange never reaches the vendor.
    other = await a.create()
    await a.vendor_redirect(other, "pass")
    assert (await cancel(b, other.session_id)).state == S.AUTH_SESSION_STATE_CANCELLED
    before = a.emulator("seedance").stats.by_action.get("GroupsFromToken", 0)
    code, reason, _ = await failure(a.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=other.session_id)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionCancelled")
    assert a.emulator("seedance").stats.by_action.get("GroupsFromToken", 0) == before
    # Page tokens are signed with the store's shared secret: a page from A continues on B.
    first = await listing(a, page_size=1)
    rest = await listing(b, page_size=10, page_token=first.next_page_token)
    assert [s.session_id for s in (*first.sessions, *rest.sessions)] == [other.session_id, session.session_id]


# --- the stores themselves ------------------------------------------------------------------------------------------


def stored_session(clock: Clock, tenant: str = "t1", **changes: object) -> AuthSession:
    now = clock.now()
    s = AuthSession(
        session_id=new_session_id(),
        tenant=tenant,
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


@pytest.mark.parametrize("kind", BACKENDS)
async def test_store_lists_ties_and_long_runs_in_order(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """450 sessions with one create_time (more than a backend's batch) and others around them, in keyset order."""
    store: SessionStore
    if kind == "memory":
        store = MemoryStore()
    elif kind == "sqlite":
        store = SqliteStore(str(tmp_path / "ties.db"))
    else:
        store = RedisStore(str(request.getfixturevalue("redis_url")))
    clock = Clock()
    store.use_clock(clock)
    await store.open()
    try:
        await check_ties_and_long_runs(store, clock)
    finally:
        await store.close()


async def check_ties_and_long_runs(store: SessionStore, clock: Clock) -> None:
    """The body of the test above, for any opened store (the cluster tests run it too)."""
    t = clock.now()
    inserted = [await store.insert(stored_session(clock, create_time=t)) for _ in range(450)]
    inserted += [await store.insert(stored_session(clock, create_time=t + 1)) for _ in range(3)]
    inserted += [await store.insert(stored_session(clock, create_time=t - 1)) for _ in range(3)]
    await store.insert(stored_session(clock, tenant="t2", create_time=t))  # never listed for t1
    expected = [s.session_id for s in sorted(inserted, key=lambda s: (s.create_time, s.session_id), reverse=True)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_sessions("t1", SessionFilter(), 100, cursor)
        seen += [s.session_id for s in page.sessions]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == expected
    # A scan budget ends a page early (even empty) with a cursor that resumes where it stopped.
    # (None of them is past its window: every backend must read them to know none is EXPIRED.)
    sparse = SessionFilter(state=SessionState.EXPIRED)
    page = await store.list_sessions("t1", sparse, 10, None, scan_limit=50)
    assert page.sessions == [] and page.cursor is not None
    pages = 1
    while page.cursor is not None:
        page = await store.list_sessions("t1", sparse, 10, page.cursor, scan_limit=50)
        assert page.sessions == []
        pages += 1
    assert pages == len(expected) // 50 + 1


async def test_redis_list_index_is_cleaned_with_retention(redis_url: str) -> None:  # noqa: F811
    import redis.asyncio as aioredis

    from realauth_server.store.retention import Retention

    clock = Clock()
    store = RedisStore(redis_url, Retention(result_seconds=60, vendor_seconds={}))
    store.use_clock(clock)
    await store.open()
    r = aioredis.Redis.from_url(redis_url)
    try:
        old = await store.insert(stored_session(clock))
        index, by_retention = store._list_keys("t1")
        assert await r.zscore(index, old.session_id) == old.create_time  # the exact create_time: keyset-safe
        assert 0 < await r.pttl(index) <= (120 + 60) * 1000 and 0 < await r.pttl(by_retention) <= (120 + 60) * 1000
        clock.advance(120 + 61)  # past the old session's retention (by the service's clock)
        new = await store.insert(stored_session(clock))
        assert await r.zrange(index, 0, -1) == [new.session_id.encode()]
        assert await r.zrange(by_retention, 0, -1) == [new.session_id.encode()]
        page = await store.list_sessions("t1", SessionFilter(), 10, None)
        assert [s.session_id for s in page.sessions] == [new.session_id]
    finally:
        await r.aclose()
        await store.close()


async def test_sqlite_adds_the_list_columns_to_an_older_database(tmp_path: Path) -> None:
    import json
    import sqlite3

    path = tmp_path / "old.db"
    clock = Clock()
    s = stored_session(clock, subject_id="eve")
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, token TEXT NOT NULL DEFAULT '',"
        " idempotency_key TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, version INTEGER NOT NULL,"
        " expire_at REAL NOT NULL, data TEXT NOT NULL, retain_until REAL NOT NULL DEFAULT 0);"
    )
    con.execute(
        "INSERT INTO sessions VALUES (?, ?, ?, '', 'pending', 0, ?, ?, ?)",
        (s.session_id, s.tenant, s.token, s.expire_time, json.dumps(s.to_dict()), s.expire_time + 86_400),
    )
    con.commit()
    con.close()
    store = SqliteStore(str(path))
    store.use_clock(clock)
    await store.open()
    try:
        page = await store.list_sessions("t1", SessionFilter(subject_id="eve", provider="seedance"), 10, None)
        assert page.sessions == [s] and page.cursor is None
        async with store.db.execute(
            "EXPLAIN QUERY PLAN SELECT data FROM sessions WHERE tenant = 't1'"
            " ORDER BY create_time DESC, session_id DESC"
        ) as cur:
            plan = " ".join(str(row) for row in await cur.fetchall())
        assert "sessions_list" in plan  # the listing walks the index, not the table
    finally:
        await store.close()


async def test_a_vendor_push_for_a_cancelled_session_records_nothing(make_realauth: ServerFactory) -> None:
    from .test_push_volcengine import config as volc_config

    h = await make_realauth(volc_config(block=True))
    session = await h.create(provider="volcengine")
    await cancel(h, session.session_id)
    emu = h.emulator("volcengine")
    page = await h.http.get(session.verification_url + "&outcome=pass")  # the vendor pushes before redirecting
    assert page.status_code == 302 and emu.pusher.stats.delivered == 1  # acknowledged: the vendor stops retrying
    stored = await h.server.service.store.get(session.session_id)
    assert stored is not None and stored.state is SessionState.CANCELLED and stored.result is None
    landing = await h.http.get(page.headers["location"])
    assert landing.status_code == 410
    assert emu.stats.by_action.get("CertVerifyQuery", 0) == 0  # never asked for the result either


async def later(seconds: float, aw: Awaitable[T]) -> T:
    await asyncio.sleep(seconds)
    return await aw


async def test_cancel_racing_the_landing_one_wins(h: Harness) -> None:
    """Landing first, cancel first, and both at once: one of them wins, and the other changes nothing."""
    seen = set()
    for landing_delay, cancel_delay in [(0.0, 0.3), (0.3, 0.0), (0.0, 0.0), (0.0, 0.0), (0.01, 0.0)]:
        session = await h.create()
        landing_url, _query = await h.vendor_redirect(session, "pass")
        before = exchanges(h)
        page, ca = await asyncio.gather(
            later(landing_delay, h.http.get(landing_url)),
            later(cancel_delay, cancel(h, session.session_id)),
            return_exceptions=True,
        )
        assert not isinstance(page, BaseException)
        got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
        if isinstance(ca, BaseException):  # the landing won: completed and exchanged, the cancel refused
            assert isinstance(ca, grpc.aio.AioRpcError) and decode(ca).reason == "SessionNotCancellable"
            assert page.status_code == 302 and got.session.state == S.AUTH_SESSION_STATE_EXCHANGED
            assert exchanges(h) == before + 1
            seen.add("landing")
        else:  # the cancel won: the landing is refused and nothing is exchanged
            assert page.status_code == 410, page.text
            assert got.session.state == S.AUTH_SESSION_STATE_CANCELLED and not got.session.HasField("result")
            assert exchanges(h) == before
            seen.add("cancel")
    assert seen == {"landing", "cancel"}


async def test_a_cancel_between_the_landings_read_and_write_wins(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The landing read PENDING, then the cancel committed: the landing's write conflicts and it refuses."""
    service = h.server.service
    check = service._check_landing_token

    async def then_cancel(provider: Any, session: AuthSession, token: str) -> None:
        await check(provider, session, token)
        await service.cancel(session.tenant, session.session_id)  # lands between the landing's read and write

    monkeypatch.setattr(service, "_check_landing_token", then_cancel)
    session = await h.create()
    landing_url, _query = await h.vendor_redirect(session, "pass")
    before_exchanges, before_refused = exchanges(h), refused("cancelled")
    page = await h.http.get(landing_url)
    assert page.status_code == 410 and "cancelled" in page.text.lower()
    assert refused("cancelled") == before_refused + 1 and exchanges(h) == before_exchanges
    stored = await service.store.get(session.session_id)
    assert stored is not None and stored.state is SessionState.CANCELLED and stored.landing == {}


async def test_a_completed_session_is_not_cancellable(make_realauth: ServerFactory) -> None:
    """Volcengine H5 type 0 without a push yet: the landing leaves it COMPLETED (the person finished)."""
    from .test_push_volcengine import config as volc_config

    h = await make_realauth(volc_config(block=False))
    emu = h.emulator("volcengine")
    emu.pusher.enabled = False  # hold the push back: the landing arrives first
    session = await h.create(provider="volcengine")
    landing = await h.complete(session, "pass")
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert landing.status_code == 302 and got.session.state == S.AUTH_SESSION_STATE_COMPLETED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cancel(h, session.session_id)
    d = decode(err.value)
    assert (d.code, d.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SessionNotCancellable")
    assert "completed" in d.message
