"""Landings sign as the session's tenant; store outages are UNAVAILABLE; shutdown ends watches cleanly."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY

from .conftest import ServerFactory
from .errors_util import decode
from .redis_util import start_redis

KEY = "tenant-key-for-resilience-tests-01"


async def test_landing_exchanges_with_the_session_tenants_own_credentials(make_realauth: ServerFactory) -> None:
    """The provider's own key is wrong; only the tenant's works. The landing has no RPC context of its own."""
    h = await make_realauth(
        f"""
[providers.seedance]
sandbox = true
api_key = "provider-default-key-that-the-relay-rejects"
[tenants.alpha]
keys = ["{KEY}"]
[tenants.alpha.credentials.seedance]
api_key = "{SANDBOX_API_KEY}"
"""
    )
    md = (("authorization", f"Bearer {KEY}"),)
    s = (
        await h.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(callback_url="https://caller.example/cb"), metadata=md
        )
    ).session
    landed = await h.complete(s, "pass")
    assert parse_qs(urlsplit(landed.headers["location"]).query)["state"] == ["exchanged"]
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=s.session_id), metadata=md)
    assert got.session.result.group_id.startswith("group-")


async def test_store_outage_is_unavailable_not_internal(make_realauth: ServerFactory, tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis")
    try:
        h = await make_realauth(store=redis.url)
        s = await h.create()
    finally:
        redis.stop()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=s.session_id), timeout=20)
    d = decode(err.value)
    assert d.code == grpc.StatusCode.UNAVAILABLE and d.reason == "ServiceUnavailable"
    assert d.retry_delay is not None


async def test_shutdown_ends_open_watches_with_unavailable(make_realauth: ServerFactory) -> None:
    h = await make_realauth()
    s = await h.create()
    call = h.stub.WatchAuthSession(pb.WatchAuthSessionRequest(session_id=s.session_id))
    first = await call.read()
    assert first.session.state == pb.AUTH_SESSION_STATE_PENDING
    start = time.monotonic()
    stopping = asyncio.create_task(h.server.stop(grace=8))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                raise AssertionError("the watch ended without a status telling the caller to reconnect")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 4, "the watch was cut by the grace period instead of ended"
    await stopping
    h.server.stop = _noop  # type: ignore[method-assign]  # the fixture's own stop must not run twice


async def _noop(*args: object, **kwargs: object) -> None:
    return None
