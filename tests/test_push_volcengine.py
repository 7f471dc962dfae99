"""Volcengine result pushes (seed 002 CallBackInfo) over real ports: emulator → realauth's push route.

The test's own AES code follows the seed's pseudo-code with pycryptodome (an independent oracle; it comes with
the volcengine SDK dev dependency), not realauth's implementation.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from Crypto.Cipher import AES

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import FaultPlan
from realauth_server.secret import Secret
from realauth_server.signing.volc_v4 import VolcV4Signer
from realauth_server.vendors.volcengine.adapter import (
    SANDBOX_ACCESS_KEY_ID,
    SANDBOX_CALLBACK_CLIENT,
    SANDBOX_SECRET_ACCESS_KEY,
)

from .conftest import Harness, ServerFactory
from .signing_util import SignerAuth

T = TypeVar("T")
KEY = b"sbx-callback-key"  # = SANDBOX_CALLBACK_KEY ("hex:7362782d…"), written out independently
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
TYPE3 = pb.VolcengineOptions(
    h5_config=pb.VolcengineH5Config(type="3"),
    liveness_config=pb.VolcengineLivenessConfig(ref_source="0"),
    ref_image=JPEG,
)


def config(block: bool, key: str = "hex:7362782d63616c6c6261636b2d6b6579") -> str:
    return (
        '[providers.volcengine]\nkind = "volcengine"\nsandbox = true\n'
        f'callback_client_name = "{SANDBOX_CALLBACK_CLIENT}"\ncallback_key = "{key}"\n'
        f"callback_block = {'true' if block else 'false'}\n"
    )


def seal(plain: bytes, key: bytes = KEY) -> str:
    n = 16 - len(plain) % 16
    return base64.b64encode(AES.new(key, AES.MODE_CBC, key).encrypt(plain + bytes([n]) * n)).decode()


def unseal(text: str, key: bytes = KEY) -> Any:
    raw = AES.new(key, AES.MODE_CBC, key).decrypt(base64.b64decode(text))  # the seed's pseudo-code
    return json.loads(raw[: len(raw) - raw[-1]])


def push_body(token: str, passed: bool = True, key: bytes = KEY, **override: Any) -> dict[str, Any]:
    verdict = {"status_code": 0, "status_message": "SUCCESS"} if passed else {"status_code": 210312,
               "status_message": "server action liveness failed"}  # fmt: skip
    fields = {
        "source_comp_details": {"score": 77.5 if passed else 3.0, "thresholds": {"1e-3": 45.0}},
        "verify_req_measure_info": {"measure_type": "cert_pro", "value": 1 if passed else 0},
        "verify_algorithm_base_resp": verdict,
        "byted_token": token,
    }
    body: dict[str, Any] = {"result": passed, **{k: seal(json.dumps(v).encode(), key) for k, v in fields.items()}}
    body.update(override)
    return body


async def state(h: Harness, session_id: str) -> pb.AuthSession:
    return (await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session_id))).session


def queries(h: Harness) -> int:
    return int(h.emulator("volcengine").stats.by_action.get("CertVerifyQuery", 0))


async def test_blocking_push_records_pass_although_the_browser_never_returns(make_realauth: ServerFactory) -> None:
    h = await make_realauth(config(block=True))
    session = await h.create(provider="volcengine")
    emu = h.emulator("volcengine")
    cfg = emu.configs[session.token]
    push_url = h.server.service.push_url(session.session_id)
    assert cfg.body["callback_info"] == {
        "switch": True,
        "block": True,
        "url": push_url,
        "client_name": SANDBOX_CALLBACK_CLIENT,
    }
    page = await h.http.get(session.verification_url + "&outcome=pass")
    assert page.status_code == 302 and emu.pusher.stats.delivered == 1  # pushed before the redirect
    # The browser never follows the redirect; the result is already there.
    got = await state(h, session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_EXCHANGED
    assert got.result.passed and got.result.score == pytest.approx(91.27)
    assert got.result.vendor_result_code == "10000"
    before = queries(h)
    resp = await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert resp.result.passed and resp.result.score == pytest.approx(91.27)
    assert queries(h) == before == 0  # served from the store: no vendor call
    # The person's browser comes back late: it goes on to the caller with the stored state.
    landing = await h.http.get(page.headers["location"])
    assert landing.status_code == 302
    assert parse_qs(urlsplit(landing.headers["location"]).query)["state"] == ["exchanged"]
    # A replayed landing claiming another outcome changes nothing, and is refused (the vendor said otherwise).
    forged = page.headers["location"].replace("resultCode=10000", "resultCode=41007")
    again = await h.http.get(forged)
    assert again.status_code == 409 and "did not confirm" in again.text
    assert (await state(h, session.session_id)).result.vendor_result_code == "10000"
    assert queries(h) == 0
    # The vendor retrying its push is acknowledged and changes nothing.
    token = parse_qs(urlsplit(page.headers["location"]).query)["bytedToken"][0]
    retry = await h.http.post(push_url, json=push_body(token, passed=False))
    assert retry.status_code == 200
    assert (await state(h, session.session_id)).result.passed


async def test_background_push_records_fail(make_realauth: ServerFactory) -> None:
    h = await make_realauth(config(block=False))
    session = await h.create(provider="volcengine")
    emu = h.emulator("volcengine")
    page = await h.http.get(session.verification_url + "&outcome=fail")
    assert page.status_code == 302
    await asyncio.wait_for(emu.pusher.settle(), 15)
    assert emu.pusher.stats.delivered == 1
    got = await state(h, session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_FAILED
    assert not got.result.passed and got.result.score == pytest.approx(12.5)
    assert got.result.vendor_result_code == "210312" and "liveness" in got.result.vendor_result_message
    resp = await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert not resp.result.passed and queries(h) == 0
    landing = await h.http.get(page.headers["location"])
    assert "state=failed" in landing.headers["location"]


async def test_the_emulator_push_decrypts_with_the_seed_pseudo_code(make_realauth: ServerFactory) -> None:
    """Capture what the emulator sends (its URL pointed at a local receiver) and decrypt it independently."""
    from aiohttp import web

    got: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(status=500 if len(got) == 1 else 200)  # the first try fails: the emulator retries

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        h = await make_realauth(config(block=True))
        session = await h.create(provider="volcengine")
        emu = h.emulator("volcengine")
        emu.configs[session.token].body["callback_info"]["url"] = f"http://127.0.0.1:{port}/hook"
        emu.targets.append(f"http://127.0.0.1:{port}/hook")  # embedded, only allowed targets are pushed to
        page = await h.http.get(session.verification_url + "&outcome=pass")
        assert page.status_code == 302 and len(got) == 2 and got[0] == got[1]
        body = json.loads(got[1])
        assert body["result"] is True
        assert set(body) == {"result", "source_comp_details", "verify_req_measure_info",
                             "verify_algorithm_base_resp", "byted_token"}  # fmt: skip
        token = parse_qs(urlsplit(page.headers["location"]).query)["bytedToken"][0]
        assert unseal(body["byted_token"]) == token
        assert unseal(body["source_comp_details"])["score"] == pytest.approx(91.27)
        assert unseal(body["verify_algorithm_base_resp"])["status_code"] == 0
        assert emu.pusher.stats.statuses[-2:] == [500, 200]
    finally:
        await runner.cleanup()


async def test_bad_pushes_are_refused_and_change_nothing(make_realauth: ServerFactory) -> None:
    h = await make_realauth(config(block=True))
    session = await h.create(provider="volcengine", volcengine=TYPE3)  # the byted_token is known up front
    other = await h.create(provider="volcengine", volcengine=TYPE3)
    url = h.server.service.push_url(session.session_id)
    good = push_body(session.token)

    def flip(text: str) -> str:
        raw = bytearray(base64.b64decode(text))
        raw[0] ^= 0x55
        return base64.b64encode(bytes(raw)).decode()

    no_pad = base64.b64encode(AES.new(KEY, AES.MODE_CBC, KEY).encrypt(b'{"status_code": 0, "a": "xxxxx"}')).decode()
    zero_pad = base64.b64encode(AES.new(KEY, AES.MODE_CBC, KEY).encrypt(b'{"status_code":0}' + b"\0" * 15)).decode()
    cases: list[tuple[str, Any, int]] = [
        ("tampered ciphertext", {**good, "verify_algorithm_base_resp": flip(good["verify_algorithm_base_resp"])}, 400),
        ("tampered token", {**good, "byted_token": flip(good["byted_token"])}, 400),
        ("wrong key", push_body(session.token, key=b"0123456789abcdef"), 400),
        ("padding byte too large", {**good, "verify_algorithm_base_resp": no_pad}, 400),
        ("padding byte zero", {**good, "verify_algorithm_base_resp": zero_pad}, 400),
        ("not base64", {**good, "source_comp_details": "%%%"}, 400),
        ("partial block", {**good, "source_comp_details": base64.b64encode(b"short").decode()}, 400),
        ("missing result", {k: v for k, v in good.items() if k != "result"}, 400),
        ("missing byted_token", {k: v for k, v in good.items() if k != "byted_token"}, 400),
        ("result not a bool", {**good, "result": "true"}, 400),
        ("plain result flipped to a pass", {**push_body(session.token, passed=False), "result": True}, 400),
        ("another session's token", push_body(other.token), 403),
    ]
    for name, body, status in cases:
        resp = await h.http.post(url, json=body)
        assert resp.status_code == status, name
        assert "text/plain" in resp.headers["content-type"] and len(resp.text) < 200, name
    for name, raw, status in [
        ("not JSON", b"result=true", 400),
        ("JSON, not an object", b"[1, 2]", 400),
        ("not UTF-8", b"\xff\xfe\x00", 400),
        ("oversized", b"{" + b" " * (70 * 1024) + b"}", 400),
    ]:
        resp = await h.http.post(url, content=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == status, name

    # Chunked (no Content-Length) and oversized: refused as well, without reading it all.
    async def chunks() -> Any:
        for _ in range(80):
            yield b" " * 1024

    resp = await h.http.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    # Wrong signature in the URL, another session's URL signature, an unknown session.
    sig = url.rsplit("/", 1)[1]
    bad_sig = url[: -len(sig)] + ("A" if sig[0] != "A" else "B") + sig[1:]
    assert (await h.http.post(bad_sig, json=good)).status_code == 403
    other_sig = h.server.service.push_url(other.session_id).rsplit("/", 1)[1]
    assert (await h.http.post(url[: -len(sig)] + other_sig, json=good)).status_code == 403
    assert (await h.http.post(h.server.service.push_url("ses_" + "0" * 24), json=good)).status_code == 404
    assert (await h.http.get(url)).status_code == 405
    # Nothing changed, the server is fine, and the genuine push still works.
    assert (await state(h, session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    assert (await state(h, other.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    assert (await h.http.get(f"{h.http_url}/healthz")).status_code == 200
    ok = await h.http.post(url, json=good)
    assert ok.status_code == 200 and "exchanged" in ok.text
    got = await state(h, session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_EXCHANGED and got.result.score == pytest.approx(77.5)


async def test_push_to_a_provider_without_callback_is_404(make_realauth: ServerFactory) -> None:
    no_push = (
        '[providers.volcengine]\nkind = "volcengine"\nsandbox = true\ncallback_client_name = ""\ncallback_key = ""\n'
    )
    realauth = await make_realauth(no_push)  # the sandbox configures a callback by default: switched off here
    session = await realauth.create(provider="volcengine", volcengine=TYPE3)  # types 0-2 would need the push
    url = realauth.server.service.push_url(session.session_id)
    resp = await realauth.http.post(url, json=push_body(session.token))
    assert resp.status_code == 404
    assert (await state(realauth, session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING


async def later(delay: float, call: Awaitable[T]) -> T:
    await asyncio.sleep(delay)
    return await call


async def test_push_racing_an_exchange_writes_once(make_realauth: ServerFactory) -> None:
    h = await make_realauth(config(block=True))
    emu = h.emulator("volcengine")
    # first: who starts first (None: both at once); the vendor query is slowed so they overlap.
    for first in ("exchange", "push", None, None):
        session = await h.create(provider="volcengine", volcengine=TYPE3)
        config_id = parse_qs(urlsplit(session.verification_url).query)["configId"][0]
        emu.configs[config_id].body["callback_info"]["switch"] = False  # this test sends the push itself
        page = await h.http.get(session.verification_url + "&outcome=pass")
        assert page.status_code == 302
        before = await h.server.store.get(session.session_id)
        queried = queries(h)
        emu.set_fault(FaultPlan(latency=0.3, path="CertVerifyQuery"))
        url = h.server.service.push_url(session.session_id)

        pushed, exchanged = await asyncio.gather(
            later(0.1 if first == "exchange" else 0.0, h.http.post(url, json=push_body(session.token))),
            later(
                0.1 if first == "push" else 0.0,
                h.stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token), timeout=10),
            ),
        )
        emu.set_fault(None)
        after = await h.server.store.get(session.session_id)
        assert before is not None and after is not None
        assert after.version == before.version + 1  # exactly one write
        assert pushed.status_code == 200 and "exchanged" in pushed.text
        got = await state(h, session.session_id)
        assert exchanged.result == got.result  # both observers agree with the store
        # The push says 77.5, the vendor query 91.27: whichever won is what everybody sees, and the query
        # went to the vendor only when the exchange won.
        if first == "exchange":
            assert got.result.score == pytest.approx(91.27) and queries(h) == queried + 1
        elif first == "push":
            assert got.result.score == pytest.approx(77.5) and queries(h) == queried
        else:
            assert (got.result.score, queries(h)) in ((pytest.approx(91.27), queried + 1), (77.5, queried))


async def test_emulator_validates_callback_info(realauth: Harness) -> None:
    url = f"{realauth.http_url}/sandbox/volcengine/?Action=CertH5ConfigInit&Version=2022-08-31"
    auth = SignerAuth(
        VolcV4Signer(
            Secret(SANDBOX_ACCESS_KEY_ID), Secret(SANDBOX_SECRET_ACCESS_KEY), region="cn-north-1", service="cv"
        )
    )
    base = {
        "req_key": "cert_h5_config_init",
        "h5_config": {"type": "1", "redirect_url": f"{realauth.http_url}/v1/callback/ses_x/sig"},
        "liveness_config": {"ref_source": "1", "liveness_type": "motion"},
    }
    # Embedded, the emulator only pushes to this realauth's push route (tests/test_sandbox_exposure.py).
    push = f"{realauth.http_url}/v1/push/ses_x/sig"
    good = {"switch": True, "block": False, "url": push, "client_name": SANDBOX_CALLBACK_CLIENT}
    async with httpx.AsyncClient(auth=auth) as client:
        for info, code in [
            (good, 10000),
            ({**good, "switch": False, "url": "", "client_name": ""}, 10000),
            ({**good, "switch": "true"}, 50204),
            ({**good, "block": 1}, 50204),
            ({**good, "url": "not a url"}, 50200),
            ({**good, "url": ""}, 50200),
            ({**good, "url": "https://hooks.example/p"}, 50200),
            ({**good, "client_name": "nobody"}, 50200),
            ({k: v for k, v in good.items() if k != "block"}, 50201),
            ({**good, "extra": 1}, 50200),
        ]:
            resp = await client.post(url, json={**base, "callback_info": info})
            assert resp.json()["code"] == code, info


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("sbx-callback-key", True),  # 16 raw characters
        ("base64:c2J4LWNhbGxiYWNrLWtleQ==", True),
        ("hex:7362782d63616c6c6261636b2d6b6579", True),
        ("hex:7265", False),
        ("base64:***", False),
        ("seventeen-chars!!", False),
    ],
)
async def test_callback_key_encodings(make_realauth: ServerFactory, key: str, ok: bool) -> None:
    if not ok:
        with pytest.raises(Exception, match="callback_key") as err:
            await make_realauth(config(block=True, key=key))
        assert key not in str(err.value)
        return
    h = await make_realauth(config(block=True, key=key))
    session = await h.create(provider="volcengine")
    await h.http.get(session.verification_url + "&outcome=pass")
    assert (await state(h, session.session_id)).state == pb.AUTH_SESSION_STATE_EXCHANGED
