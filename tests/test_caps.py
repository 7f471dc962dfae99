"""Caps that hold: the watch cap, open-watch bounds, per-tenant request rates (shared through Redis), readiness."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from realauth.v1 import realauth_pb2 as pb
from realauth_server.config import ConfigError, load_settings
from realauth_server.metrics import REGISTRY
from realauth_server.server import SERVICE_NAME

from .conftest import Harness, ServerFactory, read_all
from .errors_util import decode
from .redis_util import redis_server, redis_url, start_redis  # noqa: F401  (fixtures)

S = pb.AuthSessionState
KEY_A = "caps-tenant-key-alpha-0123456789"
KEY_B = "caps-tenant-key-beta-9876543210"
TENANTS = f"""
[providers.seedance]
sandbox = true
[tenants.alpha]
keys = ["{KEY_A}"]
[tenants.beta]
keys = ["{KEY_B}"]
"""
ALPHA = (("authorization", f"Bearer {KEY_A}"),)
BETA = (("authorization", f"Bearer {KEY_B}"),)


def rejected(reason: str, scope: str) -> float:
    return REGISTRY.get_sample_value("realauth_rejected_total", {"reason": reason, "scope": scope}) or 0.0


def watch(
    h: Harness, session_id: str, metadata: tuple[tuple[str, str], ...] = (), timeout: float | None = None
) -> grpc.aio.UnaryStreamCall:
    return h.stub.WatchAuthSession(
        pb.WatchAuthSessionRequest(session_id=session_id), metadata=metadata, timeout=timeout
    )


# --- the watch cap ------------------------------------------------------------------------------------------------


async def test_a_watch_ends_cleanly_at_its_cap_whatever_the_callers_deadline(make_realauth: ServerFactory) -> None:
    h = await make_realauth(rpc_cap_seconds=1.0, watch_cap_seconds=1.5)
    s = await h.create()
    start = time.monotonic()
    calls = [watch(h, s.session_id), watch(h, s.session_id, timeout=60)]  # no deadline, and a long one
    ends = await asyncio.gather(*(asyncio.wait_for(read_all(c), 10) for c in calls))
    took = time.monotonic() - start
    for c, seen in zip(calls, ends, strict=True):
        assert [m.state for m in seen] == [S.AUTH_SESSION_STATE_PENDING]
        assert await c.code() == grpc.StatusCode.OK  # clean end: the caller watches again
    assert 1.4 < took < 4, took
    # Resuming gives the state now, and still sees the changes that follow.
    again = watch(h, s.session_id, timeout=15)
    assert (await again.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    await h.complete(s, "pass")
    assert [m.state for m in await read_all(again)][-1] == S.AUTH_SESSION_STATE_EXCHANGED


# --- open-watch bounds --------------------------------------------------------------------------------------------


async def test_open_watches_are_bounded_per_tenant_and_per_server(make_realauth: ServerFactory) -> None:
    h = await make_realauth(TENANTS + "[server]\nmax_watches = 3\nmax_watches_per_tenant = 2\n")
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done")
    sa = (await h.stub.CreateAuthSession(req, metadata=ALPHA)).session
    sb = (await h.stub.CreateAuthSession(req, metadata=BETA)).session
    before = rejected("Overloaded", "watches_tenant"), rejected("Overloaded", "watches_server")
    open_a = [watch(h, sa.session_id, ALPHA, 20) for _ in range(2)]
    for c in open_a:
        assert (await c.read()).session.state == S.AUTH_SESSION_STATE_PENDING

    with pytest.raises(grpc.aio.AioRpcError) as err:  # alpha's third
        await watch(h, sa.session_id, ALPHA, 5).read()
    d = decode(err.value)
    assert d.code == grpc.StatusCode.RESOURCE_EXHAUSTED and d.reason == "Overloaded"
    assert d.metadata["scope"] == "watches_tenant" and d.retry_delay is not None

    b1 = watch(h, sb.session_id, BETA, 20)  # another tenant still may: the server's third
    assert (await b1.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the server's fourth
        await watch(h, sb.session_id, BETA, 5).read()
    d = decode(err.value)
    assert d.reason == "Overloaded" and d.metadata["scope"] == "watches_server"
    assert (rejected("Overloaded", "watches_tenant"), rejected("Overloaded", "watches_server")) == (
        before[0] + 1,
        before[1] + 1,
    )

    open_a[0].cancel()  # a closed watch frees its place
    for _ in range(50):
        if h.server.service.tenant_watches.count("alpha") < 2:
            break
        await asyncio.sleep(0.05)
    again = watch(h, sa.session_id, ALPHA, 20)
    assert (await again.read()).session.state == S.AUTH_SESSION_STATE_PENDING
    for c in (open_a[1], b1, again):
        c.cancel()


# --- per-tenant request rates -------------------------------------------------------------------------------------


async def _at_window_start() -> None:
    """Wait for the start of a rate window (windows are whole seconds of real time), so a burst fits in one."""
    await asyncio.sleep(1.02 - time.time() % 1.0)


async def test_a_tenant_past_its_rate_is_refused_and_others_are_not(make_realauth: ServerFactory) -> None:
    h = await make_realauth(
        TENANTS.replace("[tenants.beta]", "[tenants.beta]\nrate_limit = 0") + "[server]\ntenant_rate_limit = 4\n"
    )
    listing = pb.ListProvidersRequest()

    async def one(md: tuple[tuple[str, str], ...]) -> str:
        try:
            await h.stub.ListProviders(listing, metadata=md, timeout=5)
            return "OK"
        except grpc.aio.AioRpcError as exc:
            d = decode(exc)
            assert d.reason == "TenantRateLimited" and d.metadata["scope"] == "tenant"
            assert d.retry_delay is not None and 0 < d.retry_delay <= 1.0
            return d.code.name

    before = rejected("TenantRateLimited", "tenant")
    await _at_window_start()
    alpha = await asyncio.gather(*(one(ALPHA) for _ in range(10)))
    beta = await asyncio.gather(*(one(BETA) for _ in range(10)))  # rate_limit = 0: unlimited
    assert collections.Counter(alpha) == {"OK": 4, "RESOURCE_EXHAUSTED": 6}
    assert set(beta) == {"OK"}
    assert rejected("TenantRateLimited", "tenant") - before == 6
    await asyncio.sleep(1.0)  # the next window
    assert await one(ALPHA) == "OK"


async def test_a_tenants_rate_is_shared_by_replicas_through_redis(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
) -> None:
    config = TENANTS.replace("[tenants.alpha]", "[tenants.alpha]\nrate_limit = 3")
    a = await make_realauth(config, store=redis_url)
    b = await make_realauth(config, store=redis_url)
    listing = pb.ListProvidersRequest()

    async def one(h: Harness) -> str:
        try:
            await h.stub.ListProviders(listing, metadata=ALPHA, timeout=5)
            return "OK"
        except grpc.aio.AioRpcError as exc:
            return decode(exc).reason

    await _at_window_start()
    got = await asyncio.gather(*(one(h) for h in (a, b) * 4))
    # Counted per replica, each would let 3 through (6); shared, the tenant gets 3 in all.
    assert collections.Counter(got) == {"OK": 3, "TenantRateLimited": 5}


# --- readiness ----------------------------------------------------------------------------------------------------


async def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    return int((await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)).status)


async def _until(stub: health_pb2_grpc.HealthStub, service: str, want: int, within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await _status(stub, service) == want:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{service or 'overall'} health did not become {want} within {within} s")


async def test_readiness_follows_the_store_and_liveness_does_not(make_realauth: ServerFactory, tmp_path: Path) -> None:
    """On the main port and on the dedicated probe port (server.health_port) alike."""
    redis = start_redis(tmp_path / "redis")
    probe_channel = None
    try:
        h = await make_realauth(store=redis.url, readiness_interval_seconds=0.2, health_port=0)
        assert h.server.health_port > 0
        probe_channel = grpc.aio.insecure_channel(f"127.0.0.1:{h.server.health_port}")
        stubs = [health_pb2_grpc.HealthStub(h.channel), health_pb2_grpc.HealthStub(probe_channel)]
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        for stub in stubs:
            assert await _status(stub, SERVICE_NAME) == serving
        redis.stop()  # the store is killed
        for stub in stubs:
            await _until(stub, SERVICE_NAME, not_serving, 5)
            assert await _status(stub, "") == serving  # alive: restarting realauth would not bring Redis back
        redis = start_redis(tmp_path / "redis", port=redis.port)
        for stub in stubs:
            await _until(stub, SERVICE_NAME, serving, 10)
        s = await h.create()  # and it serves again
        assert s.state == S.AUTH_SESSION_STATE_PENDING
        await h.server.stop(grace=1)
        h.server.stop = _noop  # type: ignore[method-assign]  # the fixture's own stop must not run twice
    finally:
        redis.stop()
        if probe_channel is not None:
            await probe_channel.close()


async def _noop(*args: object, **kwargs: object) -> None:
    return None


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[server]\nmax_in_flight = 0\n", "server.max_in_flight"),
        ("[server]\nmax_watches = -1\n", "server.max_watches"),
        ("[server]\nwatch_cap_seconds = 0\n", "server.watch_cap_seconds"),
        ("[server]\ntenant_rate_limit = -1\n", "server.tenant_rate_limit"),
        ("[providers.seedance]\nsandbox = true\nmax_connections = 0\n", "providers.seedance.max_connections"),
        ('[providers.seedance]\nsandbox = true\nmax_in_flight = "many"\n', "providers.seedance.max_in_flight"),
        (TENANTS.replace("[tenants.beta]", "[tenants.beta]\nrate_limit = -2"), "tenants.beta.rate_limit"),
        (TENANTS.replace("[tenants.beta]", "[tenants.beta]\nmax_watches = 0"), "tenants.beta.max_watches"),
    ],
)
def test_bad_bounds_are_refused_at_start_naming_the_key(tmp_path: Path, toml: str, named: str) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.") + " must be"):
        load_settings(str(cfg))
