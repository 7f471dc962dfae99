"""The call's budget: caller deadline, server cap and exchange window bound every vendor call."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import FaultPlan

from .conftest import Harness, ServerFactory
from .errors_util import decode

REQ = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done")


async def wait_for(predicate: object, within: float = 3.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


async def test_caller_deadline_shorter_than_vendor_latency(realauth: Harness) -> None:
    emu = realauth.emulator("seedance")
    emu.set_fault(FaultPlan(latency=5.0, count=1))
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(REQ, timeout=0.6)
    elapsed = time.monotonic() - start
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 1.5, f"took {elapsed:.2f}s: the vendor's latency, not the caller's deadline"
    # The vendor sees the request abandoned, not answered.
    assert await wait_for(lambda: emu.stats.abandoned == 1)


async def test_no_caller_deadline_uses_the_server_cap(make_realauth: ServerFactory) -> None:
    h = await make_realauth(rpc_cap_seconds=0.8)
    emu = h.emulator("seedance")
    emu.set_fault(FaultPlan(hang=True, count=1))
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.CreateAuthSession(REQ)  # no timeout at all
    elapsed = time.monotonic() - start
    d = decode(err.value)
    assert d.code == grpc.StatusCode.DEADLINE_EXCEEDED and d.reason == "ProviderTimeout"
    assert 0.6 < elapsed < 2.0
    assert await wait_for(lambda: emu.stats.abandoned == 1)


async def test_spent_budget_stops_retries_and_vendor_traffic(realauth: Harness) -> None:
    emu = realauth.emulator("seedance")
    emu.set_fault(FaultPlan(status=503))  # retriable, forever
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(REQ, timeout=0.5)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    seen = emu.stats.requests
    await asyncio.sleep(1.0)
    assert emu.stats.requests == seen, "vendor traffic continued after the call ended"
    assert seen <= 3  # max_attempts


async def test_exchange_budget_is_narrowed_to_the_session_window(make_realauth: ServerFactory) -> None:
    h = await make_realauth("[providers.seedance]\nsandbox = true\nexchange_window_seconds = 1.5\n", rpc_cap_seconds=30)
    s = await h.create()
    first = await h.http.get(s.verification_url + "&outcome=pass")
    # Make the landing's own exchange and ours slow: the window, not the 30 s cap, must end them.
    h.emulator("seedance").set_fault(FaultPlan(latency=10.0, path="from-token"))
    start = time.monotonic()
    landed = await h.http.get(first.headers["location"])
    assert landed.status_code == 302
    assert time.monotonic() - start < 3.0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=s.session_id))
    d = decode(err.value)
    assert d.code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert d.reason in ("TokenExpired", "ProviderTimeout")
    assert time.monotonic() - start < 4.0
