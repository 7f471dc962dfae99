"""Megvii FaceID through the gRPC API over real ports, against the emulator over real HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import FaultPlan
from realauth_server.errors import RealAuthError
from realauth_server.providers.transport import VendorResponse
from realauth_server.secret import Secret
from realauth_server.signing.megvii import data_sign, sign_fields, sign_raw
from realauth_server.vendors.megvii.adapter import SANDBOX_API_KEY, SANDBOX_API_SECRET, MegviiProvider
from realauth_server.vendors.megvii.emulator import DOC_API_KEY, GET_TOKEN, MegviiEmulator

from .conftest import Harness, ServerFactory
from .errors_util import decode
from .proc_util import run_emulator
from .signing_util import form

IDCARD = pb.MegviiOptions(comparison_type="1", idcard_name="张三", idcard_number="110101199003071234")


@pytest.fixture
async def realauth(make_realauth: ServerFactory) -> Harness:
    """These tests drive the browser return alone: the emulator's notify_url push is off (tests/test_push_megvii.py)."""
    h = await make_realauth()
    emu(h).pusher.enabled = False
    return h


def emu(h: Harness) -> MegviiEmulator:
    e: MegviiEmulator = h.emulator("megvii")
    return e


def sandbox_url(h: Harness) -> str:
    return f"{h.http_url}/sandbox/megvii"


async def create(h: Harness, **fields: Any) -> pb.AuthSession:
    fields.setdefault("provider", "megvii")
    return await h.create(**fields)


async def test_create_complete_pass_then_exchange(realauth: Harness) -> None:
    session = await create(realauth, subject_id="user-1", megvii=IDCARD)
    assert session.provider_kind == "megvii" and session.state == pb.AUTH_SESSION_STATE_PENDING
    assert session.verification_url.startswith(sandbox_url(realauth) + "/faceid/lite/do?token=")
    window = session.exchange_deadline.ToSeconds() - session.create_time.ToSeconds()
    assert 86_399 <= window <= 86_400  # get_result keeps the result one day

    page = await realauth.http.get(session.verification_url)
    assert page.status_code == 200 and "通过" in page.text

    location, q = await realauth.vendor_redirect(session)
    data = json.loads(q["data"][0])
    assert q["sign"] == [data_sign(SANDBOX_API_SECRET, q["data"][0])]
    assert data["status"] == "OK" and data["biz_info"]["biz_id"] == session.token
    assert data["biz_info"]["biz_no"] == session.session_id  # default biz_no

    done = await realauth.http.get(location)
    assert done.status_code == 302
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]

    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    r = resp.result
    assert r.passed and r.vendor_result_code == "1000" and r.vendor_result_message == "SUCCESS"
    assert r.HasField("score") and 0 < r.score <= 100
    assert re.fullmatch(r"\d+,[0-9a-f-]{36}", r.vendor_request_id)
    assert resp.session.state == pb.AUTH_SESSION_STATE_EXCHANGED
    # The single-use token: the page refuses a second run.
    assert (await realauth.http.get(session.verification_url)).status_code == 409


async def test_fail_outcome_gives_not_passed(realauth: Harness) -> None:
    session = await create(realauth)  # no options: KYC, the person enters their id on the page
    done = await realauth.complete(session, "fail")
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["failed"]
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert not resp.result.passed
    assert resp.result.vendor_result_code == "4100"
    assert resp.result.vendor_result_message == "FAIL_LIVING_FACE_ATTACK"
    assert not resp.result.HasField("score")
    assert resp.session.state == pb.AUTH_SESSION_STATE_FAILED


async def test_reference_image_comparison(realauth: Harness) -> None:
    opts = pb.MegviiOptions(comparison_type="0", image_ref=b"\xff\xd8\xff" + b"\0" * 64, web_title="开户")
    session = await create(realauth, megvii=opts)
    await realauth.complete(session, "pass")
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert resp.result.passed and resp.result.HasField("score")


async def test_post_return_with_form(make_realauth: ServerFactory) -> None:
    """The vendor's default return is a browser POST of data + sign; the landing takes the form."""
    h = await make_realauth(config='[providers.megvii]\nkind = "megvii"\nsandbox = true\nreturn_method = "POST"\n')
    session = await create(h, megvii=IDCARD)
    page = await h.http.get(session.verification_url + "&outcome=pass")
    assert page.status_code == 200
    action = re.search(r'action="([^"]+)"', page.text)
    inputs = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    assert action and set(inputs) == {"data", "sign"}
    import html

    form = {k: html.unescape(v) for k, v in inputs.items()}
    done = await h.http.post(html.unescape(action.group(1)), data=form)
    assert done.status_code == 302
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]


async def test_bad_or_missing_return_sign_changes_nothing(realauth: Harness) -> None:
    session = await create(realauth)
    first = await realauth.http.get(session.verification_url + "&outcome=pass")
    location = first.headers["location"]
    parts = urlsplit(location)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = location.split("?")[0]
    forged = dict(q, data=q["data"].replace('"OK"', '"OK" '))
    for params in (forged, dict(q, sign=q["sign"].upper()), {"data": q["data"]}, {"realauth_notify": "1", **q}):
        bad = await realauth.http.get(base, params=params)
        assert bad.status_code == 400, params
    # A sign made with another secret is refused too.
    other = dict(q, sign=data_sign("not-the-secret", q["data"]))
    assert (await realauth.http.get(base, params=other)).status_code == 400
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_PENDING
    assert (await realauth.http.get(location)).status_code == 302


async def test_pending_exchange_uses_get_result_calls_then_expires(realauth: Harness) -> None:
    session = await create(realauth)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
        d = decode(err.value)
        assert d.code == grpc.StatusCode.FAILED_PRECONDITION and d.reason == "VerificationPending"
        assert d.metadata["vendor_code"] == "NOT_STARTED"
    # Megvii answers get_result three times per biz_id; the fourth is refused.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    d = decode(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION and d.reason == "TokenExpired"
    assert d.metadata["vendor_code"] == "BAD_ARGUMENTS"


async def test_exchange_after_one_day_is_expired_without_vendor_call(realauth: Harness) -> None:
    session = await create(realauth)
    realauth.clock.advance(86_401)
    before = emu(realauth).stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert decode(err.value).reason == "TokenExpired"
    assert emu(realauth).stats.requests == before
    assert (await realauth.http.get(session.verification_url)).status_code == 410


@pytest.mark.parametrize(
    ("opts", "bad_field"),
    [
        (pb.MegviiOptions(biz_no="n" * 129), "megvii.biz_no"),
        (pb.MegviiOptions(biz_no="号" * 43), "megvii.biz_no"),  # 129 bytes in UTF-8
        (pb.MegviiOptions(biz_no="a\nb"), "megvii.biz_no"),
        (pb.MegviiOptions(biz_extra_data="x" * 4097), "megvii.biz_extra_data"),
        (pb.MegviiOptions(web_title="t" * 33), "megvii.web_title"),
        (pb.MegviiOptions(procedure_type="blink"), "megvii.procedure_type"),
        (pb.MegviiOptions(comparison_type="2"), "megvii.comparison_type"),
        (pb.MegviiOptions(comparison_type="1", idcard_name="张三"), "megvii.idcard_number"),
        (pb.MegviiOptions(comparison_type="1", idcard_number="110101199003071234"), "megvii.idcard_name"),
        (pb.MegviiOptions(idcard_name="张三"), "megvii.idcard_name"),
        (pb.MegviiOptions(comparison_type="0"), "megvii.image_ref"),
        (pb.MegviiOptions(comparison_type="1", idcard_name="a", idcard_number="b", image_ref=b"x"), "megvii.image_ref"),
        (pb.MegviiOptions(comparison_type="0", image_ref=b"x" * (2 * 1024 * 1024 + 1)), "megvii.image_ref"),
        (pb.MegviiOptions(liveness_id="scene-1"), "megvii.liveness_id"),
    ],
)
async def test_invalid_options_name_the_field_before_any_vendor_call(
    realauth: Harness, opts: pb.MegviiOptions, bad_field: str
) -> None:
    before = emu(realauth).stats.requests
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(realauth, megvii=opts)
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.reason == "InvalidParameter"
    assert d.fields == [bad_field] and bad_field in d.message
    assert emu(realauth).stats.requests == before


async def test_limits_at_the_edge_are_accepted(realauth: Harness) -> None:
    opts = pb.MegviiOptions(biz_no="n" * 128, biz_extra_data="x" * 4096, web_title="t" * 32, procedure_type="still")
    session = await create(realauth, megvii=opts)
    first = await realauth.http.get(session.verification_url + "&outcome=pass")
    data = json.loads(parse_qs(urlsplit(first.headers["location"]).query)["data"][0])
    assert data["biz_info"]["biz_no"] == "n" * 128 and data["biz_info"]["biz_extra_data"] == "x" * 4096
    assert data["liveness_result"]["procedure_type"] == "still"


async def test_get_result_faults_are_injected_and_retried(realauth: Harness) -> None:
    """get_result is a GET API call: it is faulted and counted like the POSTs (browser pages are not)."""
    session = await create(realauth)
    location, _ = await realauth.vendor_redirect(session)
    e = emu(realauth)
    e.set_fault(FaultPlan(status=500, count=1, path="get_result"))
    done = await realauth.http.get(location)  # the landing's exchange meets one 500, then succeeds
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["exchanged"]
    assert e.stats.faulted == 1 and e.stats.by_action["GetResult"] == 2


async def test_internal_error_is_retried_then_succeeds(realauth: Harness) -> None:
    e = emu(realauth)
    e.set_fault(FaultPlan(status=500, count=1))
    before = e.stats.by_action.get("GetToken", 0)
    session = await create(realauth)
    assert session.token
    assert e.stats.by_action["GetToken"] == before + 2 and e.fault is not None and e.fault.count == 0


async def test_hang_gives_deadline_exceeded_within_caller_deadline(realauth: Harness) -> None:
    import time

    emu(realauth).set_fault(FaultPlan(hang=True))
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.CreateAuthSession(
            pb.CreateAuthSessionRequest(provider="megvii", callback_url="https://caller.example/done"), timeout=1.0
        )
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 3.0
    emu(realauth).set_fault(None)


# --- every vendor error row the emulator can produce, seen by a caller --------------------------


async def _caller_error(h: Harness) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(h)
    return decode(err.value)


@pytest.mark.parametrize(
    ("setup", "code", "reason", "vendor_code"),
    [
        (lambda e: e.discontinued.add(SANDBOX_API_KEY), "FAILED_PRECONDITION", "ProviderAuthFailed",
         "AUTHORIZATION_ERROR.API_KEY_BE_DISCONTINUED"),
        (lambda e: e.allowed_ips.update({SANDBOX_API_KEY: {"192.0.2.1"}}), "FAILED_PRECONDITION",
         "ProviderAuthFailed", "AUTHORIZATION_ERROR.IP_NOT_ALLOWED"),
        (lambda e: e.denied.update({SANDBOX_API_KEY: {GET_TOKEN}}), "FAILED_PRECONDITION", "ProviderAuthFailed",
         "AUTHORIZATION_ERROR.DENIED"),
        (lambda e: e.no_kyc.add(SANDBOX_API_KEY), "FAILED_PRECONDITION", "ProviderAuthFailed",
         "AUTHORIZATION_ERROR.DENIED"),
        (lambda e: e.call_limits.update({SANDBOX_API_KEY: 0}), "RESOURCE_EXHAUSTED", "RateLimited",
         "AUTHORIZATION_ERROR.LIMIT_REACHED"),
        (lambda e: e.set_fault(FaultPlan(rate_limit=True)), "RESOURCE_EXHAUSTED", "RateLimited",
         "CONCURRENCY_LIMIT_EXCEEDED"),
        (lambda e: e.set_fault(FaultPlan(status=500)), "UNAVAILABLE", "ProviderUnavailable", "INTERNAL_ERROR"),
        (lambda e: e.credentials.update({SANDBOX_API_KEY: "rotated"}), "FAILED_PRECONDITION", "ProviderAuthFailed",
         "AUTHENTICATION_ERROR"),
    ],
)  # fmt: skip
async def test_vendor_error_rows_at_the_caller(
    realauth: Harness, setup: Any, code: str, reason: str, vendor_code: str
) -> None:
    setup(emu(realauth))
    d = await _caller_error(realauth)
    assert d.code == getattr(grpc.StatusCode, code) and d.reason == reason
    assert d.metadata["vendor_code"] == vendor_code and d.metadata.get("provider") == "megvii"
    assert SANDBOX_API_SECRET not in d.message


async def test_retriable_rows_are_retried(realauth: Harness) -> None:
    e = emu(realauth)
    e.set_fault(FaultPlan(rate_limit=True, count=1))
    assert (await create(realauth)).token  # one CONCURRENCY_LIMIT_EXCEEDED, then success
    e.call_limits[SANDBOX_API_KEY] = 0
    before = e.stats.by_action.get("GetToken", 0)
    await _caller_error(realauth)
    assert e.stats.by_action["GetToken"] == before + 1  # LIMIT_REACHED is not retried


async def test_api_not_found_and_bad_arguments_rows(make_realauth: ServerFactory) -> None:
    h = await make_realauth(
        config='[providers.megvii]\nkind = "megvii"\nsandbox = true\nnotify_url = "http://"\n'
        '[providers.lost]\nkind = "megvii"\nsandbox = true\nbase_url = "http://127.0.0.1:1/x"\n'
    )
    d = await _caller_error(h)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.reason == "InvalidParameter"
    assert d.metadata["vendor_code"] == "BAD_ARGUMENTS" and "notify_url" in d.message
    # A base_url pointing at a wrong path under /faceid: API_NOT_FOUND.
    lost = h.server.service.providers["lost"]
    lost.settings.base_url = f"{h.http_url}/sandbox/megvii/faceid/v9"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.create(provider="lost")
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INTERNAL and d.reason == "InternalError"
    assert d.metadata["vendor_code"] == "API_NOT_FOUND"


# --- rows only a signed (v5) or hand-made request can produce, through the adapter's parser ------


async def _post(h: Harness, path: str, fields: dict[str, str]) -> httpx.Response:
    return await h.http.post(sandbox_url(h) + path, **form(fields))


def _vendor_answer(status: int, body: dict[str, str]) -> VendorResponse:
    return VendorResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


def _mapped(h: Harness, response: httpx.Response | VendorResponse) -> RealAuthError:
    provider = h.server.service.providers["megvii"]
    assert isinstance(provider, MegviiProvider)
    if isinstance(response, httpx.Response):  # the emulator's answer, read by the adapter as the transport gives it
        response = VendorResponse(response.status_code, response.headers, response.content)
    with pytest.raises(RealAuthError) as err:
        provider.read_envelope(response, "test")
    return err.value


async def test_sign_and_argument_rows_through_the_parser(realauth: Harness) -> None:
    key, secret = Secret(SANDBOX_API_KEY), Secret(SANDBOX_API_SECRET)
    now = realauth.clock.now()
    v5 = "/faceid/v5/sdk/get_biz_token"
    cases: list[tuple[str, dict[str, str], int, str, str, type]] = [
        (v5, {"liveness_id": "s"}, 400, "MISSING_ARGUMENTS: sign", "MISSING_ARGUMENTS", Exception),
        (v5, {**sign_fields(key, secret, now=now), "sign_version": "hmac_sha256", "liveness_id": "s"}, 400,
         "BAD_ARGUMENTS: sign_version", "BAD_ARGUMENTS", Exception),
        (v5, {**sign_fields(key, secret, now=now - 1000, ttl=60), "liveness_id": "s"}, 403,
         "AUTHORIZATION_ERROR: EXPIRED_SIGN", "AUTHORIZATION_ERROR.EXPIRED_SIGN", Exception),
        (v5, {**sign_fields(key, Secret("wrong"), now=now), "liveness_id": "s"}, 403,
         "AUTHORIZATION_ERROR: INVALID_SIGN", "AUTHORIZATION_ERROR.INVALID_SIGN", Exception),
        (v5, {**sign_fields(Secret("nobody"), secret, now=now), "liveness_id": "s"}, 403,
         "AUTHENTICATION_ERROR", "AUTHENTICATION_ERROR", Exception),
        (v5, {**sign_fields(key, secret, now=now)}, 400, "MISSING_ARGUMENTS: liveness_id", "MISSING_ARGUMENTS",
         Exception),
        (v5, {**sign_fields(key, secret, now=now), "liveness_id": "s", "uuid": "u" * 129}, 400,
         "BAD_ARGUMENTS: uuid", "BAD_ARGUMENTS", Exception),
        ("/faceid/v9/nothing", {}, 404, "API_NOT_FOUND", "API_NOT_FOUND", Exception),
    ]  # fmt: skip
    expected_class = {
        "MISSING_ARGUMENTS": "InvalidParameter",
        "BAD_ARGUMENTS": "InvalidParameter",
        "AUTHORIZATION_ERROR.EXPIRED_SIGN": "ProviderAuthFailed",
        "AUTHORIZATION_ERROR.INVALID_SIGN": "ProviderAuthFailed",
        "AUTHENTICATION_ERROR": "ProviderAuthFailed",
        "API_NOT_FOUND": "InternalError",
    }
    for path, fields, status, error, vendor_code, _ in cases:
        resp = await _post(realauth, path, fields)
        body = resp.json()
        assert (resp.status_code, body["error"]) == (status, error), (path, fields)
        assert body["request_id"] and isinstance(body["time_used"], int)
        exc = _mapped(realauth, resp)
        assert exc.code == expected_class[vendor_code] and exc.vendor_code == vendor_code
        assert not exc.is_retriable


async def test_every_table_row_is_documented_and_mapped() -> None:
    from realauth_server.vendors.megvii.adapter import ERRORS, split_error

    codes = {r.vendor_code for r in ERRORS.rows}
    reasons = ("API_KEY_BE_DISCONTINUED", "IP_NOT_ALLOWED", "LIMIT_REACHED", "DENIED", "EXPIRED_SIGN", "INVALID_SIGN")
    seed_codes = [
        "MISSING_ARGUMENTS",
        "BAD_ARGUMENTS",
        "AUTHENTICATION_ERROR",
        "CONCURRENCY_LIMIT_EXCEEDED",
        "API_NOT_FOUND",
        "INTERNAL_ERROR",
        *(f"AUTHORIZATION_ERROR.{r}" for r in reasons),
    ]
    for seed_code in seed_codes:
        assert seed_code in codes
    retriable = {r.vendor_code for r in ERRORS.rows if r.retriable}
    assert retriable == {"INTERNAL_ERROR", "CONCURRENCY_LIMIT_EXCEEDED"}
    assert split_error("AUTHORIZATION_ERROR: Denied") == ("AUTHORIZATION_ERROR.DENIED", "Denied")
    assert split_error("BAD_ARGUMENTS: biz_no") == ("BAD_ARGUMENTS", "biz_no")
    unknown = ERRORS.lookup("AUTHORIZATION_ERROR.SOMETHING_NEW")
    assert unknown is not None and unknown.vendor_code == "AUTHORIZATION_ERROR"


# --- the v5 app flow in the emulator -------------------------------------------------------------


async def test_v5_biz_token_and_verify_with_sign(realauth: Harness) -> None:
    key, secret = Secret(SANDBOX_API_KEY), Secret(SANDBOX_API_SECRET)
    now = realauth.clock.now()
    got = await _post(
        realauth, "/faceid/v5/sdk/get_biz_token", {**sign_fields(key, secret, now=now), "liveness_id": "s1"}
    )
    assert got.status_code == 200
    body = got.json()
    assert set(body) == {"request_id", "time_used", "biz_token"}
    verify = {
        **sign_fields(key, secret, now=now),
        "biz_token": body["biz_token"],
        "comparison_type": "1",
        "data_type": "0",
        "idcard_name": "张三",
        "idcard_number": "110101199003071234",
    }
    early = (await _post(realauth, "/faceid/v5/sdk/verify", verify)).json()
    assert early["result_code"] == 4200  # the SDK has not run
    run = await realauth.http.put(
        sandbox_url(realauth) + "/_emulator/sdk_run", json={"biz_token": body["biz_token"], "outcome": "pass"}
    )
    assert run.status_code == 200
    ok = (await _post(realauth, "/faceid/v5/sdk/verify", verify)).json()
    assert ok["result_code"] == 1000 and ok["verification"]["idcard"]["confidence"] > 0
    # biz_token lives one hour.
    realauth.clock.advance(3601)
    verify.update(sign_fields(key, secret, now=realauth.clock.now()))
    late = (await _post(realauth, "/faceid/v5/sdk/verify", verify)).json()
    assert late["result_code"] == 4200
    # The published documentation key is accepted with its own sign.
    doc = await _post(
        realauth, "/faceid/v5/sdk/get_biz_token",
        {"sign": sign_raw("UjYGdN9CBZKsDBLB5-5v3DykPXY6dw3q", f"a={DOC_API_KEY}&b={int(realauth.clock.now()) + 9}"
                          f"&c={int(realauth.clock.now())}&d=0000000001"), "sign_version": "hmac_sha1",
         "liveness_id": "s"},
    )  # fmt: skip
    assert doc.status_code == 200, doc.text


async def test_unknown_paths_and_methods_under_faceid(realauth: Harness) -> None:
    for method, path in (("POST", "/faceid/v5/sdk/nothing"), ("GET", "/faceid/lite/get_token"), ("GET", "/faceid")):
        resp = await realauth.http.request(method, sandbox_url(realauth) + path)
        if path == "/faceid":
            assert resp.status_code == 404
            continue
        assert resp.status_code == 404 and resp.json()["error"] == "API_NOT_FOUND", (method, path)


def test_standalone_emulator_serves_vendor_paths(tmp_path: Path) -> None:
    with run_emulator("megvii", tmp_path) as base, httpx.Client(base_url=base, timeout=5) as client:
        resp = client.post(
            "/faceid/lite/get_token",
            **form(
                {
                    "api_key": SANDBOX_API_KEY,
                    "api_secret": SANDBOX_API_SECRET,
                    "return_url": "https://caller.example/back",
                    "notify_url": "https://caller.example/notify",
                    "biz_no": "order-1",
                    "comparison_type": "1",
                    "idcard_mode": "2",
                    "action_http_method": "GET",
                }
            ),
        )
        assert resp.status_code == 200, resp.text
        token = resp.json()["token"]
        page = client.get("/faceid/lite/do", params={"token": token, "outcome": "pass"})
        assert page.status_code == 302 and page.headers["location"].startswith("https://caller.example/back?data=")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"flow": "sdk"}, "flow"),
        ({"procedure_type": "blink"}, "procedure_type"),
        ({"return_method": "PUT"}, "return_method"),
        ({"notify_url": "ftp://x"}, "notify_url"),
    ],
)
def test_bad_configuration_is_refused_with_the_key(extra: dict[str, str], message: str) -> None:
    from realauth_server.clock import Clock
    from realauth_server.providers.base import ProviderContext, ProviderSettings

    settings = ProviderSettings(
        name="m", kind="megvii", base_url="https://api.megvii.com", sandbox=False, exchange_window=86400, extra=extra
    )
    with pytest.raises(ValueError, match=f"providers.m.{message}"):
        MegviiProvider(settings, ProviderContext(clock=Clock(), emulator_url=""))


async def test_megvii_errors_go_through_the_shared_error_table(realauth: Harness) -> None:
    """Megvii reads its envelope through the base pipeline like every vendor: an unknown code is a ProviderError that
    is not retried (the table's rule), and get_result's biz_id row is found by its own key, not the bare code."""
    unknown = _mapped(realauth, _vendor_answer(400, {"error": "NEW_CODE: x", "request_id": "r1"}))
    assert type(unknown).__name__ == "ProviderError" and not unknown.is_retriable
    assert unknown.vendor_code == "NEW_CODE" and unknown.vendor_request_id == "r1"
    provider = realauth.server.service.providers["megvii"]
    with pytest.raises(RealAuthError) as err:
        provider.read_envelope(_vendor_answer(400, {"error": "BAD_ARGUMENTS: biz_id"}), "GetResult")
    assert err.value.code == "TokenExpired" and err.value.vendor_code == "BAD_ARGUMENTS"
