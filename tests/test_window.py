"""Callbacks that never miss the window: the result is captured at landing, even at second 115."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from realauth.v1 import realauth_pb2 as pb

from .conftest import Harness, ServerFactory
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

EXCHANGE = "GroupsFromToken"  # the Seedance emulator's name for the vendor's exchange call


@pytest.fixture(params=["memory", "redis"])
async def h(request: pytest.FixtureRequest, make_realauth: ServerFactory, tmp_path: Path) -> Harness:
    store = "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")
    return await make_realauth(store=store)


def exchanges(h: Harness) -> int:
    return int(h.emulator("seedance").stats.by_action.get(EXCHANGE, 0))


async def test_person_finishing_at_115_seconds_is_still_captured(h: Harness) -> None:
    session = await h.create(provider="seedance")
    h.clock.advance(115)
    done = await h.complete(session, "pass")
    assert done.status_code == 302
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]
    assert exchanges(h) == 1
    h.clock.advance(3)
    resp = await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert resp.result.passed and resp.result.group_id.startswith("group-")
    assert exchanges(h) == 1  # the caller's own exchange reused the captured result


async def test_caller_never_calling_exchange_still_gets_the_result(h: Harness) -> None:
    session = await h.create(provider="seedance")
    h.clock.advance(115)
    await h.complete(session, "pass")
    h.clock.advance(3600)  # long after the vendor's 120 s window, with no ExchangeToken ever sent
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_EXCHANGED
    assert got.session.result.passed and got.session.result.group_id.startswith("group-")
    late = await h.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    assert late.result.group_id == got.session.result.group_id
    assert exchanges(h) == 1


async def test_a_failed_verification_is_recorded_at_landing_too(h: Harness) -> None:
    session = await h.create(provider="seedance")
    h.clock.advance(110)
    await h.complete(session, "fail")
    h.clock.advance(600)
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_FAILED
    assert not got.session.result.passed and got.session.result.vendor_result_code
    assert exchanges(h) == 0  # a failed verdict needs no vendor exchange


async def test_landing_after_the_window_is_refused_and_expires_the_session(h: Harness) -> None:
    session = await h.create(provider="seedance")
    first = await h.http.get(session.verification_url + "&outcome=pass")  # the person finishes at once …
    h.clock.advance(121)  # … but the landing arrives too late
    late = await h.http.get(first.headers["location"])
    assert late.status_code == 410
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_EXPIRED
    assert exchanges(h) == 0
