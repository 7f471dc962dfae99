"""Tencent FaceID Intl through the gRPC API over real ports, against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb

from .conftest import Harness
from .errors_util import decode

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


async def test_create_pass_then_exchange_gives_passed_result(realauth: Harness) -> None:
    session = await realauth.create(provider="tencent", subject_id="user-7", locale="en")
    assert session.state == pb.AUTH_SESSION_STATE_PENDING and session.provider_kind == "tencent"
    assert session.verification_url == f"{realauth.http_url}/sandbox/tencent/reflect/?token={session.token}"
    assert session.expire_time.ToSeconds() - session.create_time.ToSeconds() in (599, 600)
    assert session.exchange_deadline.ToSeconds() - session.create_time.ToSeconds() in (259_199, 259_200)
    emu = realauth.emulator("tencent")
    sent = emu.last_body["ApplyWebVerificationBizTokenIntl"]
    assert sent["RedirectURL"].startswith(f"{realauth.http_url}/v1/callback/{session.session_id}/")
    assert sent["Config"] == {"Language": "en"}  # defaulted from the request locale

    page = await realauth.http.get(session.verification_url)
    assert page.status_code == 200 and "Pass" in page.text

    location, query = await realauth.vendor_redirect(session)
    assert query == {"token": [session.token]}
    done = await realauth.http.get(location)
    assert done.status_code == 302
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]

    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    assert resp.result.passed
    assert resp.result.vendor_result_code == "0" and resp.result.vendor_result_message == "Success"
    assert not resp.result.HasField("score")  # nothing was compared
    assert resp.result.vendor_request_id
    assert resp.session.state == pb.AUTH_SESSION_STATE_EXCHANGED


async def test_compare_image_gives_similarity_score_and_options_reach_the_vendor(realauth: Harness) -> None:
    config = pb.TencentWebVerificationConfig(
        check_mode=2, security_level=4, auto_skip=True, id_card_type="HKIDCard", language="th", version="PLUS"
    )
    opts = pb.TencentOptions(compare_image=PNG, extra="order-42", rule_id="1", config=config)
    session = await realauth.create(provider="tencent", locale="zh", tencent=opts)
    sent = realauth.emulator("tencent").last_body["ApplyWebVerificationBizTokenIntl"]
    assert sent["Extra"] == "order-42" and sent["RuleId"] == "1"
    assert sent["Config"] == {
        "AutoSkip": True,
        "CheckMode": 2,
        "SecurityLevel": 4,
        "IDCardType": "HKIDCard",
        "Language": "th",
        "Version": "PLUS",
    }
    import base64

    assert base64.b64decode(sent["CompareImageBase64"]) == PNG
    await realauth.complete(session, "pass")
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert resp.result.passed and resp.result.score == pytest.approx(92.35)


async def test_fail_outcome_gives_not_passed(realauth: Harness) -> None:
    session = await realauth.create(provider="tencent", locale="zh-Hant")
    assert realauth.emulator("tencent").last_body["ApplyWebVerificationBizTokenIntl"]["Config"]["Language"] == "zh-tc"
    done = await realauth.complete(session, "fail")
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["failed"]
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert not resp.result.passed
    assert resp.result.vendor_result_code == "1005"
    assert resp.result.vendor_result_message == "Liveness detection failed"
    assert resp.session.state == pb.AUTH_SESSION_STATE_FAILED


async def test_exchange_before_completion_is_pending(realauth: Harness) -> None:
    session = await realauth.create(provider="tencent")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION and d.reason == "VerificationPending"
    assert d.metadata.get("vendor_request_id")


async def test_token_not_started_within_ten_minutes_expires(realauth: Harness) -> None:
    session = await realauth.create(provider="tencent")
    realauth.clock.advance(601)
    page = await realauth.http.get(session.verification_url + "&outcome=pass")
    assert page.status_code == 410
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION and d.reason == "TokenExpired"
    assert d.metadata["vendor_code"] == "15"
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_EXPIRED


async def test_result_stays_retrievable_for_three_days(realauth: Harness) -> None:
    session = await realauth.create(provider="tencent")
    first = await realauth.http.get(session.verification_url + "&outcome=pass")
    realauth.clock.advance(2 * 86_400)  # the person's browser lands two days later
    done = await realauth.http.get(first.headers["location"])
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]
    late = await realauth.create(provider="tencent")
    realauth.clock.advance(259_201)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=late.session_id))
    assert decode(err.value).reason == "TokenExpired"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (pb.TencentOptions(config=pb.TencentWebVerificationConfig(check_mode=5)), "tencent.config.check_mode"),
        (pb.TencentOptions(config=pb.TencentWebVerificationConfig(check_mode=0)), "tencent.config.check_mode"),
        (pb.TencentOptions(config=pb.TencentWebVerificationConfig(security_level=0)), "tencent.config.security_level"),
        (pb.TencentOptions(config=pb.TencentWebVerificationConfig(auto_downgrade=3)), "tencent.config.auto_downgrade"),
        (
            pb.TencentOptions(config=pb.TencentWebVerificationConfig(liveness_retry_limit=100)),
            "tencent.config.liveness_retry_limit",
        ),
        (
            pb.TencentOptions(config=pb.TencentWebVerificationConfig(liveness_retry_limit=0)),
            "tencent.config.liveness_retry_limit",
        ),
        (
            pb.TencentOptions(config=pb.TencentWebVerificationConfig(liveness_timeout=601)),
            "tencent.config.liveness_timeout",
        ),
        (
            pb.TencentOptions(config=pb.TencentWebVerificationConfig(liveness_timeout=-1)),
            "tencent.config.liveness_timeout",
        ),
        (pb.TencentOptions(config=pb.TencentWebVerificationConfig(language="fr")), "tencent.config.language"),
        (pb.TencentOptions(config=pb.TencentWebVerificationConfig(version="GOLD")), "tencent.config.version"),
        (pb.TencentOptions(config=pb.TencentWebVerificationConfig(theme_color="blue")), "tencent.config.theme_color"),
        (
            pb.TencentOptions(config=pb.TencentWebVerificationConfig(action_list="blink;rm -rf")),
            "tencent.config.action_list",
        ),
        (pb.TencentOptions(extra="x" * 1001), "tencent.extra"),
        (pb.TencentOptions(compare_image=b"data:image/png;base64,iVBORw0KGgo="), "tencent.compare_image"),
        (pb.TencentOptions(compare_image=b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"), "tencent.compare_image"),
        (pb.TencentOptions(rule_id="r" * 129), "tencent.rule_id"),
    ],
)
async def test_option_violations_name_the_field_before_any_vendor_call(
    realauth: Harness, options: pb.TencentOptions, field: str
) -> None:
    before = realauth.emulator("tencent").stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create(provider="tencent", tencent=options)
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.reason == "InvalidParameter"
    assert d.fields == [field]
    assert field in d.message
    assert realauth.emulator("tencent").stats.requests == before


async def test_boundary_values_are_accepted(realauth: Harness) -> None:
    config = pb.TencentWebVerificationConfig(
        check_mode=4, security_level=1, auto_downgrade=2, liveness_retry_limit=99, liveness_timeout=0
    )
    session = await realauth.create(provider="tencent", tencent=pb.TencentOptions(extra="e" * 1000, config=config))
    assert session.token


async def test_oversized_compare_image_is_refused_locally(realauth: Harness) -> None:
    # 6 MiB + 1 byte encodes to just over 8 MiB of base64; gRPC must accept the request for this to count.
    image = b"\xff\xd8" + b"\x00" * (6 * 1024 * 1024 - 1)
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{realauth.server.grpc_port}", options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
    )
    from realauth.v1 import realauth_pb2_grpc as pb_grpc

    try:
        stub = pb_grpc.RealAuthServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateAuthSession(
                pb.CreateAuthSessionRequest(
                    provider="tencent",
                    callback_url="https://caller.example/done",
                    tencent=pb.TencentOptions(compare_image=image),
                )
            )
    finally:
        await channel.close()
    d = decode(err.value)
    if d.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        pytest.skip("the server's gRPC receive limit is below 8 MB of image; the field check is not reachable")
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.fields == ["tencent.compare_image"]


async def test_client_pacing_keeps_a_burst_under_the_vendor_limit(realauth: Harness) -> None:
    emu = realauth.emulator("tencent")
    before = emu.stats.by_action.get("ApplyWebVerificationBizTokenIntl", 0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sessions = await asyncio.wait_for(
        asyncio.gather(*(realauth.create(provider="tencent") for _ in range(45))), timeout=20
    )
    elapsed = loop.time() - start
    assert len({s.token for s in sessions}) == 45
    assert emu.limited == 0
    assert emu.stats.by_action["ApplyWebVerificationBizTokenIntl"] == before + 45  # no retries were needed
    assert elapsed >= 2.0  # 45 requests at <= 20 per second need at least two full windows
