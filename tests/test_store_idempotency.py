"""CreateAuthSession idempotency under concurrency, per backend and across replicas: one vendor call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import FaultPlan

from .conftest import Harness, ServerFactory
from .errors_util import decode
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

CREATE = "CreateSession"  # the Seedance emulator's name for the vendor's create call


def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'idem.db'}"  # absolute: sqlite:////tmp/…
    return str(request.getfixturevalue("redis_url"))


def creates(h: Harness) -> int:
    return int(h.emulator("seedance").stats.by_action.get(CREATE, 0))


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
async def test_fifty_concurrent_duplicates_make_one_vendor_call(
    backend: str, make_realauth: ServerFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    h = await make_realauth(store=store_url(backend, tmp_path, request))
    # A slow vendor, so the duplicates really overlap with the one call in flight.
    h.emulator("seedance").set_fault(FaultPlan(latency=0.3, path="auth/session"))
    sessions = await asyncio.gather(
        *(h.create(provider="seedance", idempotency_key="order-50", subject_id="u") for _ in range(50))
    )
    assert len({s.session_id for s in sessions}) == 1
    assert len({s.token for s in sessions}) == 1
    assert creates(h) == 1
    # A different key is a different session.
    other = await h.create(provider="seedance", idempotency_key="order-51")
    assert other.session_id != sessions[0].session_id and creates(h) == 2


async def test_duplicates_on_two_replicas_sharing_redis_make_one_vendor_call(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
) -> None:
    a = await make_realauth(store=redis_url)
    b = await make_realauth(store=redis_url)
    for h in (a, b):
        h.emulator("seedance").set_fault(FaultPlan(latency=0.3, path="auth/session"))
    sessions = await asyncio.gather(
        *(h.create(provider="seedance", idempotency_key="order-x") for _ in range(25) for h in (a, b))
    )
    assert len({s.session_id for s in sessions}) == 1
    assert creates(a) + creates(b) == 1


async def test_a_waiting_duplicate_gives_up_at_its_own_deadline(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
) -> None:
    a = await make_realauth(store=redis_url)
    b = await make_realauth(store=redis_url)
    a.emulator("seedance").set_fault(FaultPlan(latency=1.5, path="auth/session"))
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", idempotency_key="slow-1")
    first = asyncio.ensure_future(a.stub.CreateAuthSession(req, timeout=10))
    await asyncio.sleep(0.3)  # a is in the vendor call now, holding the reservation
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.stub.CreateAuthSession(req, timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    made = (await first).session
    again = await b.stub.CreateAuthSession(req, timeout=5)
    assert again.session.session_id == made.session_id
    assert creates(a) == 1 and creates(b) == 0


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_failed_vendor_call_releases_the_key(
    backend: str, make_realauth: ServerFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    h = await make_realauth(store=store_url(backend, tmp_path, request))
    emu = h.emulator("seedance")
    emu.set_fault(FaultPlan(status=500, count=3, path="auth/session"))  # every attempt of one call fails
    outcomes = await asyncio.gather(
        h.create(idempotency_key="retry-me"), h.create(idempotency_key="retry-me"), return_exceptions=True
    )
    failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    made = [o for o in outcomes if isinstance(o, pb.AuthSession)]
    assert len(failed) == 1 and len(made) == 1, outcomes
    assert decode(failed[0]).reason == "ProviderUnavailable"
    assert creates(h) == 4  # three failed attempts, then the waiting duplicate's one call
    again = await h.create(idempotency_key="retry-me")
    assert again.session_id == made[0].session_id and creates(h) == 4
