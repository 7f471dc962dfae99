"""Seedance through the gRPC API over real ports, against the emulator over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb

from .conftest import Harness
from .errors_util import decode

MODEL = "doubao-seedance-2-0-260128"
FAST = "doubao-seedance-2-0-fast-260128"


async def test_create_complete_pass_then_exchange_gives_group_id(realauth: Harness) -> None:
    session = await realauth.create(provider="seedance", model=MODEL, subject_id="user-1", locale="en")
    assert session.state == pb.AUTH_SESSION_STATE_PENDING
    assert session.provider == "seedance" and session.provider_kind == "seedance"
    assert session.token and session.verification_url.startswith(realauth.http_url + "/sandbox/seedance/h5?")
    window = session.exchange_deadline.ToSeconds() - session.create_time.ToSeconds()
    assert 119 <= window <= 120

    page = await realauth.http.get(session.verification_url)
    assert page.status_code == 200
    assert "Pass" in page.text and "Fail" in page.text  # locale en

    # The vendor page redirects to realauth's landing with the vendor's own parameters …
    location, vendor_params = await realauth.vendor_redirect(session)
    assert vendor_params["bytedToken"] == [session.token]
    assert vendor_params["resultCode"] == ["10000"]
    assert vendor_params["verify_type"] == ["real_time"]

    # … and the landing sends the browser on to the caller with neutral parameters.
    done = await realauth.http.get(location)
    assert done.status_code == 302
    target = urlsplit(done.headers["location"])
    assert target.netloc == "caller.example" and target.path == "/done"
    assert parse_qs(target.query) == {"session_id": [session.session_id], "state": ["exchanged"]}

    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    assert resp.result.passed
    assert resp.result.group_id.startswith("group-")
    assert resp.session.state == pb.AUTH_SESSION_STATE_EXCHANGED
    assert resp.response_metadata.action == "ExchangeToken" and resp.response_metadata.request_id

    # Idempotent: asking again returns the same result without a second vendor exchange.
    calls = realauth.emulator("seedance").stats.by_action.get("GroupsFromToken", 0)
    again = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert again.result.group_id == resp.result.group_id
    assert realauth.emulator("seedance").stats.by_action.get("GroupsFromToken", 0) == calls


async def test_fail_outcome_gives_not_passed(realauth: Harness) -> None:
    session = await realauth.create(model=FAST)
    done = await realauth.complete(session, "fail")
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["failed"]
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert not resp.result.passed
    assert resp.result.group_id == ""
    assert resp.result.vendor_result_code == "41007"
    assert resp.session.state == pb.AUTH_SESSION_STATE_FAILED


async def test_exchange_before_completion_is_pending(realauth: Harness) -> None:
    session = await realauth.create()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION
    assert d.reason == "VerificationPending"
    assert d.metadata["vendor_code"] == "ValidateNotReady"
    assert d.response_metadata is not None and d.response_metadata.error.code == "VerificationPending"
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_PENDING


async def test_exchange_after_window_is_token_expired_without_vendor_call(realauth: Harness) -> None:
    session = await realauth.create()
    await realauth.complete(session, "pass")  # exchanged at landing …
    late = await realauth.create()
    realauth.clock.advance(121)
    before = realauth.emulator("seedance").stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token=late.token))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION and d.reason == "TokenExpired"
    assert realauth.emulator("seedance").stats.requests == before
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=late.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_EXPIRED
    # … while the session exchanged in time keeps its result.
    kept = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert kept.result.passed and kept.result.group_id


async def test_expired_link_page_refuses(realauth: Harness) -> None:
    session = await realauth.create()
    realauth.clock.advance(121)
    page = await realauth.http.get(session.verification_url + "&outcome=pass")
    assert page.status_code == 410


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"callback_url": ""}, "callback_url"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url"),
        ({"callback_url": "/relative/path"}, "callback_url"),
        ({"callback_url": "https://example.com/" + "a" * 2100}, "callback_url"),
        ({"provider": "nosuch"}, "provider"),
        ({"model": "doubao-seedance-1-0"}, "model"),
        ({"provider": "seedance", "model": "gpt-4"}, "model"),
        ({"locale": "fr"}, "locale"),
        ({"subject_id": "u" * 129}, "subject_id"),
        ({"idempotency_key": "k" * 129}, "idempotency_key"),
        ({"subject_id": "bad\x00id"}, "subject_id"),
        ({"tencent": pb.TencentOptions(extra="x")}, "tencent"),
    ],
)
async def test_invalid_requests_name_the_field_before_any_vendor_call(
    realauth: Harness, fields: dict[str, object], bad_field: str
) -> None:
    fields.setdefault("callback_url", "https://caller.example/done")
    before = realauth.emulator("seedance").stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(pb.CreateAuthSessionRequest(**fields))  # type: ignore[arg-type]
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT
    assert d.reason == "InvalidParameter"
    assert d.fields == [bad_field]
    assert bad_field in d.message
    assert realauth.emulator("seedance").stats.requests == before


async def test_idempotency_key_returns_same_session_with_one_vendor_call(realauth: Harness) -> None:
    before = realauth.emulator("seedance").stats.by_action.get("CreateSession", 0)
    a = await realauth.create(idempotency_key="order-42")
    b = await realauth.create(idempotency_key="order-42")
    assert a.session_id == b.session_id and a.token == b.token
    assert realauth.emulator("seedance").stats.by_action["CreateSession"] == before + 1


async def test_get_unknown_session_is_not_found(realauth: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id="ses_nope"))
    assert decode(err.value).code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest())
    assert decode(err.value).fields == ["session_id"]


async def test_list_providers_in_sandbox(realauth: Harness) -> None:
    resp = await realauth.stub.ListProviders(pb.ListProvidersRequest())
    by_name = {p.name: p for p in resp.providers}
    assert by_name["seedance"].sandbox and by_name["seedance"].kind == "seedance"
    assert set(by_name["seedance"].models) == {MODEL, FAST}
    assert by_name["seedance"].exchange_window.ToSeconds() == 120
    assert sum(p.is_default for p in resp.providers) == 1


async def test_tampered_or_replayed_landing_changes_nothing(realauth: Harness) -> None:
    session = await realauth.create()
    first = await realauth.http.get(session.verification_url + "&outcome=pass")
    location = first.headers["location"]
    tampered = location.replace(f"/{session.session_id}/", f"/{session.session_id}/x")
    bad = await realauth.http.get(tampered)
    assert bad.status_code == 403
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_PENDING
    ok = await realauth.http.get(location)
    assert ok.status_code == 302
    replay = await realauth.http.get(location)
    assert replay.status_code == 409


async def test_vendor_rate_limit_is_retried_then_reported(realauth: Harness) -> None:
    from realauth_server.emulators.base import FaultPlan

    emu = realauth.emulator("seedance")
    emu.set_fault(FaultPlan(rate_limit=True, count=1))
    session = await realauth.create()  # one 429, then success on retry
    assert session.token
    emu.set_fault(FaultPlan(rate_limit=True))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.create()
    d = decode(err.value)
    assert d.code == grpc.StatusCode.RESOURCE_EXHAUSTED and d.reason == "RateLimited"
    assert d.metadata["vendor_code"] == "RequestLimitExceeded"
    assert d.retry_delay is not None
