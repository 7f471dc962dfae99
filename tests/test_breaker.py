"""A sick vendor: the circuit breaker's transitions, failover of routed creates, the retry budget.

Everything goes over real ports: the built-in emulators (faults injected as PUT /_emulator/faults would) and, for
a second instance of a kind, a standalone emulator on its own loopback port. Time is the harness clock, moved on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.clock import Clock
from realauth_server.config import ConfigError, load_settings
from realauth_server.emulators.base import Emulator, FaultPlan
from realauth_server.vendors.registry import VENDORS
from realauth_server.vendors.seedance.adapter import SANDBOX_API_KEY

from .conftest import LOG_LINES, Harness, ServerFactory, on_loopback
from .errors_util import Decoded, decode

MODEL = "doubao-seedance-2-0-260128"
CREATE = "CreateSession"
KEY_A, KEY_B = "tenant-key-breaker-alpha-0001", "tenant-key-breaker-beta-00002"


async def refused(call: object) -> Decoded:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return decode(err.value)


async def circuit(h: Harness, name: str) -> int:
    listed = await h.stub.ListProviders(pb.ListProvidersRequest())
    return next(p.circuit_state for p in listed.providers if p.name == name)


async def metric(h: Harness, line_start: str) -> float:
    text = (await h.http.get(f"{h.http_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def transitions(provider: str) -> list[tuple[str, str]]:
    out = []
    for line in LOG_LINES:
        if "circuit breaker transition" in line:
            rec = json.loads(line)
            if rec.get("provider") == provider:
                out.append((rec["from"], rec["to"]))
    return out


async def test_breaker_opens_fails_fast_probes_and_closes(make_realauth: ServerFactory) -> None:
    h = await make_realauth(
        "[providers.seedance]\nsandbox = true\nmax_attempts = 1\nbreaker_min_calls = 4\nbreaker_open_seconds = 5\n"
    )
    emu = h.emulator("seedance")
    LOG_LINES.clear()
    await h.http.put(f"{h.http_url}/sandbox/seedance/_emulator/faults", json={"status": 503, "path": "auth/session"})
    for n in range(4):
        assert await circuit(h, "seedance") == pb.CIRCUIT_STATE_CLOSED, n
        d = await refused(h.create(provider="seedance"))
        assert (d.code, d.reason) == (grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable")
    assert await circuit(h, "seedance") == pb.CIRCUIT_STATE_OPEN
    assert await metric(h, 'realauth_provider_circuit_state{provider="seedance",state="open"}') == 1.0
    # Open: refused at once, no vendor traffic, with RetryInfo saying when the probe may go.
    seen = emu.stats.requests
    start = time.monotonic()
    d = await refused(h.create(provider="seedance"))
    assert time.monotonic() - start < 0.5
    assert (d.code, d.reason) == (grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable")
    assert "circuit open" in d.message and d.retry_delay is not None and 3.5 < d.retry_delay <= 5.0
    assert emu.stats.requests == seen
    # Half-open: one probe reaches the still-sick vendor, fails, and the breaker opens again.
    h.clock.advance(5.1)
    await refused(h.create(provider="seedance"))
    assert emu.stats.requests == seen + 1
    assert await circuit(h, "seedance") == pb.CIRCUIT_STATE_OPEN
    await refused(h.create(provider="seedance"))
    assert emu.stats.requests == seen + 1
    # The vendor heals; the next probe succeeds and closes the breaker.
    emu.set_fault(None)
    h.clock.advance(5.1)
    assert (await h.create(provider="seedance")).token
    assert await circuit(h, "seedance") == pb.CIRCUIT_STATE_CLOSED
    assert await metric(h, 'realauth_provider_circuit_state{provider="seedance",state="closed"}') == 1.0
    assert transitions("seedance") == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.mark.parametrize("plan", [FaultPlan(rate_limit=True), FaultPlan(reset=True)], ids=["rate_limit", "reset"])
async def test_only_sickness_opens_the_breaker(make_realauth: ServerFactory, plan: FaultPlan) -> None:
    """A vendor saying "slow down" is healthy; a vendor dropping connections is not."""
    h = await make_realauth("[providers.seedance]\nsandbox = true\nmax_attempts = 1\nbreaker_min_calls = 4\n")
    h.emulator("seedance").set_fault(plan)
    for _ in range(6):
        await refused(h.create(provider="seedance"))
    expected = pb.CIRCUIT_STATE_CLOSED if plan.rate_limit else pb.CIRCUIT_STATE_OPEN
    assert await circuit(h, "seedance") == expected


@pytest.fixture
async def second_seedance() -> AsyncIterator[tuple[Emulator, str]]:
    async with on_loopback(lambda url: VENDORS["seedance"].emulator_class()(clock=Clock(), public_url=url)) as served:
        yield served


async def test_routed_create_fails_over_and_exchange_never_does(
    make_realauth: ServerFactory, second_seedance: tuple[Emulator, str]
) -> None:
    other, url = second_seedance
    h = await make_realauth(
        f"""
[providers.sd_a]
kind = "seedance"
sandbox = true
max_attempts = 1
breaker_min_calls = 3
[providers.sd_b]
kind = "seedance"
base_url = "{url}"
api_key = "{SANDBOX_API_KEY}"
"""
    )
    sick = h.emulator("seedance")
    early = await h.create(model=MODEL)
    assert early.provider == "sd_a"
    sick.set_fault(FaultPlan(status=503))
    # Routed by model: sd_a fails, sd_b serves, and the session says so.
    moved = await h.create(model=MODEL)
    assert moved.provider == "sd_b" and sick.stats.by_action[CREATE] == 2
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=moved.session_id))
    assert got.session.provider == "sd_b"
    # An explicit provider is never swapped for another.
    d = await refused(h.create(provider="sd_a", model=MODEL))
    assert d.reason == "ProviderUnavailable" and d.metadata["provider"] == "sd_a"
    assert await circuit(h, "sd_a") == pb.CIRCUIT_STATE_OPEN
    # With sd_a's breaker open, routed creates go straight to sd_b: no traffic to the sick vendor.
    seen = sick.stats.requests
    assert (await h.create(model=MODEL)).provider == "sd_b"
    assert sick.stats.requests == seen
    # Exchange: the token lives at sd_a's vendor; it is never sent elsewhere.
    before = other.stats.requests
    d = await refused(h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=early.session_id)))
    assert d.code == grpc.StatusCode.UNAVAILABLE and d.metadata["provider"] == "sd_a"
    assert other.stats.requests == before


async def test_tenant_provider_order_fails_over_across_kinds(make_realauth: ServerFactory) -> None:
    h = await make_realauth(
        f"""
[providers.seedance]
sandbox = true
[providers.volcengine]
sandbox = true
[tenants.alpha]
keys = ["{KEY_A}"]
provider_order = ["seedance", "volcengine"]
[tenants.beta]
keys = ["{KEY_B}"]
"""
    )
    h.emulator("seedance").set_fault(FaultPlan(status=503, path="auth/session"))
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done")
    alpha = await h.stub.CreateAuthSession(req, metadata=(("authorization", f"Bearer {KEY_A}"),))
    assert alpha.session.provider == "volcengine" and alpha.session.provider_kind == "volcengine"
    # A tenant without an order keeps today's behaviour: the default provider only.
    d = await refused(h.stub.CreateAuthSession(req, metadata=(("authorization", f"Bearer {KEY_B}"),)))
    assert d.reason == "ProviderUnavailable"


async def test_tenant_provider_weights_spread_first_tries(
    make_realauth: ServerFactory, second_seedance: tuple[Emulator, str]
) -> None:
    _, url = second_seedance
    h = await make_realauth(
        f"""
[providers.sd_a]
kind = "seedance"
sandbox = true
max_attempts = 1
[providers.sd_b]
kind = "seedance"
base_url = "{url}"
api_key = "{SANDBOX_API_KEY}"
[providers.sd_c]
kind = "seedance"
sandbox = true
[tenants.alpha]
keys = ["{KEY_A}"]
provider_weights = {{ sd_a = 1, sd_b = 1, sd_c = 0 }}
"""
    )
    md = (("authorization", f"Bearer {KEY_A}"),)
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done")
    served = [(await h.stub.CreateAuthSession(req, metadata=md)).session.provider for _ in range(40)]
    # Both weighted instances get first tries (all 40 on one side: probability 2^-39); weight 0 is failover only.
    assert set(served) == {"sd_a", "sd_b"}, served
    # sd_a's vendor dies: every create still succeeds, on sd_b (sd_c shares sd_a's vendor, so it fails too).
    h.emulator("seedance").set_fault(FaultPlan(status=503))
    served = [(await h.stub.CreateAuthSession(req, metadata=md)).session.provider for _ in range(10)]
    assert set(served) == {"sd_b"}


@pytest.mark.parametrize(
    ("tenant", "message"),
    [
        ('provider_order = ["nope"]', "unknown provider"),
        ('providers = ["seedance"]\nprovider_order = ["volcengine"]', "is not in"),
        ('provider_order = ["seedance", "seedance"]', "twice"),
        ("provider_weights = { seedance = -1 }", ">= 0"),
        ("provider_weights = { seedance = 0 }", "above 0"),
        ("provider_weights = { nope = 1 }", "unknown provider"),
    ],
)
def test_provider_order_is_validated(tmp_path: object, tenant: str, message: str) -> None:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "c.toml"
    cfg.write_text(
        "[providers.seedance]\nsandbox = true\n[providers.volcengine]\nsandbox = true\n"
        f'[tenants.t]\nkeys = ["{KEY_A}"]\n{tenant}\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_settings(str(cfg))


def test_breaker_knobs_are_validated(tmp_path: object) -> None:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "c.toml"
    cfg.write_text("[providers.seedance]\nsandbox = true\nbreaker_failure_ratio = 1.5\n")
    with pytest.raises(ConfigError, match="breaker_failure_ratio"):
        load_settings(str(cfg))
    cfg.write_text("[providers.seedance]\nsandbox = true\nbreaker_min_calls = 7\nretry_budget_ratio = 0.1\n")
    b = load_settings(str(cfg)).providers[0].breaker
    assert (b.min_calls, b.retry_ratio, b.open_seconds) == (7, 0.1, 5.0)


async def test_retry_budget_bounds_vendor_traffic_during_an_outage(make_realauth: ServerFactory) -> None:
    """30 concurrent creates against a dead vendor, 3 attempts each: without a budget that is 90 requests."""
    h = await make_realauth(
        "[providers.seedance]\nsandbox = true\nmax_attempts = 3\nbreaker_min_calls = 1000\n"
        "retry_budget_ratio = 0.2\nretry_budget_min = 2\n"
    )
    emu = h.emulator("seedance")
    emu.set_fault(FaultPlan(status=503, path="auth/session"))
    refused_before = await metric(h, 'realauth_vendor_retries_total{decision="refused",provider="seedance"}')
    outcomes = await asyncio.gather(*(h.create(provider="seedance") for _ in range(30)), return_exceptions=True)
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes)
    assert all(decode(o).reason == "ProviderUnavailable" for o in outcomes)  # type: ignore[arg-type]
    sent = emu.stats.by_action[CREATE]
    assert 30 <= sent <= 30 + 2 + 0.2 * 30, sent
    refused_now = await metric(h, 'realauth_vendor_retries_total{decision="refused",provider="seedance"}')
    assert refused_now - refused_before >= 30 - 8  # every call but those that got a retry was refused one


class _Tick:
    """A clock the state-machine tests move by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_window_forgets_old_failures_and_one_probe_goes_at_a_time() -> None:
    from realauth_server.providers.breaker import BreakerSettings, BreakerState, CircuitBreaker, CircuitOpen

    tick, seen = _Tick(), []
    b = CircuitBreaker("p", BreakerSettings(min_calls=4, window=10, open_seconds=5), tick, lambda *a: seen.append(a[1]))
    for _ in range(3):
        b.before_call()
        b.record(failed=True)
    tick.t += 11  # those three are history now
    for _ in range(3):
        b.before_call()
        b.record(failed=True)
    assert b.state is BreakerState.CLOSED
    b.before_call()
    b.record(failed=True)
    assert b.state is BreakerState.OPEN
    tick.t += 5
    b.before_call()  # the probe
    with pytest.raises(CircuitOpen):
        b.before_call()  # a second concurrent call is refused while the probe runs
    tick.t += 5  # the probe never reported (cancelled): its slot is free again
    b.before_call()
    b.record(failed=False)
    assert b.state is BreakerState.CLOSED and seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
