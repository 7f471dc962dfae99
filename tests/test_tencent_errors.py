"""Tencent's error table end to end: emulator answer → adapter → gRPC status, ErrorInfo and vendor_code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.clock import Clock
from realauth_server.emulators.base import FaultPlan
from realauth_server.signing import tc3
from realauth_server.vendors.tencent.adapter import (
    ERRORS,
    SANDBOX_SECRET_ID,
    SANDBOX_SECRET_KEY,
    TencentProvider,
)
from realauth_server.vendors.tencent.emulator import TencentEmulator

from .conftest import Harness, ServerFactory, on_loopback
from .errors_util import decode

SEED_REGIONS = ("ap-bangkok", "ap-jakarta", "ap-singapore")


@dataclass
class Setup:
    realauth: Harness
    emu: TencentEmulator
    url: str


@pytest.fixture
async def setup(make_realauth: ServerFactory) -> AsyncIterator[Setup]:
    """A standalone emulator on its own port, and realauth configured against it like a real vendor."""
    clock = Clock()

    def emulator(url: str) -> TencentEmulator:
        return TencentEmulator(clock=clock, public_url=url, regions=SEED_REGIONS)

    async with on_loopback(emulator) as (emu, url):
        common = f'base_url = "{url}/"\nsecret_id = "{SANDBOX_SECRET_ID}"\n'
        config = f"""
[providers.tencent]
kind = "tencent"
{common}secret_key = "{SANDBOX_SECRET_KEY}"
region = "ap-jakarta"

[providers.tencent_badkey]
kind = "tencent"
{common}secret_key = "not-the-secret-key"

[providers.tencent_noid]
kind = "tencent"
base_url = "{url}/"
secret_id = "AKIDnobodyhasthisid00000000000000"
secret_key = "{SANDBOX_SECRET_KEY}"

[providers.tencent_hk]
kind = "tencent"
{common}secret_key = "{SANDBOX_SECRET_KEY}"
region = "ap-hongkong"

[providers.tencent_long]
kind = "tencent"
{common}secret_key = "{SANDBOX_SECRET_KEY}"
exchange_window_seconds = 400000
"""
        h = await make_realauth(config=config, clock=clock)
        yield Setup(h, emu, url)


def _attempts(rule_code: str, retriable: bool) -> int:
    if rule_code == "InternalError":
        return 2  # our judgement: retried once
    return 3 if retriable else 1


async def test_every_table_row_reaches_the_caller(setup: Setup) -> None:
    emu, h = setup.emu, setup.realauth
    assert len(ERRORS.rows) >= 35
    for rule in ERRORS.rows:
        emu.forced.clear()
        emu.force_error(rule.vendor_code, count=5, action="ApplyWebVerificationBizTokenIntl")
        before = emu.stats.requests
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await h.create(provider="tencent")
        d = decode(err.value)
        assert (d.code, d.reason, d.metadata.get("vendor_code")) == (
            rule.error.grpc_code,
            rule.error.code,
            rule.vendor_code,
        ), rule
        assert d.metadata.get("provider") == "tencent"
        assert d.metadata.get("vendor_request_id"), rule
        assert emu.stats.requests - before == _attempts(rule.vendor_code, rule.retriable), rule
    emu.forced.clear()


async def test_internal_error_is_retried_once(setup: Setup) -> None:
    emu, h = setup.emu, setup.realauth
    emu.force_error("InternalError", count=1)
    before = emu.stats.requests
    session = await h.create(provider="tencent")
    assert session.token and emu.stats.requests - before == 2


async def test_request_limit_family_is_retried(setup: Setup) -> None:
    emu, h = setup.emu, setup.realauth
    for code in ("RequestLimitExceeded.UinLimitExceeded", "RequestLimitExceeded.GlobalRegionUinLimitExceeded"):
        emu.force_error(code, count=2)
        before = emu.stats.requests
        assert (await h.create(provider="tencent")).token
        assert emu.stats.requests - before == 3


@pytest.mark.parametrize(
    ("provider", "vendor_code"),
    [
        ("tencent_badkey", "AuthFailure.SignatureFailure"),
        ("tencent_noid", "AuthFailure.SecretIdNotFound"),
        ("tencent_hk", "UnsupportedRegion"),
    ],
)
async def test_configuration_errors_arrive_unretried(setup: Setup, provider: str, vendor_code: str) -> None:
    before = setup.emu.stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await setup.realauth.create(provider=provider)
    d = decode(err.value)
    rule = ERRORS.lookup(vendor_code)
    assert rule is not None
    assert (d.code, d.reason, d.metadata["vendor_code"]) == (rule.error.grpc_code, rule.error.code, vendor_code)
    assert setup.emu.stats.requests - before == 1
    assert "not-the-secret-key" not in d.message and SANDBOX_SECRET_KEY not in d.message


async def test_clock_skew_is_signature_expire(setup: Setup) -> None:
    setup.emu.clock = Clock(offset=setup.realauth.clock.offset + 301)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await setup.realauth.create(provider="tencent")
    d = decode(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION and d.reason == "ProviderAuthFailed"
    assert d.metadata["vendor_code"] == "AuthFailure.SignatureExpire"
    setup.emu.clock = Clock(offset=setup.realauth.clock.offset + 290)  # inside the 5 minutes
    assert (await setup.realauth.create(provider="tencent")).token


async def test_unknown_and_expired_biz_tokens(setup: Setup) -> None:
    h, emu = setup.realauth, setup.emu
    lost = await h.create(provider="tencent")
    emu.tokens.pop(lost.token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=lost.session_id))
    d = decode(err.value)
    assert (d.code, d.reason, d.metadata["vendor_code"]) == (
        grpc.StatusCode.NOT_FOUND,
        "TokenNotFound",
        "InvalidParameterValue.BizTokenIllegal",
    )

    old = await h.create(provider="tencent_long")
    first = await h.http.get(old.verification_url + "&outcome=pass")
    assert first.status_code == 302
    h.clock.advance(259_201)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=old.session_id))
    d = decode(err.value)
    assert (d.code, d.reason, d.metadata["vendor_code"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TokenExpired",
        "InvalidParameterValue.BizTokenExpired",
    )


@pytest.mark.parametrize(
    ("plan", "code", "reason", "vendor_code", "attempts"),
    [
        (FaultPlan(status=503), grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable", "InternalError", 2),
        (FaultPlan(status=502), grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable", "InternalError", 2),
        (FaultPlan(rate_limit=True), grpc.StatusCode.RESOURCE_EXHAUSTED, "RateLimited", "RequestLimitExceeded", 3),
        (FaultPlan(malformed=True), grpc.StatusCode.UNAVAILABLE, "ProviderError", None, 3),
    ],
)
async def test_injected_faults(
    setup: Setup, plan: FaultPlan, code: grpc.StatusCode, reason: str, vendor_code: str | None, attempts: int
) -> None:
    setup.emu.set_fault(plan)
    before = setup.emu.stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await setup.realauth.create(provider="tencent")
    d = decode(err.value)
    assert (d.code, d.reason, d.metadata.get("vendor_code")) == (code, reason, vendor_code)
    assert setup.emu.stats.requests - before == attempts
    setup.emu.set_fault(None)


async def test_one_transient_fault_is_absorbed(setup: Setup) -> None:
    setup.emu.set_fault(FaultPlan(status=500, count=1))
    assert (await setup.realauth.create(provider="tencent")).token


# --- the emulator's own checks, with raw signed requests ------------------------------------------


async def _raw(
    url: str,
    client: httpx.AsyncClient,
    body: bytes,
    *,
    action: str = "ApplyWebVerificationBizTokenIntl",
    version: str = "2018-03-01",
    region: str = "ap-singapore",
    now: float | None = None,
) -> dict[str, object]:
    headers = tc3.sign_tc3(
        "POST",
        url + "/",
        {
            "Content-Type": "application/json",
            "X-TC-Action": action,
            "X-TC-Version": version,
            "X-TC-Region": region,
        },
        body,
        secret_id=SANDBOX_SECRET_ID,
        secret_key=SANDBOX_SECRET_KEY,
        service="faceid",
        now=now if now is not None else Clock().now(),
    )
    resp = await client.post(url + "/", content=body, headers=headers)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    return json.loads(resp.content)["Response"]  # type: ignore[no-any-return]


def _code(response: dict[str, object]) -> str:
    err = response.get("Error")
    return str(err["Code"]) if isinstance(err, dict) else ""


@pytest.mark.parametrize(
    ("body", "kw", "code"),
    [
        ({"RedirectURL": "https://a.b/"}, {"version": "2017-01-01"}, "NoSuchVersion"),
        ({"RedirectURL": "https://a.b/"}, {"action": "ApplyWebVerificationBizToken"}, "InvalidAction"),
        ({"RedirectURL": "https://a.b/"}, {"region": "ap-hongkong"}, "UnsupportedRegion"),
        ({"RedirectURL": "https://a.b/"}, {"now": 1_000_000}, "AuthFailure.SignatureExpire"),
        ({}, {}, "MissingParameter"),
        ({"RedirectURL": 42}, {}, "InvalidParameter"),
        ({"RedirectURL": "not a url"}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https:///no-host"}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "ftp://a.b/"}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"Colour": 1}}, {}, "UnknownParameter"),
        ({"RedirectURL": "https://a.b/", "Config": {"CheckMode": "2"}}, {}, "InvalidParameter"),
        ({"RedirectURL": "https://a.b/", "Config": {"CheckMode": 5}}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"SecurityLevel": 0}}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"AutoDowngrade": 3}}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"LivenessRetryLimit": 100}}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"Language": "fr"}}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"Version": "GOLD"}}, {}, "InvalidParameterValue"),
        ({"RedirectURL": "https://a.b/", "Config": {"AutoSkip": 1}}, {}, "InvalidParameter"),
        ({"RedirectURL": "https://a.b/", "Extra": "x" * 1001}, {}, "InvalidParameterValue"),
        (
            {"RedirectURL": "https://a.b/", "CompareImageBase64": "data:image/png;base64,AAAA"},
            {},
            "InvalidParameterValue",
        ),
        ({"RedirectURL": "https://a.b/", "CompareImageBase64": "not base64!"}, {}, "InvalidParameterValue"),
        (
            {"RedirectURL": "https://a.b/", "CompareImageBase64": "A" * (8 * 1024 * 1024 + 4)},
            {},
            "FailedOperation.ImageSizeTooLarge",
        ),
    ],
)
async def test_emulator_refusals(body: dict[str, object], kw: dict[str, object], code: str) -> None:
    async with (
        on_loopback(lambda url: TencentEmulator(public_url=url, regions=SEED_REGIONS)) as (_, url),
        httpx.AsyncClient(timeout=10) as client,
    ):
        got = await _raw(url, client, json.dumps(body).encode(), **kw)  # type: ignore[arg-type]
        assert _code(got) == code, got
        assert got["RequestId"]
        ok = await _raw(url, client, json.dumps({"RedirectURL": "https://a.b/", "Extra": "x" * 1000}).encode())
        assert _code(ok) == "" and ok["BizToken"]


async def test_unpaced_burst_does_trip_the_emulator_limit() -> None:
    """The counterpart of the pacing test: without realauth's limiter, 25 at once exceed 20/s."""
    async with on_loopback(lambda url: TencentEmulator(public_url=url)) as (emu, url):
        body = json.dumps({"RedirectURL": "https://a.b/"}).encode()
        async with httpx.AsyncClient(timeout=10) as client:
            answers = await asyncio.gather(*(_raw(url, client, body) for _ in range(25)))
        codes = [_code(a) for a in answers]
        assert codes.count("") == 20 and codes.count("RequestLimitExceeded") == 5
        assert emu.limited == 5


def test_region_is_validated_at_start_up() -> None:
    from realauth_server.providers.base import ProviderContext, ProviderSettings

    settings = ProviderSettings(
        "t",
        "tencent",
        "https://faceid.intl.tencentcloudapi.com/",
        False,
        259_200.0,
        extra={"secret_id": "a", "secret_key": "b", "region": "ap-guangzhou"},
    )
    with pytest.raises(ValueError, match=r"providers\.t\.region"):
        TencentProvider(settings, ProviderContext(clock=Clock(), emulator_url=""))
    settings.extra.update(region="ap-bangkok", requests_per_second=21)
    with pytest.raises(ValueError, match="requests_per_second"):
        TencentProvider(settings, ProviderContext(clock=Clock(), emulator_url=""))


async def test_pacing_wait_is_charged_to_the_deadline_budget() -> None:
    from realauth_server import deadlines
    from realauth_server.errors import RateLimited
    from realauth_server.vendors.tencent.adapter import RateWindow

    limiter = RateWindow(2, 1.0)
    loop = asyncio.get_running_loop()
    with deadlines.budget(5, "caller"):
        for _ in range(2):
            async with limiter.slot(provider="t", action="A"):
                pass
        start = loop.time()
        async with limiter.slot(provider="t", action="A"):  # waits for the first permit to come back
            assert loop.time() - start >= 0.9
    with deadlines.budget(0.4, "caller"):
        async with limiter.slot(provider="t", action="A"):  # the last free permit
            pass
        start = loop.time()
        with pytest.raises(RateLimited) as err:
            async with limiter.slot(provider="t", action="A"):
                pass
        assert loop.time() - start < 0.5 and err.value.retry_after == 1.0
