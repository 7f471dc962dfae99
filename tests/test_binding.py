"""A vendor result completes only the session it was produced for, once (issue 8 §1), over real ports.

The attacker holds the browser (docs/security.md, threat model): they can put any vendor token or verdict into
their own session's signed landing URL. For every vendor and flow, each substitution must leave the session as
it was (never passed), answer with a plain refusal page and be counted in ``realauth_landing_refused_total``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.vendors.volcengine.adapter import SANDBOX_CALLBACK_CLIENT, SANDBOX_CALLBACK_KEY, UNBOUND_MESSAGE

from .conftest import Harness, ServerFactory
from .errors_util import decode
from .metrics_util import landing_refusals as refused
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

KEY_A = "ak-binding-alpha-0123456789"
KEY_B = "ak-binding-beta-9876543210"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64

CONFIG = f"""
[providers.seedance]
kind = "seedance"
sandbox = true

[providers.ark]
kind = "seedance"
sandbox = true
transport = "ark"

[providers.volcengine]
kind = "volcengine"
sandbox = true

[providers.megvii]
kind = "megvii"
sandbox = true

[providers.tencent]
kind = "tencent"
sandbox = true

[tenants.alpha]
keys = ["{KEY_A}"]

[tenants.beta]
keys = ["{KEY_B}"]
"""


def volc(h5_type: str) -> dict[str, Any]:
    if h5_type == "3":
        opts = pb.VolcengineOptions(
            h5_config=pb.VolcengineH5Config(type="3"),
            liveness_config=pb.VolcengineLivenessConfig(ref_source="0"),
            ref_image=JPEG,
        )
    else:
        opts = pb.VolcengineOptions(h5_config=pb.VolcengineH5Config(type=h5_type))
    return {"provider": "volcengine", "volcengine": opts}


FLOWS: dict[str, dict[str, Any]] = {
    "seedance-relay": {"provider": "seedance"},
    "seedance-ark": {"provider": "ark"},
    "volcengine-0": volc("0"),
    "volcengine-1": volc("1"),
    "volcengine-2": volc("2"),
    "volcengine-3": volc("3"),
    "megvii-lite": {
        "provider": "megvii",
        "megvii": pb.MegviiOptions(comparison_type="1", idcard_name="张三", idcard_number="110101199003071234"),
    },
    "tencent": {"provider": "tencent"},
}


def md(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@dataclass
class Attempt:
    """One session on the vendor's page: its landing URL (not yet followed) and that URL's query."""

    session: pb.AuthSession
    landing: str

    @property
    def path(self) -> str:
        return urlsplit(self.landing).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.landing).query, keep_blank_values=True)


async def bound(make_realauth: ServerFactory) -> Harness:
    h = await make_realauth(CONFIG)
    h.emulator("megvii").pusher.enabled = False  # the Megvii return alone (its push is tested below)
    return h


async def start(h: Harness, flow: str, outcome: str, key: str = KEY_A) -> Attempt:
    """Create a session and press Pass/Fail on the vendor page; the browser stops at realauth's landing URL."""
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", **FLOWS[flow])
    session = (await h.stub.CreateAuthSession(req, metadata=md(key))).session
    sep = "&" if "?" in session.verification_url else "?"
    page = await h.http.get(f"{session.verification_url}{sep}outcome={outcome}")
    if page.status_code == 200 and "<form" in page.text:  # a POST return (not used here)
        raise AssertionError("unexpected form return")
    assert page.status_code in (302, 303), page.text
    landing = page.headers["location"]
    assert urlsplit(landing).path.startswith(f"/v1/callback/{session.session_id}/"), landing
    return Attempt(session, landing)


async def read(h: Harness, session_id: str, key: str = KEY_A) -> pb.AuthSession:
    got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session_id), metadata=md(key))
    return got.session


def claim_success(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What an attacker edits: every verdict field the vendor's redirect has says success."""
    success = {"resultCode": "10000", "algorithmBaseRespCode": "0", "reqMeasureInfoValue": "1"}
    return [(k, success.get(k, v)) for k, v in query]


def snapshot(s: pb.AuthSession) -> tuple[Any, ...]:
    return (
        s.state,
        s.HasField("result"),
        s.result.SerializeToString(deterministic=True),
        s.update_time.ToNanoseconds(),
    )


async def assert_refused(h: Harness, victim: Attempt, url: str, provider: str, reasons: tuple[str, ...]) -> None:
    """The forged landing changes nothing, answers a plain page and is counted under one of ``reasons``."""
    before = snapshot(await read(h, victim.session.session_id))
    counts = {r: refused(provider, r) for r in reasons}
    resp = await h.http.get(url)
    assert resp.status_code in (400, 403, 409), (resp.status_code, resp.headers.get("location"))
    assert resp.headers["content-type"].startswith("text/html")
    assert "Verification unavailable" in resp.text and "Traceback" not in resp.text
    after = await read(h, victim.session.session_id)
    assert snapshot(after) == before
    assert not (after.HasField("result") and after.result.passed)
    assert sum(refused(provider, r) - counts[r] for r in reasons) == 1


@pytest.mark.parametrize("flow", list(FLOWS))
async def test_another_sessions_token_is_refused(make_realauth: ServerFactory, flow: str) -> None:
    """Person A passes X (not yet landed), person B fails Y; Y's landing URL with X's token and verdict."""
    h = await bound(make_realauth)
    x = await start(h, flow, "pass")
    y = await start(h, flow, "fail")
    forged = f"{h.http_url}{y.path}?{urlencode(claim_success(x.query))}"
    provider = FLOWS[flow]["provider"]
    await assert_refused(h, y, forged, provider, ("foreign_token", "token_reused"))
    # X itself is untouched by the attempt: its own landing still completes it, as passed.
    done = await h.http.get(x.landing)
    assert done.status_code == 302 and "state=exchanged" in done.headers["location"]


@pytest.mark.parametrize("flow", list(FLOWS))
async def test_another_tenants_token_is_refused(make_realauth: ServerFactory, flow: str) -> None:
    h = await bound(make_realauth)
    x = await start(h, flow, "pass", key=KEY_B)
    done = await h.http.get(x.landing)
    assert "state=exchanged" in done.headers["location"]
    y = await start(h, flow, "fail")
    forged = f"{h.http_url}{y.path}?{urlencode(claim_success(x.query))}"
    await assert_refused(h, y, forged, FLOWS[flow]["provider"], ("foreign_token", "token_reused"))


@pytest.mark.parametrize("flow", list(FLOWS))
async def test_an_already_used_token_is_refused(make_realauth: ServerFactory, flow: str) -> None:
    """X completed and exchanged; its token replayed onto Y (never started) and onto X itself."""
    h = await bound(make_realauth)
    x = await start(h, flow, "pass")
    done = await h.http.get(x.landing)
    assert "state=exchanged" in done.headers["location"]
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", **FLOWS[flow])
    y = Attempt((await h.stub.CreateAuthSession(req, metadata=md(KEY_A))).session, "")
    sig = h.server.service.landing_signature(y.session.session_id)
    forged = f"{h.http_url}/v1/callback/{y.session.session_id}/{sig}?{urlencode(x.query)}"
    provider = FLOWS[flow]["provider"]
    await assert_refused(h, y, forged, provider, ("foreign_token", "token_reused"))
    assert (await read(h, y.session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    # The same landing again on X: a replay (or, for a result pushed first, the same verdict) changes nothing.
    again = await h.http.get(x.landing)
    if again.status_code == 302:
        assert "state=exchanged" in again.headers["location"]  # pushed first: the browser's first return
    else:
        assert again.status_code == 409


@pytest.mark.parametrize("flow", [f for f in FLOWS if f != "tencent"])
async def test_a_success_code_with_a_failed_token_is_refused(make_realauth: ServerFactory, flow: str) -> None:
    """Y's own failed token, its landing edited to say success: the vendor's verdict stands, never a pass."""
    h = await bound(make_realauth)
    y = await start(h, flow, "fail")
    provider = FLOWS[flow]["provider"]
    if flow == "megvii-lite":
        # The verdict is inside the vendor-signed data: editing it breaks the sign, so the return proves nothing.
        query = dict(y.query)
        data = json.loads(query["data"])
        data.update(status="OK", result_code=1000)
        query["data"] = json.dumps(data)
        forged = f"{h.http_url}{y.path}?{urlencode(query)}"
        await assert_refused(h, y, forged, provider, ("not_finished",))
        return
    forged = f"{h.http_url}{y.path}?{urlencode(claim_success(y.query))}"
    before = refused(provider, "result_mismatch")
    resp = await h.http.get(forged)
    assert resp.status_code == 409 and "did not confirm" in resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert refused(provider, "result_mismatch") == before + 1
    got = await read(h, y.session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_FAILED and not got.result.passed
    assert got.result.vendor_result_code not in ("", "10000")  # the vendor's code, not the edited one
    # Volcengine: the push recorded the failure before the browser moved, so the edit changed nothing at all.
    if flow.startswith("volcengine"):
        await assert_refused(h, y, forged, provider, ("result_mismatch",))


async def test_tencent_landing_carries_no_verdict_to_forge(make_realauth: ServerFactory) -> None:
    """Tencent's return has only the BizToken: a failed one, whatever is added, records the vendor's failure."""
    h = await bound(make_realauth)
    y = await start(h, "tencent", "fail")
    resp = await h.http.get(y.landing + "&ErrorCode=0&resultCode=10000")
    assert resp.status_code == 302 and "state=failed" in resp.headers["location"]
    got = await read(h, y.session.session_id)
    assert not got.result.passed and got.result.vendor_result_code not in ("", "0")


async def test_a_pushed_token_of_another_session_is_refused(make_realauth: ServerFactory) -> None:
    """Defence in depth: even a vendor-sealed push completes only the session its token is bound to."""
    from .test_push_volcengine import push_body

    h = await bound(make_realauth)
    x = await start(h, "volcengine-0", "pass")  # X's push (before the redirect) bound X's token to X
    x_token = dict(x.query)["bytedToken"]
    req = pb.CreateAuthSessionRequest(callback_url="https://caller.example/done", **FLOWS["volcengine-0"])
    y = (await h.stub.CreateAuthSession(req, metadata=md(KEY_A))).session
    url = h.server.service.push_url(y.session_id)
    before = refused("volcengine", "token_reused", "push")
    resp = await h.http.post(url, json=push_body(x_token))
    assert resp.status_code == 403 and "another session" in resp.text
    assert refused("volcengine", "token_reused", "push") == before + 1
    assert (await read(h, y.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    # And X's own push URL with another token: not X's bound token.
    before = refused("volcengine", "foreign_token", "push")
    resp = await h.http.post(h.server.service.push_url(x.session.session_id), json=push_body("20260101OTHERTOKEN"))
    assert resp.status_code == 403
    assert refused("volcengine", "foreign_token", "push") == before + 1


async def test_a_megvii_notification_of_another_session_is_refused(make_realauth: ServerFactory) -> None:
    h = await bound(make_realauth)
    x = await start(h, "megvii-lite", "pass")
    y = await start(h, "megvii-lite", "fail")
    # The vendor-signed return of X (data + sign) is exactly what its notification carries.
    body = urlencode({k: v for k, v in x.query if k in ("data", "sign")}).encode()
    before = refused("megvii", "foreign_token", "push")
    resp = await h.http.post(
        h.server.service.push_url(y.session.session_id),
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 403
    assert refused("megvii", "foreign_token", "push") == before + 1
    assert (await read(h, y.session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING


# --- Volcengine types 0-2 need the push: refused without it, unless the documented opt-in ------------------------

NO_PUSH = '[providers.volcengine]\nkind = "volcengine"\nsandbox = true\ncallback_client_name = ""\ncallback_key = ""\n'


@pytest.mark.parametrize("h5_type", ["", "0", "1", "2"])
async def test_types_0_to_2_without_a_callback_are_refused_at_create(
    make_realauth: ServerFactory, h5_type: str
) -> None:
    h = await make_realauth(NO_PUSH)
    fields: dict[str, Any] = {"provider": "volcengine"}
    if h5_type:
        fields["volcengine"] = pb.VolcengineOptions(h5_config=pb.VolcengineH5Config(type=h5_type))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.create(**fields)
    d = decode(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT
    assert d.fields == ["volcengine.h5_config.type"] and "callback_key" in d.message
    assert h.emulator("volcengine").stats.by_action.get("CertH5ConfigInit", 0) == 0
    # Type 3 knows its token in advance: it needs no push.
    assert (await h.create(**volc("3"))).token


async def test_landing_before_the_push_is_completed_but_never_exchanged_with_the_browsers_token(
    make_realauth: ServerFactory,
) -> None:
    """Background push (callback_block false): the landing may win the race; the push then decides."""
    h = await make_realauth(
        '[providers.volcengine]\nkind = "volcengine"\nsandbox = true\n'
        f'callback_client_name = "{SANDBOX_CALLBACK_CLIENT}"\ncallback_key = "{SANDBOX_CALLBACK_KEY}"\n'
        "callback_block = false\n"
    )
    emu = h.emulator("volcengine")
    emu.pusher.enabled = False  # hold the push back: the landing arrives first
    session = await h.create(provider="volcengine")
    page = await h.http.get(session.verification_url + "&outcome=fail")
    landing = page.headers["location"].replace("resultCode=41007", "resultCode=10000")
    done = await h.http.get(landing)
    assert done.status_code == 302 and "state=completed" in done.headers["location"]
    assert emu.stats.by_action.get("CertVerifyQuery", 0) == 0  # the browser's token was never used
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert decode(err.value).reason == "VerificationPending"
    # The vendor's push arrives: it binds its token and records the vendor's verdict.
    from .test_push_volcengine import push_body

    token = dict(parse_qsl(urlsplit(landing).query))["bytedToken"]
    resp = await h.http.post(h.server.service.push_url(session.session_id), json=push_body(token, passed=False))
    assert resp.status_code == 200
    got = await read_plain(h, session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_FAILED and not got.result.passed
    assert got.result.vendor_result_code == "210312"


async def read_plain(h: Harness, session_id: str) -> pb.AuthSession:
    return (await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session_id))).session


async def test_allow_unbound_results_opt_in_never_reports_a_pass(
    make_realauth: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_realauth(NO_PUSH + "allow_unbound_results = true\n")
    assert any("allow_unbound_results is on" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    x = await h.create(provider="volcengine")
    page = await h.http.get(x.verification_url + "&outcome=pass")
    done = await h.http.get(page.headers["location"])
    assert done.status_code == 302 and "state=failed" in done.headers["location"]
    got = await read_plain(h, x.session_id)
    assert not got.result.passed and got.result.vendor_result_message.startswith(UNBOUND_MESSAGE)
    assert got.result.vendor_result_code == "10000"  # what the vendor said, kept for the caller to see
    # Even unbound, a token completes one session only.
    y = await h.create(provider="volcengine")
    sig = h.server.service.landing_signature(y.session_id)
    forged = f"{h.http_url}/v1/callback/{y.session_id}/{sig}?{urlsplit(page.headers['location']).query}"
    before = refused("volcengine", "token_reused")
    resp = await h.http.get(forged)
    assert resp.status_code == 403
    assert refused("volcengine", "token_reused") == before + 1
    assert (await read_plain(h, y.session_id)).state == pb.AUTH_SESSION_STATE_PENDING


# --- across replicas: the claim lives in the shared store ----------------------------------------------------------


async def test_a_token_completes_one_session_across_replicas(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
) -> None:
    """Two replicas, one Redis, one vendor: the claim made on one replica refuses the token on the other."""
    from realauth_server.clock import Clock
    from realauth_server.vendors.registry import VENDORS
    from realauth_server.vendors.volcengine.adapter import (
        SANDBOX_ACCESS_KEY_ID,
        SANDBOX_ROLE_TRN,
        SANDBOX_SECRET_ACCESS_KEY,
    )

    from .conftest import on_loopback
    from .test_push_volcengine import push_body

    async with on_loopback(lambda url: VENDORS["volcengine"].emulator_class()(clock=Clock(), public_url=url)) as (
        emu,
        url,
    ):
        emu.pusher.enabled = False  # the test delivers the vendor's pushes itself, to the replica it chooses
        base = f"{url}/"
        cfg = (
            f'[providers.volcengine]\nkind = "volcengine"\nbase_url = "{base}"\nsts_base_url = "{url}"\n'
            f'h5_url = "{url}/h5"\naccess_key_id = "{SANDBOX_ACCESS_KEY_ID}"\n'
            f'secret_access_key = "{SANDBOX_SECRET_ACCESS_KEY}"\nrole_trn = "{SANDBOX_ROLE_TRN}"\n'
            f'callback_client_name = "{SANDBOX_CALLBACK_CLIENT}"\ncallback_key = "{SANDBOX_CALLBACK_KEY}"\n'
        )
        a = await make_realauth(cfg, store=redis_url)
        b = await make_realauth(cfg, store=redis_url)
        x = await a.create(provider="volcengine")
        y = await b.create(provider="volcengine")
        x_page = await a.http.get(x.verification_url + "&outcome=pass")
        y_page = await b.http.get(y.verification_url + "&outcome=fail")
        x_token = dict(parse_qsl(urlsplit(x_page.headers["location"]).query))["bytedToken"]
        # X's push reaches replica A: it binds and claims X's token in the shared store.
        ok = await a.http.post(a.server.service.push_url(x.session_id), json=push_body(x_token))
        assert ok.status_code == 200
        # Y's push is late; Y's landing on replica B carries X's token: refused from the claim alone.
        y_path = urlsplit(y_page.headers["location"]).path
        forged = f"{b.http_url}{y_path}?{urlsplit(x_page.headers['location']).query}"
        before = refused("volcengine", "token_reused")
        resp = await b.http.get(forged)
        assert resp.status_code == 403
        assert refused("volcengine", "token_reused") == before + 1
        got = await b.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=y.session_id))
        assert got.session.state == pb.AUTH_SESSION_STATE_PENDING
        # X's (sealed) push replayed to Y's push URL on replica B: refused too, nothing recorded.
        resp = await b.http.post(b.server.service.push_url(y.session_id), json=push_body(x_token))
        assert resp.status_code == 403
        assert emu.stats.by_action.get("CertVerifyQuery", 0) == 0  # no browser token was ever queried


async def test_two_sessions_racing_for_one_unbound_token_only_one_records(make_realauth: ServerFactory) -> None:
    """With the opt-in, the claim still makes a token complete one session: two landings at once, one result."""
    import asyncio

    h = await make_realauth(NO_PUSH + "allow_unbound_results = true\n")
    x = await h.create(provider="volcengine")
    y = await h.create(provider="volcengine")
    page = await h.http.get(x.verification_url + "&outcome=pass")
    query = urlsplit(page.headers["location"]).query
    urls = [
        f"{h.http_url}/v1/callback/{s.session_id}/{h.server.service.landing_signature(s.session_id)}?{query}"
        for s in (x, y)
    ]
    before = refused("volcengine", "token_reused")
    answers = await asyncio.gather(*(h.http.get(u) for u in urls))
    results = [(await read_plain(h, s.session_id)).HasField("result") for s in (x, y)]
    assert sorted(r.status_code for r in answers) == [302, 403]
    assert results.count(True) == 1
    assert refused("volcengine", "token_reused") == before + 1
