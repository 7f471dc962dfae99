"""TC3-HMAC-SHA256 against Tencent's published vectors and, byte for byte, the official SDK offline."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from realauth_server.clock import Clock
from realauth_server.secret import Secret
from realauth_server.signing import tc3


@pytest.fixture(autouse=True)
def _quiet_sdk_debug_log() -> Iterator[None]:
    """The SDK (a test oracle here) logs whole requests, Authorization included, at DEBUG."""
    sdk_log = logging.getLogger("tencentcloud_sdk_common")
    level = sdk_log.level
    sdk_log.setLevel(logging.INFO)
    yield
    sdk_log.setLevel(level)


# The "Signature v3" page's worked example (CVM DescribeInstances).
DOC_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
DOC_BODY = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
DOC_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}
DOC_TS = 1551113065

SDK_ID = "AKIDtestsecretid0000000000000000"
SDK_KEY = "testsecretkey00000000000000000000"
SDK_TS = 1700000000
HOST = "faceid.intl.tencentcloudapi.com"
APPLY = {"RedirectURL": "https://example.com/done", "Extra": "order-42", "Config": {"CheckMode": 2, "SecurityLevel": 3}}
GET = {"BizToken": "81EEF678-28EE-4759-A82E-6CBBBE6BC442"}


def _sig(headers: dict[str, str]) -> str:
    return headers["Authorization"].rsplit("Signature=", 1)[1]


def test_doc_example_intermediate_hashes() -> None:
    assert tc3._sha256_hex(DOC_BODY) == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    canonical = tc3.canonical_request("POST", "/", "", DOC_HEADERS, ("content-type", "host"), DOC_BODY)
    assert tc3._sha256_hex(canonical.encode()) == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    assert tc3.utc_date(DOC_TS) == "2019-02-25"


@pytest.mark.parametrize(
    ("secret_key", "expected"),
    [
        ("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"),
        ("Gu5t9xGARNpq86cd98joQYCN3*******", "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"),
    ],
)
def test_doc_worked_example(secret_key: str, expected: str) -> None:
    headers = tc3.sign_tc3(
        "POST",
        "https://cvm.tencentcloudapi.com/",
        DOC_HEADERS,
        DOC_BODY,
        secret_id=DOC_ID,
        secret_key=secret_key,
        service="cvm",
        now=DOC_TS,
    )
    assert headers["Authorization"] == (
        f"TC3-HMAC-SHA256 Credential={DOC_ID}/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={expected}"
    )
    assert headers["X-TC-Timestamp"] == str(DOC_TS)


def _faceid_headers(action: str, region: str = "ap-singapore") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Host": HOST,
        "X-TC-Action": action,
        "X-TC-Version": "2018-03-01",
        "X-TC-Region": region,
    }


@pytest.mark.parametrize(
    ("action", "params", "expected"),
    [
        ("ApplyWebVerificationBizTokenIntl", APPLY, "327bd98898dfea3de6fefb6e56b617f9966f5f44d3ea51a927439f14d654ba95"),
        ("GetWebVerificationResultIntl", GET, "5b3cd8ceecd5db73d7bc7a1f4ae45c2295497a2aa4bb166461e6dd244e8a22e6"),
    ],
)
def test_sdk_vectors(action: str, params: dict[str, Any], expected: str) -> None:
    body = json.dumps(params).encode()
    headers = tc3.sign_tc3(
        "POST",
        f"https://{HOST}/",
        _faceid_headers(action),
        body,
        secret_id=SDK_ID,
        secret_key=SDK_KEY,
        service="faceid",
        now=SDK_TS,
    )
    assert _sig(headers) == expected
    assert f"Credential={SDK_ID}/2023-11-14/faceid/tc3_request" in headers["Authorization"]


# --- the official SDK as an oracle (offline: frozen clock, captured send) -------------------------


class _Captured:
    raw = type("Raw", (), {"version": 11})()
    reason = "OK"
    text = ""
    status_code = 200
    headers: ClassVar[dict[str, str]] = {"Content-Type": "application/json"}
    content = b'{"Response": {"RequestId": "captured"}}'


def _sdk_request(
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    params: dict[str, Any],
    *,
    secret_id: str,
    secret_key: str,
    region: str,
    timestamp: int,
    token: str | None = None,
    language: str | None = None,
) -> Any:
    import tencentcloud.common.abstract_client as ac
    from tencentcloud.common import credential
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    monkeypatch.setattr(ac.time, "time", lambda: timestamp)
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=HOST))
    if language:
        profile.language = language
    profile.disable_region_breaker = True
    cred = (
        credential.Credential(secret_id, secret_key, token) if token else credential.Credential(secret_id, secret_key)
    )
    client = CommonClient("faceid", "2018-03-01", cred, region, profile)
    captured: list[Any] = []

    def capture(req: Any) -> _Captured:
        captured.append(req)
        return _Captured()

    client.request.send_request = capture
    client.call_json(action, params)
    assert len(captured) == 1
    return captured[0]


CASES = [
    ("ApplyWebVerificationBizTokenIntl", APPLY, "ap-singapore", SDK_TS, None, None),
    ("GetWebVerificationResultIntl", GET, "ap-bangkok", SDK_TS + 86_399, None, None),
    (
        "ApplyWebVerificationBizTokenIntl",
        {"RedirectURL": "https://h.example/cb?x=1&y=%20", "Extra": "泰国 ✓", "CompareImageBase64": "iVBORw0KGgo="},
        "ap-jakarta",
        1_234_567_890,
        None,
        "en-US",
    ),
    ("GetWebVerificationResultIntl", GET, "ap-hongkong", 1_800_000_000, "tmp-session-token-xyz", None),
    ("ApplyWebVerificationBizTokenIntl", {"RedirectURL": "https://a.b/"}, "sa-saopaulo", 946_684_800, None, None),
]


@pytest.mark.parametrize(("action", "params", "region", "timestamp", "token", "language"), CASES)
def test_byte_for_byte_with_official_sdk(
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    params: dict[str, Any],
    region: str,
    timestamp: int,
    token: str | None,
    language: str | None,
) -> None:
    req = _sdk_request(
        monkeypatch,
        action,
        params,
        secret_id=SDK_ID,
        secret_key=SDK_KEY,
        region=region,
        timestamp=timestamp,
        token=token,
        language=language,
    )
    body = req.data.encode() if isinstance(req.data, str) else req.data
    headers = {
        k: v
        for k, v in req.header.items()
        if k in ("Content-Type", "Host", "X-TC-Action", "X-TC-Version", "X-TC-Region", "X-TC-Token", "X-TC-Language")
    }
    mine = tc3.sign_tc3(
        "POST",
        f"https://{HOST}{req.uri}",
        headers,
        body,
        secret_id=SDK_ID,
        secret_key=SDK_KEY,
        service="faceid",
        now=timestamp,
    )
    assert mine["Authorization"] == req.header["Authorization"]
    assert mine["X-TC-Timestamp"] == req.header["X-TC-Timestamp"]
    # And what the SDK sent verifies on the emulator's side.
    ok = tc3.verify_tc3(
        "POST", req.uri, "", req.header, body, secret_for={SDK_ID: SDK_KEY}.get, service="faceid", now=timestamp + 10
    )
    assert ok.secret_id == SDK_ID and ok.signed_headers == ("content-type", "host")


# --- verification failures ------------------------------------------------------------------------


def _signed(**kw: Any) -> tuple[dict[str, str], bytes]:
    body = json.dumps(GET).encode()
    headers = tc3.sign_tc3(
        "POST",
        "http://127.0.0.1:9000/",
        _faceid_headers("GetWebVerificationResultIntl") | {"Host": "127.0.0.1:9000"},
        body,
        secret_id=SDK_ID,
        secret_key=kw.pop("secret_key", SDK_KEY),
        service="faceid",
        now=SDK_TS,
        **kw,
    )
    return headers, body


def _verify(headers: dict[str, str], body: bytes, now: float = SDK_TS) -> tc3.Verified:
    return tc3.verify_tc3("POST", "/", "", headers, body, secret_for={SDK_ID: SDK_KEY}.get, service="faceid", now=now)


def test_verify_accepts_more_signed_headers() -> None:
    headers, body = _signed(signed_headers=("content-type", "host", "x-tc-action", "x-tc-region"))
    assert "SignedHeaders=content-type;host;x-tc-action;x-tc-region," in headers["Authorization"]
    assert _verify(headers, body).signed_headers == ("content-type", "host", "x-tc-action", "x-tc-region")
    # The action is now covered: changing it breaks the signature.
    with pytest.raises(tc3.TC3Failure) as err:
        _verify(headers | {"X-TC-Action": "ApplyWebVerificationBizTokenIntl"}, body)
    assert err.value.code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h, b: (h, b + b" "), "AuthFailure.SignatureFailure"),
        (lambda h, b: (h | {"Host": "127.0.0.1:9001"}, b), "AuthFailure.SignatureFailure"),
        (lambda h, b: (h | {"Content-Type": "text/plain"}, b), "AuthFailure.SignatureFailure"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "Authorization"}, b), "AuthFailure.InvalidAuthorization"),
        (lambda h, b: (h | {"Authorization": "TC3-HMAC-SHA256 garbage"}, b), "AuthFailure.InvalidAuthorization"),
        (
            lambda h, b: (h | {"Authorization": h["Authorization"].replace("content-type;host", "host")}, b),
            "AuthFailure.InvalidAuthorization",
        ),
        (
            lambda h, b: (h | {"Authorization": h["Authorization"].replace(SDK_ID, "AKIDunknown")}, b),
            "AuthFailure.SecretIdNotFound",
        ),
        (
            lambda h, b: (h | {"Authorization": h["Authorization"].replace("/faceid/", "/cvm/")}, b),
            "AuthFailure.SignatureFailure",
        ),
    ],
)
def test_verify_refusals(mutate: Any, code: str) -> None:
    headers, body = _signed()
    _verify(headers, body)
    bad_headers, bad_body = mutate(headers, body)
    with pytest.raises(tc3.TC3Failure) as err:
        _verify(bad_headers, bad_body)
    assert err.value.code == code


def test_wrong_key_is_signature_failure() -> None:
    headers, body = _signed(secret_key="not-the-key")
    with pytest.raises(tc3.TC3Failure) as err:
        _verify(headers, body)
    assert err.value.code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(("offset", "ok"), [(299, True), (-299, True), (301, False), (-301, False)])
def test_verify_skew_is_five_minutes(offset: int, ok: bool) -> None:
    headers, body = _signed()
    if ok:
        _verify(headers, body, now=SDK_TS + offset)
        return
    with pytest.raises(tc3.TC3Failure) as err:
        _verify(headers, body, now=SDK_TS + offset)
    assert err.value.code == "AuthFailure.SignatureExpire"


def test_signer_signs_the_exact_bytes_sent() -> None:
    clock = Clock(offset=SDK_TS + 0.5 - Clock().now())  # mid-second: int() is SDK_TS
    signer = tc3.TC3Signer(Secret(SDK_ID), Secret(SDK_KEY), service="faceid", clock=clock)
    body = json.dumps(APPLY).encode()
    headers = {
        "Content-Type": "application/json",
        "X-TC-Action": "ApplyWebVerificationBizTokenIntl",
        "X-TC-Version": "2018-03-01",
        "X-TC-Region": "ap-singapore",
    }
    signed = signer("POST", f"https://{HOST}/", headers, body)
    assert (
        _sig({"Authorization": signed["Authorization"]})
        == "327bd98898dfea3de6fefb6e56b617f9966f5f44d3ea51a927439f14d654ba95"
    )
    # The Host signed is the one sent (set by the signer, the default port left out); the caller's dict is untouched.
    assert signed["Host"] == HOST and "Host" not in headers
    assert signer("POST", f"https://{HOST}:443/", headers, body)["Authorization"] == signed["Authorization"]
    assert "testsecretkey" not in repr([getattr(signer, slot, None) for slot in tc3.TC3Signer.__slots__])
