"""Every outcome the sandbox pages offer, end to end over real ports: create → scripted outcome on the vendor page →
redirect / push → the neutral result at the caller (state, passed, vendor_result_code), with literal codes.

Expected codes are the vendors' own, as each adapter reports them: Seedance the redirect's ``resultCode``; Volcengine
the pushed/queried ``verify_algorithm_base_resp`` status; Megvii ``result_code`` (else the lite ``status``); Tencent
``ErrorCode``. Abandoning sends nothing (the session stays pending, then expires); a window running out is each
vendor's own (expired token, timed-out flow).
"""

from __future__ import annotations

import asyncio
import html
import re
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth_server.emulators.base import CHROME
from realauth_server.emulators.kych5 import KYC_H5
from realauth_server.http.pages import FONTS
from realauth_server.vendors.megvii.emulator import LITE_OUTCOMES
from realauth_server.vendors.tencent.emulator import OUTCOMES as TENCENT_OUTCOMES

from .conftest import ROOT, Harness, ServerFactory
from .errors_util import decode

S = pb.AUTH_SESSION_STATE_EXCHANGED, pb.AUTH_SESSION_STATE_FAILED
EXCHANGED, FAILED = S
NO_PUSH = '[providers.volcengine]\nkind = "volcengine"\nsandbox = true\ncallback_client_name = ""\ncallback_key = ""\n'
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def _with(url: str, outcome: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}outcome={outcome}"


async def _state(h: Harness, session_id: str) -> pb.AuthSession:
    return (await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session_id))).session


async def _finish(h: Harness, session: pb.AuthSession, outcome: str) -> pb.ExchangeTokenResponse:
    """Press ``outcome`` on the vendor page, follow the vendor's redirect to realauth, then ExchangeToken."""
    page = await h.http.get(_with(session.verification_url, outcome))
    assert page.status_code == 302, page.text
    location = page.headers["location"]
    assert urlsplit(location).path.startswith(f"/v1/callback/{session.session_id}/")
    landing = await h.http.get(location)
    assert landing.status_code == 302, landing.text
    if "megvii" in h.server.emulators:  # its notification runs in the background
        await asyncio.wait_for(h.emulator("megvii").pusher.settle(), 15)
    return await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))


def _check(resp: pb.ExchangeTokenResponse, state: int, code: str) -> None:
    assert (resp.session.state, resp.result.passed, resp.result.vendor_result_code) == (state, state == EXCHANGED, code)


async def _pending_then_expires(h: Harness, session: pb.AuthSession) -> None:
    """Nothing came back: ExchangeToken says pending, and the session expires once its deadline passes."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await h.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    assert decode(err.value).reason == "VerificationPending"
    assert (await _state(h, session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    due = max(session.exchange_deadline.ToSeconds(), session.expire_time.ToSeconds())
    h.clock.advance(due - h.clock.now() + 1)
    got = await _state(h, session.session_id)
    assert got.state == pb.AUTH_SESSION_STATE_EXPIRED and not got.HasField("result")


# --- Seedance: the redirect's resultCode (client codes of the kych5 page) ------------------------------------------

KYC_CASES = [
    ("pass", EXCHANGED, "10000", "210312"),
    ("liveness_failed", FAILED, "41007", "210312"),
    ("fail", FAILED, "41007", "210312"),  # the pre-outcome scripts' word
    ("no_face", FAILED, "41002", "41002"),
    ("41002", FAILED, "41002", "41002"),  # scripted by the vendor's code
    ("action_timeout", FAILED, "41003", "41003"),
    ("wrong_action", FAILED, "41006", "41006"),
    ("face_changed", FAILED, "41008", "41008"),
    ("poor_quality", FAILED, "41009", "41009"),
    ("camera_permission", FAILED, "40002", "40002"),
    ("40002", FAILED, "40002", "40002"),
    ("no_camera", FAILED, "40008", "40008"),
    ("no_webrtc", FAILED, "40001", "40001"),
]


@pytest.mark.parametrize(("outcome", "state", "code", "_volc"), KYC_CASES)
async def test_seedance_outcomes(realauth: Harness, outcome: str, state: int, code: str, _volc: str) -> None:
    session = await realauth.create(provider="seedance")
    resp = await _finish(realauth, session, outcome)
    _check(resp, state, code)
    assert bool(resp.result.group_id) == (state == EXCHANGED)


async def test_seedance_redirect_params_per_outcome(realauth: Harness) -> None:
    session = await realauth.create(provider="seedance")
    _, q = await realauth.vendor_redirect(session, "no_face")
    assert q["resultCode"] == ["41002"] and q["reqMeasureInfoValue"] == ["0"] and q["verify_type"] == ["real_time"]
    assert "algorithmBaseRespCode" not in q  # a client-side failure: no algorithm ran


async def test_seedance_abandon_sends_nothing_then_expires(realauth: Harness) -> None:
    session = await realauth.create(provider="seedance")
    page = await realauth.http.get(_with(session.verification_url, "abandon"))
    assert page.status_code == 200 and "location" not in page.headers
    await _pending_then_expires(realauth, session)


async def test_seedance_expire_runs_out_the_120_s(realauth: Harness) -> None:
    session = await realauth.create(provider="seedance", locale="en")
    page = await realauth.http.get(_with(session.verification_url, "expire"))
    assert page.status_code == 410 and "120 seconds" in page.text
    assert (await realauth.http.get(session.verification_url)).status_code == 410
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    d = decode(err.value)
    assert d.reason == "TokenExpired" and d.metadata["vendor_code"] == "ValidateExpired"
    assert (await _state(realauth, session.session_id)).state == pb.AUTH_SESSION_STATE_EXPIRED


# --- Volcengine: the verdict the encrypted push (types 0-2) or CertVerifyQuery (type 3) carries ---------------------


@pytest.mark.parametrize(("outcome", "state", "_seedance", "code"), KYC_CASES)
async def test_volcengine_outcomes_through_the_push(
    realauth: Harness, outcome: str, state: int, _seedance: str, code: str
) -> None:
    if outcome == "pass":
        code = "10000"
    session = await realauth.create(provider="volcengine")
    emu = realauth.emulator("volcengine")
    resp = await _finish(realauth, session, outcome)
    _check(resp, state, code)
    assert emu.stats.by_action.get("CertVerifyQuery", 0) == 0  # the push brought it, not the browser


@pytest.mark.parametrize(("outcome", "state", "code"), [("pass", EXCHANGED, "10000"), ("no_face", FAILED, "41002"),
                                                       ("fail", FAILED, "210312")])  # fmt: skip
async def test_volcengine_type_3_outcomes_through_the_query(
    make_realauth: ServerFactory, outcome: str, state: int, code: str
) -> None:
    h = await make_realauth(NO_PUSH)
    opts = pb.VolcengineOptions(
        h5_config=pb.VolcengineH5Config(type="3"),
        liveness_config=pb.VolcengineLivenessConfig(ref_source="0"),
        ref_image=JPEG,
    )
    session = await h.create(provider="volcengine", volcengine=opts)
    resp = await _finish(h, session, outcome)
    _check(resp, state, code)
    assert h.emulator("volcengine").stats.by_action["CertVerifyQuery"] == 1


@pytest.mark.parametrize("outcome", ["abandon", "expire"])
async def test_volcengine_abandon_and_expire_send_nothing(realauth: Harness, outcome: str) -> None:
    session = await realauth.create(provider="volcengine")
    emu = realauth.emulator("volcengine")
    page = await realauth.http.get(_with(session.verification_url, outcome))
    assert page.status_code == (200 if outcome == "abandon" else 410) and "location" not in page.headers
    assert emu.pusher.stats.delivered == 0
    if outcome == "expire":
        assert (await realauth.http.get(session.verification_url)).status_code == 410  # the config ran out
    await _pending_then_expires(realauth, session)


# --- Megvii lite: status + result_code, through the return and the notification ------------------------------------


@pytest.mark.parametrize(
    ("outcome", "state", "code", "message"),
    [
        ("pass", EXCHANGED, "1000", "SUCCESS"),
        ("not_same_person", FAILED, "2000", "PASS_LIVING_NOT_THE_SAME"),
        ("2000", FAILED, "2000", "PASS_LIVING_NOT_THE_SAME"),
        ("id_mismatch", FAILED, "3000", "ID_NUMBER_NAME_NOT_MATCH"),
        ("liveness_failed", FAILED, "4100", "FAIL_LIVING_FACE_ATTACK"),
        ("fail", FAILED, "4100", "FAIL_LIVING_FACE_ATTACK"),
        ("no_face", FAILED, "4200", "UNDETECTED_FACE"),
        ("UNDETECTED_FACE", FAILED, "4200", "UNDETECTED_FACE"),
        ("action_error", FAILED, "4200", "ACTION_ERROR"),
        ("camera_permission", FAILED, "WEBRTC_UNSUPPORTED", "WEBRTC_UNSUPPORTED"),
        ("PERMISSIONS_ERROR", FAILED, "WEBRTC_UNSUPPORTED", "WEBRTC_UNSUPPORTED"),
        ("webrtc_unsupported", FAILED, "WEBRTC_UNSUPPORTED", "WEBRTC_UNSUPPORTED"),
        ("cancel", FAILED, "CANCELLED", "CANCELLED"),
    ],
)
async def test_megvii_outcomes(realauth: Harness, outcome: str, state: int, code: str, message: str) -> None:
    session = await realauth.create(provider="megvii")
    resp = await _finish(realauth, session, outcome)
    _check(resp, state, code)
    assert resp.result.vendor_result_message == message
    if code == "2000":
        assert resp.result.score == pytest.approx(31.542)  # compared, below every threshold


async def test_megvii_timeout_notifies_without_a_browser_return(realauth: Harness) -> None:
    session = await realauth.create(provider="megvii")
    emu = realauth.emulator("megvii")
    page = await realauth.http.get(_with(session.verification_url, "timeout"))
    assert page.status_code == 410 and "location" not in page.headers and "<form" not in page.text
    await asyncio.wait_for(emu.pusher.settle(), 15)
    got = await _state(realauth, session.session_id)
    assert (got.state, got.result.passed, got.result.vendor_result_code) == (FAILED, False, "TIMEOUT")


async def test_megvii_abandon_sends_nothing_then_expires(realauth: Harness) -> None:
    session = await realauth.create(provider="megvii")
    emu = realauth.emulator("megvii")
    page = await realauth.http.get(_with(session.verification_url, "abandon"))
    assert page.status_code == 200 and "location" not in page.headers
    await asyncio.wait_for(emu.pusher.settle(), 15)
    assert emu.pusher.stats.delivered == 0
    await _pending_then_expires(realauth, session)


# --- Tencent: GetWebVerificationResultIntl ErrorCode ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "state", "code"),
    [
        ("pass", EXCHANGED, "0"),
        ("0", EXCHANGED, "0"),
        ("liveness_failed", FAILED, "1005"),
        ("fail", FAILED, "1005"),
        ("spoofed", FAILED, "1002"),
        ("not_real_person", FAILED, "1003"),
        ("no_face", FAILED, "1004"),
        ("too_dark", FAILED, "1201"),
        ("multiple_faces", FAILED, "2012"),
        ("retry_limit", FAILED, "16"),
        ("timeout", FAILED, "1409"),
        ("1409", FAILED, "1409"),
        ("user_exit", FAILED, "1410"),
    ],
)
async def test_tencent_outcomes(realauth: Harness, outcome: str, state: int, code: str) -> None:
    session = await realauth.create(provider="tencent")
    resp = await _finish(realauth, session, outcome)
    _check(resp, state, code)


async def test_tencent_abandon_stays_unfinished_then_expires(realauth: Harness) -> None:
    session = await realauth.create(provider="tencent")
    page = await realauth.http.get(_with(session.verification_url, "abandon"))
    assert page.status_code == 200 and "location" not in page.headers
    await _pending_then_expires(realauth, session)


async def test_tencent_expire_is_token_expired(realauth: Harness) -> None:
    session = await realauth.create(provider="tencent")
    page = await realauth.http.get(_with(session.verification_url, "expire"))
    assert page.status_code == 410
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(session_id=session.session_id))
    d = decode(err.value)
    assert d.reason == "TokenExpired" and d.metadata["vendor_code"] == "15"
    assert (await _state(realauth, session.session_id)).state == pb.AUTH_SESSION_STATE_EXPIRED
    # A started verification can no longer run out of its 10 minutes.
    other = await realauth.create(provider="tencent")
    assert (await realauth.http.get(other.verification_url)).status_code == 200
    assert (await realauth.http.get(_with(other.verification_url, "expire"))).status_code == 409


# --- unknown outcomes, the lists themselves ------------------------------------------------------------------------

OUTCOME_LISTS = {"seedance": KYC_H5, "volcengine": KYC_H5, "megvii": LITE_OUTCOMES, "tencent": TENCENT_OUTCOMES}


@pytest.mark.parametrize("kind", sorted(OUTCOME_LISTS))
async def test_unknown_outcome_lists_the_valid_ones_and_changes_nothing(realauth: Harness, kind: str) -> None:
    session = await realauth.create(provider=kind, locale="en")
    page = await realauth.http.get(_with(session.verification_url, "maybe<b>"))
    assert page.status_code == 400 and "location" not in page.headers
    assert "Unknown outcome &#x27;maybe&lt;b&gt;&#x27;" in page.text and "<b>" not in page.text
    for o in OUTCOME_LISTS[kind]:
        assert f"<code>{o.name}</code>" in page.text
    assert (await _state(realauth, session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
    assert (await realauth.http.get(_with(session.verification_url, "pass"))).status_code == 302  # still usable


@pytest.mark.parametrize("kind", sorted(OUTCOME_LISTS))
async def test_page_has_a_button_per_outcome(realauth: Harness, kind: str) -> None:
    session = await realauth.create(provider=kind, locale="en")
    page = await realauth.http.get(session.verification_url)
    ids = re.findall(r'<a class="btn [a-z]+" id="([a-z_]+)" href="[^"]*outcome=\1"', page.text)
    assert ids == [o.name for o in OUTCOME_LISTS[kind]]


# --- the page language, all the way down ---------------------------------------------------------------------------


def _english_chrome() -> list[str]:
    return [CHROME[k]["en"] for k in ("title", "blurb", "footer")]


@pytest.mark.parametrize("kind", ["seedance", "volcengine", "tencent", "megvii"])
@pytest.mark.parametrize("locale", ["zh", "zh-Hant", "en"])
async def test_pages_are_in_the_requested_language(realauth: Harness, kind: str, locale: str) -> None:
    session = await realauth.create(provider=kind, locale=locale)
    # Megvii's page has English and Chinese only (get_token language 0/1): zh-Hant gets the Chinese page.
    lng = "zh" if kind == "megvii" and locale == "zh-Hant" else locale
    page = (await realauth.http.get(session.verification_url)).text
    assert f'<html lang="{lng}">' in page
    for key in ("title", "blurb", "footer"):
        assert html.escape(CHROME[key][lng]) in page, key
    outcomes = OUTCOME_LISTS[kind]
    for o in outcomes:
        assert html.escape(o.label[lng]) in page
    if lng != "en":
        visible = re.sub(r"<code>.*?</code>|<small>\([^)]*\)</small>|<[^>]+>|&[a-z]+;", " ", page.split("<body>")[1])
        assert not re.search(r"[A-Za-z]{3,}\s+[A-Za-z]{3,}", visible), visible  # no English sentence anywhere
        for english in _english_chrome() + [o.label["en"] for o in outcomes]:
            assert html.escape(english) not in page
        assert FONTS[lng] and FONTS[lng].split(",")[0] in page  # a CJK font stack is named
    # The unknown-outcome page and the abandon page speak the same language.
    bad = (await realauth.http.get(_with(session.verification_url, "nope"))).text
    assert html.escape(CHROME["unknown_outcome"][lng].split("{")[0]) in bad
    left = (await realauth.http.get(_with(session.verification_url, "abandon"))).text
    assert html.escape(CHROME["left_title"][lng]) in left


async def test_megvii_sends_the_page_language(realauth: Harness) -> None:
    emu = realauth.emulator("megvii")
    for locale, language in (("en", "0"), ("zh", "1"), ("zh-Hant", "1")):
        session = await realauth.create(provider="megvii", locale=locale)
        token = parse_qs(urlsplit(session.verification_url).query)["token"][0]
        assert emu.lite[token].fields["language"] == language


async def test_a_shared_code_is_not_an_outcome(realauth: Harness) -> None:
    session = await realauth.create(provider="megvii")
    page = await realauth.http.get(_with(session.verification_url, "4200"))  # no_face and action_error share it
    assert page.status_code == 400 and "<code>no_face</code>" in page.text


@pytest.mark.parametrize("kind", sorted(OUTCOME_LISTS))
def test_every_outcome_is_documented(kind: str) -> None:
    doc = (ROOT / "docs" / "providers" / f"{kind}.md").read_text()
    table = doc[doc.index("### Sandbox outcomes") :]
    for o in OUTCOME_LISTS[kind]:
        assert f"| `{o.name}`" in table, o.name


@pytest.mark.parametrize("kind", sorted(OUTCOME_LISTS))
async def test_hostile_outcome_values_are_a_plain_400(realauth: Harness, kind: str) -> None:
    session = await realauth.create(provider=kind, locale="en")
    for raw in ("x" * 5000, "%ff%fe", "%00pass", "pass%0d%0aSet-Cookie:%20a=b", "%3Cscript%3E"):
        page = await realauth.http.get(f"{session.verification_url}&outcome={raw}")
        assert page.status_code == 400, raw
        assert "x" * 65 not in page.text and "<script>" not in page.text and "set-cookie" not in page.headers
    assert (await _state(realauth, session.session_id)).state == pb.AUTH_SESSION_STATE_PENDING
