"""WatchAuthSession: the state now, every change in order, expiry with no request, deadlines."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb

from .conftest import Harness, ServerFactory, read_all
from .errors_util import decode
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

S = pb.AuthSessionState


@pytest.fixture(params=["memory", "redis"])
async def h(request: pytest.FixtureRequest, make_realauth: ServerFactory) -> Harness:
    store = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    return await make_realauth(store=store)


def watch(h: Harness, session_id: str, timeout: float = 15) -> grpc.aio.UnaryStreamCall:
    return h.stub.WatchAuthSession(pb.WatchAuthSessionRequest(session_id=session_id), timeout=timeout)


async def test_sees_each_transition_in_order_and_ends_at_exchanged(h: Harness) -> None:
    session = await h.create(provider="seedance")
    call = watch(h, session.session_id)
    first = await call.read()
    assert first.session.state == S.AUTH_SESSION_STATE_PENDING and first.session.session_id == session.session_id
    assert first.response_metadata.action == "WatchAuthSession" and first.response_metadata.request_id
    await h.complete(session, "pass")
    rest = await read_all(call)
    assert [s.state for s in rest] == [S.AUTH_SESSION_STATE_COMPLETED, S.AUTH_SESSION_STATE_EXCHANGED]
    assert rest[-1].result.passed and rest[-1].result.group_id.startswith("group-")
    assert rest[0].update_time.ToNanoseconds() <= rest[1].update_time.ToNanoseconds()
    assert await call.code() == grpc.StatusCode.OK


async def test_failed_verification_ends_the_watch_with_failed(h: Harness) -> None:
    session = await h.create()
    call = watch(h, session.session_id)
    assert (await call.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    await h.complete(session, "fail")
    states = [s.state for s in await read_all(call)]
    assert states == [S.AUTH_SESSION_STATE_COMPLETED, S.AUTH_SESSION_STATE_FAILED]


async def test_expiry_with_no_requests_ends_the_watch_with_expired(h: Harness) -> None:
    session = await h.create()
    call = watch(h, session.session_id)
    assert (await call.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    vendor_before = h.emulator("seedance").stats.requests
    h.clock.advance(121)  # nobody calls anything: the watcher's own timer notices the deadline
    started = time.monotonic()
    states = [s.state for s in await read_all(call)]
    assert states == [S.AUTH_SESSION_STATE_EXPIRED]
    assert time.monotonic() - started < 3
    assert h.emulator("seedance").stats.requests == vendor_before
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == S.AUTH_SESSION_STATE_EXPIRED


async def test_caller_deadline_ends_the_watch_with_deadline_exceeded(h: Harness) -> None:
    session = await h.create()
    call = watch(h, session.session_id, timeout=0.8)
    assert (await call.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_watching_a_finished_session_gives_it_once(h: Harness) -> None:
    session = await h.create()
    await h.complete(session, "pass")
    states = [s.state for s in await read_all(watch(h, session.session_id))]
    assert states == [S.AUTH_SESSION_STATE_EXCHANGED]


async def test_many_watchers_each_see_every_change(h: Harness) -> None:
    session = await h.create()
    calls = [watch(h, session.session_id) for _ in range(5)]
    for call in calls:
        assert (await call.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    await h.complete(session, "pass")
    results = await asyncio.gather(*(read_all(call) for call in calls))
    for states in results:
        assert [s.state for s in states] == [S.AUTH_SESSION_STATE_COMPLETED, S.AUTH_SESSION_STATE_EXCHANGED]


async def test_unknown_or_missing_session_id(h: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read_all(watch(h, "ses_" + "0" * 24))
    assert decode(err.value).code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read_all(watch(h, ""))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.fields == ["session_id"]


async def test_another_tenants_session_is_not_found(
    make_realauth: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALAUTH_TEST_WATCH_A", "watch-key-alpha-0123456789")
    monkeypatch.setenv("REALAUTH_TEST_WATCH_B", "watch-key-beta-9876543210")
    h = await make_realauth(
        '[providers.seedance]\nkind = "seedance"\nsandbox = true\n'
        '[tenants.alpha]\nkeys = ["env:REALAUTH_TEST_WATCH_A"]\n'
        '[tenants.beta]\nkeys = ["env:REALAUTH_TEST_WATCH_B"]\n'
    )
    alpha = (("authorization", "Bearer watch-key-alpha-0123456789"),)
    beta = (("authorization", "Bearer watch-key-beta-9876543210"),)
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done")
    mine = (await h.stub.CreateAuthSession(req, metadata=alpha)).session
    wreq = pb.WatchAuthSessionRequest(session_id=mine.session_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.WatchAuthSession(wreq, metadata=beta, timeout=5).read()
    d = decode(err.value)
    assert d.code == grpc.StatusCode.NOT_FOUND and d.reason == "SessionNotFound"
    ok = await h.stub.WatchAuthSession(wreq, metadata=alpha, timeout=5).read()
    assert ok.session.session_id == mine.session_id


async def test_a_watcher_on_another_replica_sees_the_changes(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    a = await make_realauth(store=redis_url)
    b = await make_realauth(store=redis_url, clock=a.clock)
    session = await a.create()
    call = watch(b, session.session_id)  # B never sees the session's requests: only Redis
    assert (await call.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    await a.complete(session, "pass")
    rest = await read_all(call)
    assert [s.state for s in rest] == [S.AUTH_SESSION_STATE_COMPLETED, S.AUTH_SESSION_STATE_EXCHANGED]
    assert rest[-1].result.group_id.startswith("group-")
