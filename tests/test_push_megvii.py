"""Megvii lite ``notify_url`` pushes over real ports: the emulator's server POST → realauth's push route.

The test signs its own notifications with hashlib (``sha1(api_secret + data)``, vendors.md §4.2), not with
realauth's signing module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import web

from realauth.v1 import realauth_pb2 as pb
from realauth_server.vendors.megvii.adapter import SANDBOX_API_KEY, SANDBOX_API_SECRET
from realauth_server.vendors.megvii.emulator import MegviiEmulator

from .conftest import Harness, ServerFactory, on_loopback

T = TypeVar("T")
IDCARD = pb.MegviiOptions(comparison_type="1", idcard_name="张三", idcard_number="110101199003071234")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def emu(h: Harness) -> MegviiEmulator:
    e: MegviiEmulator = h.emulator("megvii")
    return e


def results(h: Harness, session: pb.AuthSession) -> int:
    """get_result calls the emulator answered for this session."""
    return emu(h).by_biz_id[session.token].result_calls


async def state(h: Harness, session_id: str) -> pb.AuthSession:
    return (await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session_id))).session


def notification(biz_id: str, status: str = "OK", secret: str = SANDBOX_API_SECRET, **extra: Any) -> dict[str, str]:
    data: dict[str, Any] = {"status": status, "biz_info": {"biz_id": biz_id, "biz_no": "n", "biz_extra_data": ""}}
    if status == "OK":
        data.update(
            result_code=1000,
            result_message="SUCCESS",
            verification={"idcard": {"confidence": 70.5, "thresholds": {"1e-3": 62.169}}},
        )
    data.update(extra)
    text = json.dumps(data, separators=(",", ":"))
    return {"data": text, "sign": hashlib.sha1((secret + text).encode()).hexdigest()}


async def test_notify_records_pass_although_the_browser_never_returns(realauth: Harness) -> None:
    session = await realauth.create(provider="megvii", megvii=IDCARD)
    push_url = realauth.server.service.push_url(session.session_id)
    token = parse_qs(urlsplit(session.verification_url).query)["token"][0]
    assert emu(realauth).lite[token].fields["notify_url"] == push_url
    page = await realauth.http.get(session.verification_url + "&outcome=pass")
    assert page.status_code == 302  # the browser stops here
    await asyncio.wait_for(emu(realauth).pusher.settle(), 15)
    assert emu(realauth).pusher.stats.delivered == 1
    got = await state(realauth, session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_EXCHANGED
    assert got.result.passed and got.result.vendor_result_code == "1000"
    assert got.result.vendor_result_message == "SUCCESS" and got.result.score == pytest.approx(88.917)
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
    assert resp.result == got.result and results(realauth, session) == 0  # no get_result call spent
    landing = await realauth.http.get(page.headers["location"])
    assert landing.status_code == 302
    assert parse_qs(urlsplit(landing.headers["location"]).query)["state"] == ["exchanged"]


@pytest.mark.parametrize(
    ("outcome", "state_", "code", "message"),
    [
        ("fail", pb.AUTH_SESSION_STATE_FAILED, "4100", "FAIL_LIVING_FACE_ATTACK"),
        ("cancel", pb.AUTH_SESSION_STATE_FAILED, "CANCELLED", "CANCELLED"),
    ],
)
async def test_notify_records_failures(
    realauth: Harness, outcome: str, state_: pb.AuthSessionState, code: str, message: str
) -> None:
    session = await realauth.create(provider="megvii")
    page = await realauth.http.get(session.verification_url + f"&outcome={outcome}")
    assert page.status_code == 302
    await asyncio.wait_for(emu(realauth).pusher.settle(), 15)
    got = await state(realauth, session.session_id)
    assert got.state == state_ and not got.result.passed
    assert (got.result.vendor_result_code, got.result.vendor_result_message) == (code, message)
    resp = await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert not resp.result.passed and results(realauth, session) == 0
    landing = await realauth.http.get(page.headers["location"])
    assert "state=failed" in landing.headers["location"]


async def test_bad_notifications_are_refused_and_change_nothing(realauth: Harness) -> None:
    emu(realauth).pusher.enabled = False
    session = await realauth.create(provider="megvii")
    other = await realauth.create(provider="megvii")
    url = realauth.server.service.push_url(session.session_id)
    good = notification(session.token)
    cases: list[tuple[str, bytes, int]] = [
        ("sign made with another secret", urlencode(notification(session.token, secret="nope")).encode(), 403),
        ("sign in upper case", urlencode({**good, "sign": good["sign"].upper()}).encode(), 403),
        ("data changed after signing", urlencode({**good, "data": good["data"].replace("70.5", "99.5")}).encode(), 403),
        ("no sign", urlencode({"data": good["data"]}).encode(), 400),
        ("no data", urlencode({"sign": good["sign"]}).encode(), 400),
        ("two data fields", (urlencode(good) + "&" + urlencode({"data": good["data"]})).encode(), 400),
        ("another session's biz_id", urlencode(notification(other.token)).encode(), 403),
        ("no biz_info", urlencode(notification(session.token, biz_info=None)).encode(), 403),
        ("unknown status", urlencode(notification(session.token, status="MAYBE")).encode(), 400),
        ("not a form", json.dumps(good).encode(), 400),
        ("not UTF-8", b"data=\xff\xfe&sign=00", 400),
        ("oversized", urlencode({**good, "pad": "x" * 70_000}).encode(), 400),
    ]
    signed_garbage = {"data": "not json", "sign": hashlib.sha1((SANDBOX_API_SECRET + "not json").encode()).hexdigest()}
    signed_array = {"data": "[1]", "sign": hashlib.sha1((SANDBOX_API_SECRET + "[1]").encode()).hexdigest()}
    cases += [("signed, not JSON", urlencode(signed_garbage).encode(), 400)]
    cases += [("signed, not an object", urlencode(signed_array).encode(), 400)]
    for name, body, status in cases:
        resp = await realauth.http.post(url, content=body, headers=FORM)
        assert resp.status_code == status, name
        assert len(resp.text) < 200 and "70.5" not in resp.text, name
    sig = url.rsplit("/", 1)[1]
    bad_sig = url[: -len(sig)] + ("A" if sig[0] != "A" else "B") + sig[1:]
    assert (await realauth.http.post(bad_sig, content=urlencode(good).encode(), headers=FORM)).status_code == 403
    # Progress is acknowledged and records nothing.
    progress = await realauth.http.post(url, content=urlencode(notification(session.token, "PROCESSING")), headers=FORM)
    assert progress.status_code == 200
    assert (await state(realauth, session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    assert (await state(realauth, other.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    assert (await realauth.http.get(f"{realauth.http_url}/healthz")).status_code == 200
    ok = await realauth.http.post(url, content=urlencode(good).encode(), headers=FORM)
    assert ok.status_code == 200
    got = await state(realauth, session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_EXCHANGED and got.result.score == pytest.approx(70.5)
    # A second notification saying otherwise is acknowledged (the vendor stops) and changes nothing.
    fail = notification(session.token, "FAILED", result_code=4100, result_message="FAIL_LIVING_FACE_ATTACK")
    again = await realauth.http.post(url, content=urlencode(fail).encode(), headers=FORM)
    assert again.status_code == 200 and (await state(realauth, session.session_id)).result.passed


async def later(delay: float, call: Awaitable[T]) -> T:
    await asyncio.sleep(delay)
    return await call


async def test_notify_racing_an_exchange_writes_once(realauth: Harness) -> None:
    emu(realauth).pusher.enabled = False  # the test sends the notification itself, at a chosen moment
    # first: who starts first (None: both at once, overlapping in the event loop).
    for first in ("exchange", "push", None, None, None):
        session = await realauth.create(provider="megvii")
        page = await realauth.http.get(session.verification_url + "&outcome=pass")
        assert page.status_code == 302
        before = await realauth.server.store.get(session.session_id)
        queried = results(realauth, session)
        url = realauth.server.service.push_url(session.session_id)
        pushed, exchanged = await asyncio.gather(
            later(
                0.1 if first == "exchange" else 0.0,
                realauth.http.post(url, content=urlencode(notification(session.token)).encode(), headers=FORM),
            ),
            later(
                0.1 if first == "push" else 0.0,
                realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id), timeout=10),
            ),
        )
        after = await realauth.server.store.get(session.session_id)
        assert before is not None and after is not None and after.version == before.version + 1
        assert pushed.status_code == 200
        got = await state(realauth, session.session_id)
        assert exchanged.result == got.result
        # The notification says 70.5 and has no request id; get_result says 88.917 with one.
        if first == "exchange":
            assert got.result.score == pytest.approx(88.917) and got.result.vendor_request_id
            assert results(realauth, session) == queried + 1
        elif first == "push":
            assert got.result.score == pytest.approx(70.5) and not got.result.vendor_request_id
            assert results(realauth, session) == queried
        else:
            assert results(realauth, session) == queried + (1 if got.result.vendor_request_id else 0)


TENANT_KEY = "tenant-api-key-for-push-tests"
TENANT_SECRET = "tenant-api-secret-for-push-tests"
CALLER_KEY = "caller-key-push-tests-0123456789"


async def test_notify_is_verified_with_the_session_tenants_secret(make_realauth: ServerFactory) -> None:
    h = await make_realauth(
        config=f"""
[providers.megvii]
kind = "megvii"
sandbox = true

[tenants.acme]
keys = ["{CALLER_KEY}"]
[tenants.acme.credentials.megvii]
api_key = "{TENANT_KEY}"
api_secret = "{TENANT_SECRET}"
"""
    )
    emu(h).credentials[TENANT_KEY] = TENANT_SECRET
    md = (("authorization", f"Bearer {CALLER_KEY}"),)
    req = pb.CreateAuthSessionRequest(provider="megvii", callback_url="https://caller.example/done")
    session = (await h.stub.CreateAuthSession(req, metadata=md)).session
    # The emulator signs with the tenant's secret; the push is verified with it, not the provider's.
    page = await h.http.get(session.verification_url + "&outcome=pass")
    assert page.status_code == 302
    await asyncio.wait_for(emu(h).pusher.settle(), 15)
    got = (await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id), metadata=md)).session
    assert got.state == pb.AUTH_SESSION_STATE_EXCHANGED
    # A notification signed with the provider's own (sandbox) secret is refused for this tenant's session.
    other = (await h.stub.CreateAuthSession(req, metadata=md)).session
    url = h.server.service.push_url(other.session_id)
    resp = await h.http.post(url, content=urlencode(notification(other.token)).encode(), headers=FORM)
    assert resp.status_code == 403
    assert SANDBOX_API_KEY not in resp.text


async def test_shutdown_cancels_a_push_still_in_flight(make_realauth: ServerFactory) -> None:
    """A receiver that never answers must not keep the emulator (or realauth's sandbox) alive after it stops."""
    stalled, release = asyncio.Event(), asyncio.Event()

    async def never_answers(request: web.Request) -> web.Response:
        stalled.set()
        await asyncio.wait_for(release.wait(), 30)
        return web.Response()

    app = web.Application()
    app.router.add_post("/notify", never_answers)
    h = await make_realauth()
    pusher = emu(h).pusher
    async with on_loopback(lambda _url: app) as (_, url):
        emu(h).targets.append(f"{url}/notify")  # embedded, only allowed targets are pushed to
        try:
            pusher.background(f"{url}/notify", b"data=x", FORM["Content-Type"])
            await asyncio.wait_for(stalled.wait(), 5)
            started = asyncio.get_running_loop().time()
            await h.server.stop(grace=0)
            assert asyncio.get_running_loop().time() - started < 2, "shutdown waited for the stalled push"
            assert pusher.stats.attempts == 1 and pusher.stats.delivered == 0 and not pusher._tasks
        finally:
            release.set()
