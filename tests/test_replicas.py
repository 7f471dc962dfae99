"""Many replicas, one Redis: landing on any replica, watchers anywhere, single-use tokens used once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import grpc
import httpx
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.clock import Clock
from realauth_server.emulators.base import Emulator, FaultPlan
from realauth_server.vendors.registry import VENDORS
from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY

from .conftest import ServerFactory, on_loopback, read_all
from .proc_util import ServeProcess, start_serve
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

S = pb.AuthSessionState
EXCHANGE = "GroupsFromToken"
CREATE = "CreateSession"


@dataclass
class SharedEmulator:
    """One Seedance emulator that every replica talks to, as they would all talk to the one vendor."""

    url: str
    emulator: Emulator

    def count(self, action: str) -> int:
        return self.emulator.stats.by_action.get(action, 0)

    def config(self) -> str:
        return f'[providers.seedance]\nkind = "seedance"\nbase_url = "{self.url}"\napi_key = "{SANDBOX_API_KEY}"\n'


@pytest.fixture
async def vendor() -> AsyncIterator[SharedEmulator]:
    async with on_loopback(lambda url: VENDORS["seedance"].emulator_class()(clock=Clock(), public_url=url)) as (
        emulator,
        url,
    ):
        yield SharedEmulator(url, emulator)


def on_port(url: str, port: int) -> str:
    """The same URL on another replica's HTTP port (what a load balancer would do)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


async def test_exchange_is_single_flight_across_replicas(
    make_realauth: ServerFactory,
    vendor: SharedEmulator,
    redis_url: str,  # noqa: F811
) -> None:
    a = await make_realauth(vendor.config(), store=redis_url)
    b = await make_realauth(vendor.config(), store=redis_url)
    session = await a.create(provider="seedance")
    page = await a.http.get(session.verification_url + "&outcome=pass")
    landing = page.headers["location"]
    vendor.emulator.set_fault(FaultPlan(latency=0.4, path="from-token"))  # type: ignore[attr-defined]
    req = pb.ExchangeTokenRequest(session_id=session.session_id)
    outcomes = await asyncio.gather(
        a.http.get(landing),
        b.http.get(on_port(landing, b.server.http_port)),
        a.stub.ExchangeToken(req, timeout=10),
        b.stub.ExchangeToken(req, timeout=10),
        b.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token), timeout=10),
    )
    assert vendor.count(EXCHANGE) == 1  # the single-use BytedToken went to the vendor once
    landings, exchanges = outcomes[:2], outcomes[2:]
    assert sorted(r.status_code for r in landings) in ([302, 302], [302, 409], [409, 409])  # type: ignore[union-attr]
    groups = {r.result.group_id for r in exchanges}  # type: ignore[union-attr]
    assert len(groups) == 1 and next(iter(groups)).startswith("group-")


@pytest.mark.slow
async def test_two_serve_processes_share_one_redis(
    tmp_path: Path,
    vendor: SharedEmulator,
    redis_url: str,  # noqa: F811
) -> None:
    cfg = tmp_path / "realauth.toml"
    cfg.write_text(vendor.config())
    procs: list[ServeProcess] = []
    channels: list[grpc.aio.Channel] = []
    http = httpx.AsyncClient(timeout=10)
    try:
        for _ in range(2):  # each on free ports; the default public URL names its own HTTP port
            procs.append(await asyncio.to_thread(start_serve, tmp_path, "--config", str(cfg), "--store", redis_url))
        proc_a, proc_b = procs
        stubs = []
        for p in procs:
            channels.append(grpc.aio.insecure_channel(p.target))
            stubs.append(pb_grpc.RealAuthServiceStub(channels[-1]))
        a, b = stubs

        req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", subject_id="u-1")
        s1 = (await a.CreateAuthSession(req, timeout=10)).session
        watcher = a.WatchAuthSession(pb.WatchAuthSessionRequest(session_id=s1.session_id), timeout=30)
        assert (await watcher.read()).session.state == S.AUTH_SESSION_STATE_PENDING

        # The person finishes; the vendor's redirect names A, the load balancer sends it to B.
        page = await http.get(s1.verification_url + "&outcome=pass")
        landing = page.headers["location"]
        assert urlsplit(landing).port == proc_a.http_port
        done = await http.get(on_port(landing, proc_b.http_port))
        assert done.status_code == 302, done.text
        assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]

        # B holds a session of its own when it dies.
        req2 = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", idempotency_key="k-2")
        s2 = (await b.CreateAuthSession(req2, timeout=10)).session
        proc_b.stop(signal.SIGKILL)

        seen = await asyncio.wait_for(read_all(watcher), 20)
        assert [s.state for s in seen] == [S.AUTH_SESSION_STATE_COMPLETED, S.AUTH_SESSION_STATE_EXCHANGED]
        group = seen[-1].result.group_id
        assert group.startswith("group-")
        ex = await a.ExchangeToken(pb.ExchangeTokenRequest(session_id=s1.session_id), timeout=10)
        assert ex.result.group_id == group and ex.session.state == S.AUTH_SESSION_STATE_EXCHANGED
        assert vendor.count(EXCHANGE) == 1

        # Nothing B wrote is lost: A serves s2, dedups its idempotency key, and lands it.
        got = await a.GetAuthSession(pb.GetAuthSessionRequest(session_id=s2.session_id), timeout=10)
        assert got.session.state == S.AUTH_SESSION_STATE_PENDING
        creates = vendor.count(CREATE)
        again = (await a.CreateAuthSession(req2, timeout=10)).session
        assert again.session_id == s2.session_id and vendor.count(CREATE) == creates
        page2 = await http.get(s2.verification_url + "&outcome=pass")
        landing2 = page2.headers["location"]
        assert urlsplit(landing2).port == proc_b.http_port  # B is gone: send it to A
        done2 = await http.get(on_port(landing2, proc_a.http_port))
        assert parse_qs(urlsplit(done2.headers["location"]).query)["state"] == ["exchanged"]
        final = await a.GetAuthSession(pb.GetAuthSessionRequest(session_id=s2.session_id), timeout=10)
        assert final.session.result.group_id.startswith("group-")
    finally:
        await http.aclose()
        for ch in channels:
            await ch.close()
        for p in procs:
            try:
                p.stop(signal.SIGTERM, timeout=15)
            except Exception:
                p.stop(signal.SIGKILL, timeout=5)
