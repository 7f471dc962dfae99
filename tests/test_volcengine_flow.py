"""Volcengine visual H5 through the gRPC API over real ports, against the emulator over real HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.clock import Clock
from realauth_server.emulators.base import FaultPlan

from .conftest import Harness, ServerFactory
from .errors_util import decode

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


async def test_create_pass_then_exchange(realauth: Harness) -> None:
    session = await realauth.create(provider="volcengine", subject_id="u1", locale="en")
    assert session.provider_kind == "volcengine" and session.state == pb.AUTH_SESSION_STATE_PENDING
    link = urlsplit(session.verification_url)
    q = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert link.path == "/sandbox/volcengine/h5"
    assert q["configId"] == session.token and q["lng"] == "en"
    assert q["accessKeyId"].startswith("AKTP") and q["secretAccessKey"] and q["sessionToken"]
    assert "bytedToken" not in q
    assert 899 <= session.expire_time.ToSeconds() - session.create_time.ToSeconds() <= 900

    page = await realauth.http.get(session.verification_url)
    assert page.status_code == 200 and "Pass" in page.text

    location, vendor = await realauth.vendor_redirect(session)
    assert vendor["resultCode"] == ["10000"] and vendor["algorithmBaseRespCode"] == ["0"]
    assert vendor["reqMeasureInfoValue"] == ["1"] and vendor["bytedToken"][0]
    done = await realauth.http.get(location)
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]

    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert resp.result.passed
    assert resp.result.HasField("score") and resp.result.score == pytest.approx(91.27)
    assert resp.result.vendor_result_code == "10000"
    assert resp.result.group_id == ""
    # Types 0-2: the sandbox's result push (before the redirect) brought and bound the result, not the browser.
    assert realauth.emulator("volcengine").stats.by_action.get("CertVerifyQuery", 0) == 0
    # Exchange by the session's vendor token (the config id) finds the same session.
    again = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    assert again.result.score == resp.result.score


async def test_fail_outcome_gives_not_passed_with_vendor_code(realauth: Harness) -> None:
    session = await realauth.create(provider="volcengine")
    done = await realauth.complete(session, "fail")
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["failed"]
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert not resp.result.passed
    assert resp.result.vendor_result_code == "210312"  # the vendor's verdict code, never the landing's resultCode
    assert resp.result.score == pytest.approx(12.5)
    assert "liveness" in resp.result.vendor_result_message
    assert resp.session.state == pb.AUTH_SESSION_STATE_FAILED


async def test_type_3_uses_cert_h5_token_and_checks_landing_token(realauth: Harness) -> None:
    opts = pb.VolcengineOptions(
        h5_config=pb.VolcengineH5Config(type="3"),
        liveness_config=pb.VolcengineLivenessConfig(ref_source="0", motion_list=["0", "1"], motion_count=2),
        ref_image=JPEG,
        expire_duration=7200,
    )
    session = await realauth.create(provider="volcengine", volcengine=opts)
    q = {k: v[0] for k, v in parse_qs(urlsplit(session.verification_url).query).items()}
    assert q["bytedToken"] == session.token != q["configId"]
    # expire_time is bounded by byted_token's 60 min.
    assert session.expire_time.ToSeconds() - session.create_time.ToSeconds() == pytest.approx(3600, abs=1)
    # Before the person finishes, the query says "not finished" → VerificationPending.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    d = decode(err.value)
    assert d.reason == "VerificationPending" and d.metadata["vendor_code"] == "50215.41000"
    emu = realauth.emulator("volcengine")
    assert emu.stats.by_action["CertH5Token"] >= 1
    done = await realauth.complete(session, "pass")
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]
    # byted_token is single use: the page refuses a second attempt.
    page = await realauth.http.get(session.verification_url)
    assert page.status_code == 409


async def test_pending_without_landing_makes_no_vendor_call(realauth: Harness) -> None:
    session = await realauth.create(provider="volcengine")
    emu = realauth.emulator("volcengine")
    before = emu.stats.by_action.get("CertVerifyQuery", 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert decode(err.value).reason == "VerificationPending"
    assert emu.stats.by_action.get("CertVerifyQuery", 0) == before


async def test_sts_keys_are_cached_and_config_expires(realauth: Harness) -> None:
    emu = realauth.emulator("volcengine")
    a = await realauth.create(provider="volcengine")
    b = await realauth.create(provider="volcengine")
    assert emu.stats.by_action["AssumeRole"] == 1
    assert (
        parse_qs(urlsplit(a.verification_url).query)["accessKeyId"]
        == parse_qs(urlsplit(b.verification_url).query)["accessKeyId"]
    )
    realauth.clock.advance(901)
    page = await realauth.http.get(a.verification_url)
    assert page.status_code == 410


NO_PUSH = '[providers.volcengine]\nkind = "volcengine"\nsandbox = true\ncallback_client_name = ""\ncallback_key = ""\n'
TYPE3 = pb.VolcengineOptions(
    h5_config=pb.VolcengineH5Config(type="3"),
    liveness_config=pb.VolcengineLivenessConfig(ref_source="0"),
    ref_image=JPEG,
)


async def test_query_data_kept_one_hour(make_realauth: ServerFactory) -> None:
    realauth = await make_realauth(NO_PUSH)  # no push: the result is only ever fetched with CertVerifyQuery
    session = await realauth.create(provider="volcengine", volcengine=TYPE3)
    first = await realauth.http.get(session.verification_url + "&outcome=pass")
    token = parse_qs(urlsplit(first.headers["location"]).query)["bytedToken"][0]
    emu = realauth.emulator("volcengine")
    assert emu.tokens[token].outcome == "pass"
    realauth.clock.advance(3601)
    await realauth.http.get(first.headers["location"])  # the landing's exchange finds nothing any more
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.NOT_FOUND and d.reason == "TokenNotFound"
    assert d.metadata["vendor_code"] == "50215.210102"


# --- option validation --------------------------------------------------------------------------

H5 = pb.VolcengineH5Config
LC = pb.VolcengineLivenessConfig


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        (pb.VolcengineOptions(h5_config=H5(type="4")), "volcengine.h5_config.type"),
        (pb.VolcengineOptions(h5_config=H5(show_guide="2")), "volcengine.h5_config.show_guide"),
        (pb.VolcengineOptions(h5_config=H5(show_result="yes")), "volcengine.h5_config.show_result"),
        (pb.VolcengineOptions(h5_config=H5(enable_record="x")), "volcengine.h5_config.enable_record"),
        (pb.VolcengineOptions(h5_config=H5(protocol_link="ftp://x")), "volcengine.h5_config.protocol_link"),
        (pb.VolcengineOptions(liveness_config=LC(ref_source="2")), "volcengine.liveness_config.ref_source"),
        (pb.VolcengineOptions(liveness_config=LC(ref_source="0")), "volcengine.liveness_config.ref_source"),
        (pb.VolcengineOptions(liveness_config=LC(liveness_type="smile")), "volcengine.liveness_config.liveness_type"),
        (pb.VolcengineOptions(liveness_config=LC(liveness_timeout=4)), "volcengine.liveness_config.liveness_timeout"),
        (pb.VolcengineOptions(liveness_config=LC(liveness_timeout=61)), "volcengine.liveness_config.liveness_timeout"),
        (pb.VolcengineOptions(liveness_config=LC(motion_count=0)), "volcengine.liveness_config.motion_count"),
        (pb.VolcengineOptions(liveness_config=LC(motion_count=5)), "volcengine.liveness_config.motion_count"),
        (
            pb.VolcengineOptions(liveness_config=LC(motion_list=["0", "1"], motion_count=3)),
            "volcengine.liveness_config.motion_count",
        ),
        (pb.VolcengineOptions(liveness_config=LC(motion_list=["0", "9"])), "volcengine.liveness_config.motion_list"),
        (pb.VolcengineOptions(liveness_config=LC(motion_list=["0", "0"])), "volcengine.liveness_config.motion_list"),
        (
            pb.VolcengineOptions(liveness_config=LC(motion_list=["0", "1"], fixed_motion_list=["2"])),
            "volcengine.liveness_config.fixed_motion_list",
        ),
        (
            pb.VolcengineOptions(liveness_config=LC(max_liveness_trial=0)),
            "volcengine.liveness_config.max_liveness_trial",
        ),
        (
            pb.VolcengineOptions(liveness_config=LC(max_liveness_trial=101)),
            "volcengine.liveness_config.max_liveness_trial",
        ),
        (pb.VolcengineOptions(expire_duration=59), "volcengine.expire_duration"),
        (pb.VolcengineOptions(expire_duration=7201), "volcengine.expire_duration"),
        (pb.VolcengineOptions(idcard_name="张三"), "volcengine.idcard_name"),
        (pb.VolcengineOptions(h5_config=H5(type="3")), "volcengine.idcard_name"),
        (pb.VolcengineOptions(h5_config=H5(type="3"), idcard_name="张三", idcard_no="123"), "volcengine.idcard_no"),
        (pb.VolcengineOptions(h5_config=H5(type="3"), liveness_config=LC(ref_source="0")), "volcengine.ref_image"),
    ],
)
async def test_option_violations_name_the_field(realauth: Harness, opts: pb.VolcengineOptions, field: str) -> None:
    emu = realauth.emulator("volcengine")
    before = emu.stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="volcengine", volcengine=opts)
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.reason == "InvalidParameter"
    assert d.fields == [field] and field in d.message
    assert emu.stats.requests == before


async def test_boundary_options_are_accepted_and_sent(realauth: Harness) -> None:
    opts = pb.VolcengineOptions(
        h5_config=H5(type="1", theme_color="rgba(0, 0, 0, 1)", show_guide="0", show_result="0", enable_record="0",
                      protocol_name="p", protocol_link="https://example.com/p", ignore_homepage_agreement=True,
                      ignore_bottom_text=True),
        liveness_config=LC(ref_source="1", liveness_type="reflection", liveness_timeout=60, motion_list=["3"],
                           fixed_motion_list=["3"], motion_count=1, max_liveness_trial=100),
        expire_duration=60,
    )  # fmt: skip
    session = await realauth.create(provider="volcengine", volcengine=opts)
    cfg = realauth.emulator("volcengine").configs[session.token]
    assert cfg.body["h5_config"]["ignore_bottom_text"] is True and cfg.body["expire_duration"] == 60
    assert cfg.body["liveness_config"]["max_liveness_trial"] == 100
    assert cfg.body["h5_config"]["redirect_url"].startswith(realauth.http_url + "/v1/callback/")


# --- vendor errors arrive mapped ----------------------------------------------------------------

SERVICE_ROWS: list[tuple[Any, int | None, grpc.StatusCode, str]] = [
    (50200, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    (50201, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    (50204, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    *((c, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter") for c in range(50205, 50215)),
    (50215, 210312, grpc.StatusCode.FAILED_PRECONDITION, "VerificationFailed"),
    (50215, 100000, grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable"),
    (50215, 100001, grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable"),
    (50215, 201403, grpc.StatusCode.RESOURCE_EXHAUSTED, "RateLimited"),
    (50400, None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    (50402, None, grpc.StatusCode.INTERNAL, "InternalError"),
    (50411, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    (50412, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    (50413, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    (50511, None, grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable"),
    (50512, None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    (50429, None, grpc.StatusCode.RESOURCE_EXHAUSTED, "RateLimited"),
    (50430, None, grpc.StatusCode.RESOURCE_EXHAUSTED, "RateLimited"),
    (50500, None, grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable"),
    (50501, None, grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable"),
    (60102, None, grpc.StatusCode.FAILED_PRECONDITION, "VerificationFailed"),
    ("MissingParameter", None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    ("InvalidParameter", None, grpc.StatusCode.INVALID_ARGUMENT, "InvalidParameter"),
    ("MissingAuthenticationToken", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("MissingRequestInfo", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("MissingSignature", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("InvalidTimestamp", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("ServiceNotFound", None, grpc.StatusCode.INTERNAL, "InternalError"),
    ("InvalidActionOrVersion", None, grpc.StatusCode.INTERNAL, "InternalError"),
    ("InvalidAccessKey", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("SignatureDoesNotMatch", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("LackPolicy", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("AccessDenied", None, grpc.StatusCode.FAILED_PRECONDITION, "ProviderAuthFailed"),
    ("RequestLimitExceeded", None, grpc.StatusCode.RESOURCE_EXHAUSTED, "RateLimited"),
    ("InternalError", None, grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable"),
    ("ServiceUnavailable", None, grpc.StatusCode.UNAVAILABLE, "ProviderUnavailable"),
]


def test_every_table_row_is_covered_below() -> None:
    from realauth_server.vendors.volcengine.adapter import ERRORS

    covered = {str(c) if s is None else f"{c}.{s}" for c, s, _, _ in SERVICE_ROWS} | {"50215", "50215.41000",
                                                                                       "50215.210102"}  # fmt: skip
    assert {r.vendor_code for r in ERRORS.rows} <= covered


@pytest.mark.parametrize(("code", "sub", "grpc_code", "reason"), SERVICE_ROWS)
async def test_forced_vendor_codes_arrive_mapped(
    realauth: Harness, code: Any, sub: int | None, grpc_code: grpc.StatusCode, reason: str
) -> None:
    from realauth_server.vendors.volcengine.adapter import ERRORS

    await realauth.create(provider="volcengine")  # STS keys now cached: the next call is CertH5ConfigInit
    emu = realauth.emulator("volcengine")
    emu.force(code, sub, count=-1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="volcengine")
    d = decode(err.value)
    vendor_code = str(code) if sub is None else f"{code}.{sub}"
    assert (d.code, d.reason) == (grpc_code, reason)
    assert d.metadata["vendor_code"] == vendor_code
    assert d.metadata["provider"] == "volcengine"
    rule = ERRORS.lookup(vendor_code)
    assert rule is not None
    calls = emu.stats.by_action["CertH5ConfigInit"]
    assert calls == (1 + 3 if rule.retriable else 1 + 1)  # retriable rows are retried (max_attempts 3)


async def test_natural_service_errors(realauth: Harness) -> None:
    emu = realauth.emulator("volcengine")
    await realauth.create(provider="volcengine")
    # 50430: more concurrent requests than allowed.
    emu.max_concurrent = 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="volcengine")
    assert decode(err.value).metadata["vendor_code"] == "50430"
    emu.max_concurrent = None
    # 50207: type "3" with a reference image that is not an image.
    opts = pb.VolcengineOptions(h5_config=H5(type="3"), liveness_config=LC(ref_source="0"), ref_image=b"not an image")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="volcengine", volcengine=opts)
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.metadata["vendor_code"] == "50207"
    # Fault plans in the vendor's shapes: 429 → 50429, 500 → 50500, 503 → 50501, malformed → ProviderError.
    for plan, vendor_code, grpc_code in [
        (FaultPlan(rate_limit=True, path="CertH5ConfigInit"), "50429", grpc.StatusCode.RESOURCE_EXHAUSTED),
        (FaultPlan(status=500, path="CertH5ConfigInit"), "50500", grpc.StatusCode.UNAVAILABLE),
        (FaultPlan(status=503, path="CertH5ConfigInit"), "50501", grpc.StatusCode.UNAVAILABLE),
    ]:
        emu.set_fault(plan)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await realauth.create(provider="volcengine")
        d = decode(err.value)
        assert (d.code, d.metadata["vendor_code"]) == (grpc_code, vendor_code)
    emu.set_fault(FaultPlan(malformed=True, path="CertH5ConfigInit"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="volcengine")
    assert decode(err.value).reason == "ProviderError"
    emu.set_fault(FaultPlan(rate_limit=True, count=1, path="CertH5ConfigInit"))
    assert (await realauth.create(provider="volcengine")).token  # one 50429, retried, then success


def _config(**keys: str) -> str:
    lines = ["[providers.volc]", 'kind = "volcengine"', "sandbox = true"] + [f'{k} = "{v}"' for k, v in keys.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("keys", "vendor_code"),
    [
        ({"secret_access_key": "wrong-secret"}, "SignatureDoesNotMatch"),
        ({"access_key_id": "AKLTnobody"}, "InvalidAccessKey"),
        ({"role_trn": "trn:iam::1:role/other"}, "AccessDenied"),
        (
            {"access_key_id": "AKLTsandboxrealauthnopermission", "secret_access_key": "c2FuZGJveC1uby1wZXJtaXNzaW9u"},
            "50400",
        ),
    ],
)
async def test_wrong_credentials_are_provider_auth_failed(
    make_realauth: ServerFactory, keys: dict[str, str], vendor_code: str
) -> None:
    h = await make_realauth(_config(**keys))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.create(provider="volc")
    d = decode(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION and d.reason == "ProviderAuthFailed"
    assert d.metadata["vendor_code"] == vendor_code
    for secret in keys.values():
        if "secret" in secret or "c2Fu" in secret:
            assert secret not in d.message


async def test_clock_skew_is_invalid_timestamp(realauth: Harness) -> None:
    emu = realauth.emulator("volcengine")
    emu.clock = Clock(offset=realauth.clock.offset + 901)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="volcengine")
    d = decode(err.value)
    assert d.reason == "ProviderAuthFailed" and d.metadata["vendor_code"] == "InvalidTimestamp"


async def test_h5_page_refuses_bad_links(realauth: Harness) -> None:
    session = await realauth.create(provider="volcengine")
    bad_key = session.verification_url.replace("secretAccessKey=", "secretAccessKey=x")
    assert (await realauth.http.get(bad_key)).status_code == 403
    bad_cfg = session.verification_url.replace("configId=", "configId=x")
    assert (await realauth.http.get(bad_cfg)).status_code == 404
