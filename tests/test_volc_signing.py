"""Volcengine SignerV4: published vectors, the official SDK as an offline oracle, and the verifier."""

from __future__ import annotations

import calendar
import datetime
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from aiohttp import web
from multidict import CIMultiDict

from realauth_server.secret import Secret
from realauth_server.signing.volc_v4 import (
    SignatureError,
    VolcV4Signer,
    canonical_query,
    sign_v4,
    signing_key,
    verify_v4,
)
from realauth_server.vendors.volcengine.adapter import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY

from .conftest import ServerFactory, on_loopback


def ts(x_date: str) -> float:
    return float(calendar.timegm(time.strptime(x_date, "%Y%m%dT%H%M%SZ")))


def signature_of(auth: str) -> str:
    return auth.rsplit("Signature=", 1)[1]


# --- published vectors (vendors.md §3.2, §3.3) -----------------------------------------------------

V1_AK = "AKLTYWViMTVmZGYzM2E0NDI5Mzk2MDZjNjFmMjc2MjRjMzg"
V1_SK = "WkRZeE1EQmxPVGhsWWpWak5HVmtNbUUxTXpZeU9UVXlOMlE1TmpZeVlqTQ=="
V2_AK = "AKLTMjI2ODVlYzI3ZGY1NGU4ZjhjYWRjMTlmNTM5OTZkYzE"
V2_SK = "TnpCak5XWXpZV1U0WkRaaE5ERmxaR0ZpTmpjeVkyUXlZek0wTWpJMU1qWQ=="


def test_v1_doc_vector_without_body_hash_header() -> None:
    url = "https://iam.volcengineapi.com/?Action=ListUsers&Version=2018-01-01&Limit=10&Offset=0"
    added = sign_v4(
        "GET",
        url,
        {"Host": "iam.volcengineapi.com"},
        b"",
        access_key_id=V1_AK,
        secret_access_key=V1_SK,
        region="cn-beijing",
        service="iam",
        now=ts("20240619T071306Z"),
        add_content_sha256=False,
    )
    assert added["X-Date"] == "20240619T071306Z"
    assert "X-Content-Sha256" not in added
    assert "SignedHeaders=host;x-date," in added["Authorization"]
    assert signing_key(V1_SK, "20240619", "cn-beijing", "iam").hex() == (
        "abee62e533a58934c49954459a3c3237d2fccea517c9a7c8a2651d8ea7779826"
    )
    assert signature_of(added["Authorization"]) == "e31c4558bcfe08a286001f59cedbf0791ffd0b2362f10e55ee2627467bcdde93"
    assert added["Authorization"].startswith(f"HMAC-SHA256 Credential={V1_AK}/20240619/cn-beijing/iam/request, ")


def test_v2_doc_vector() -> None:
    url = "https://iam.volcengineapi.com/?Action=ListUsers&Version=2018-01-01&Limit=10&Offset=0"
    added = sign_v4(
        "GET",
        url,
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"",
        access_key_id=V2_AK,
        secret_access_key=V2_SK,
        region="cn-north-1",
        service="iam",
        now=ts("20201230T081805Z"),
    )
    assert added["X-Content-Sha256"] == hashlib.sha256(b"").hexdigest()
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date," in added["Authorization"]
    assert signature_of(added["Authorization"]) == "28eeabbbd726b87002e0fe58ad8c1c768e619b06e2646f35b6ad7ed029a6d8a7"


def test_ark_vector() -> None:
    body = b'{"CallbackURL": "https://example.com/cb", "ProjectName": "default"}'
    added = sign_v4(
        "POST",
        "https://open.volcengineapi.com/?Action=CreateVisualValidateSession&Version=2024-01-01",
        {"Host": "open.volcengineapi.com", "Content-Type": "application/json"},
        body,
        access_key_id="AKLTtestaccesskey",
        secret_access_key="dGVzdHNlY3JldGtleQ==",
        region="cn-beijing",
        service="ark",
        now=ts("20260331T144916Z"),
    )
    # vendors.md §3.3(c) computes it with the §3.3(b) test key pair.
    assert signature_of(added["Authorization"]) == "cf815c1e6db5d8637e0d345efa74d24f79f66eb2bb9ba0790e137ef6b2dbdd92"


# --- the official SDK, offline, as an oracle -------------------------------------------------------


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("VOLC_ACCESSKEY", raising=False)
    monkeypatch.delenv("VOLC_SECRETKEY", raising=False)
    from volcengine.auth.SignerV4 import SignerV4
    from volcengine.auth.SignParam import SignParam
    from volcengine.Credentials import Credentials

    return SignerV4, SignParam, Credentials


CASES = [
    ("POST", "visual.volcengineapi.com", {"Action": "CertH5ConfigInit", "Version": "2022-08-31"},
     b'{"req_key": "cert_h5_config_init"}', "cv", "cn-north-1", datetime.datetime(2024, 1, 1), ""),
    ("POST", "visual.volcengineapi.com", {"Action": "CertVerifyQuery", "Version": "2022-08-31"},
     '{"req_key": "cert_pro_verify_query", "byted_token": "名字 ~x"}'.encode(), "cv", "cn-north-1",
     datetime.datetime(2025, 6, 30, 23, 59, 59), "sts-session-token/with+chars="),
    ("GET", "open.volcengineapi.com", {"Version": "2024-01-01", "Action": "GetVisualValidateResult", "a b": "c*d"},
     b"", "ark", "cn-beijing", datetime.datetime(2026, 3, 31, 14, 49, 16), ""),
    ("POST", "127.0.0.1:8080", {"Action": "CreateVisualValidateSession", "Version": "2024-01-01", "Z": "é/ü"},
     b'{"CallbackURL": "https://example.com/cb?x=1&y=2"}', "ark", "ap-southeast-1",
     datetime.datetime(2023, 2, 28, 1, 2, 3), "tok"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "host", "query", "body", "service", "region", "when", "token"), CASES)
def test_byte_for_byte_with_official_sdk(
    sdk: Any,
    method: str,
    host: str,
    query: dict[str, str],
    body: bytes,
    service: str,
    region: str,
    when: datetime.datetime,
    token: str,
) -> None:
    signer, sign_param, credentials = sdk
    ak, sk = "AKLTtestaccesskey", "dGVzdHNlY3JldGtleQ=="
    p = sign_param()
    p.method, p.host, p.path, p.body = method, host, "/", body
    p.date = when
    p.query = OrderedDict(query)
    p.header_list = OrderedDict([("Host", host), ("Content-Type", "application/json")])
    cred = credentials(ak, sk, service, region)
    if token:
        cred.session_token = token
    expected = signer.sign_only(p, cred)

    url = f"http://{host}/?{urlencode(query, quote_via=quote)}"
    added = sign_v4(
        method,
        str(url),
        {"Host": host, "Content-Type": "application/json"},
        body,
        access_key_id=ak,
        secret_access_key=sk,
        region=region,
        service=service,
        now=float(calendar.timegm(when.timetuple())),
        session_token=token or None,
    )
    assert added["Authorization"] == expected.authorization
    assert added["X-Date"] == expected.xdate
    assert added["X-Content-Sha256"] == expected.xContextSha256


def test_full_client_vector_b_and_sdk_capture(sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """vendors.md §3.3(b): VisualService's own request, captured offline, equals ours byte for byte."""
    signer, _, _ = sdk
    from volcengine.visual.VisualService import VisualService

    monkeypatch.setattr(signer, "get_current_format_date", staticmethod(lambda: "20240101T000000Z"))
    captured: dict[str, Any] = {}

    class Reply:
        status_code = 200
        text = '{"code": 10000, "data": {}}'

        def json(self) -> Any:
            return json.loads(self.text)

    def post(url: str, headers: dict[str, str], data: Any, **kw: Any) -> Reply:
        captured.update(url=url, headers=dict(headers), data=data)
        return Reply()

    vs = VisualService()
    vs.set_ak("AKLTtestaccesskey")
    vs.set_sk("dGVzdHNlY3JldGtleQ==")
    monkeypatch.setattr(vs.session, "post", post)
    form = {
        "req_key": "cert_h5_config_init",
        "h5_config": {"type": "1", "redirect_url": "https://example.com/done"},
        "liveness_config": {"ref_source": "1", "liveness_type": "motion"},
    }
    vs.cert_h5_config_init(form)
    assert captured["url"] == "http://visual.volcengineapi.com/?Action=CertH5ConfigInit&Version=2022-08-31"
    body = captured["data"] if isinstance(captured["data"], bytes) else captured["data"].encode()
    sent = captured["headers"]
    ours = sign_v4(
        "POST",
        captured["url"],
        {"Host": sent["Host"], "Content-Type": sent["Content-Type"]},
        body,
        access_key_id="AKLTtestaccesskey",
        secret_access_key="dGVzdHNlY3JldGtleQ==",
        region="cn-north-1",
        service="cv",
        now=ts("20240101T000000Z"),
    )
    assert ours["Authorization"] == sent["Authorization"]
    assert signature_of(ours["Authorization"]) == "4655a86fb678e65068cdfdaf73ed31c52f229d14742f13df7b1c2c79d15a9436"
    assert ours["X-Content-Sha256"] == sent["X-Content-Sha256"]


# --- the signer and the verifier ------------------------------------------------------------------


@dataclass
class _Sent:
    """A request as the signer leaves it for the transport (mutable, so a test can tamper with it)."""

    method: str
    url: str
    headers: CIMultiDict[str]
    content: bytes


def _sign(
    signer: VolcV4Signer, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> _Sent:
    return _Sent(method, url, CIMultiDict(signer(method, url, headers or {}, body)), body)


def _verify(request: _Sent, now: float, **kw: Any) -> Any:
    parts = urlsplit(request.url)
    args: dict[str, Any] = {
        "method": request.method,
        "path": parts.path,
        "query": parse_qsl(parts.query, keep_blank_values=True),
        "headers": request.headers,
        "body": request.content,
        "lookup": {"AKsandbox": "sandbox-secret"}.get,
        "region": "cn-north-1",
        "service": "cv",
        "now": now,
    }
    args.update(kw)
    return verify_v4(**args)


def _signed(now: float, body: bytes = b'{"a": 1}', token: Secret | None = None) -> _Sent:
    signer = VolcV4Signer(
        Secret("AKsandbox"), Secret("sandbox-secret"), region="cn-north-1", service="cv", clock=lambda: now,
        session_token=token,
    )  # fmt: skip
    url = "http://127.0.0.1:9/?Action=CertH5ConfigInit&Version=2022-08-31"
    return _sign(signer, "POST", url, {"Content-Type": "application/json"}, body)


def test_signer_sends_the_host_it_signed() -> None:
    """Host is signed, so the signer sets it (the URL's host, the default port left out) rather than leave it to
    whatever the transport derives; a retry's request is signed afresh, without the previous attempt's headers."""
    now = 1_750_000_000.0
    signer = VolcV4Signer(Secret("AKsandbox"), Secret("sandbox-secret"), region="cn-north-1", service="cv",
                          clock=lambda: now)  # fmt: skip
    first = _sign(signer, "POST", "https://Open.Example.com:443/?Action=A&Version=1", {"Content-Type": "a/b"}, b"{}")
    assert first.headers["Host"] == "open.example.com"
    assert _sign(signer, "GET", "http://127.0.0.1:8080/?Action=A").headers["Host"] == "127.0.0.1:8080"
    again = signer("POST", "https://open.example.com/?Action=A&Version=1", dict(first.headers), b"{}")
    assert [k for k in again if k.lower() == "authorization"] == ["Authorization"]
    assert again["Authorization"] == first.headers["Authorization"]


def test_auth_signs_exact_bytes_and_verifier_accepts() -> None:
    now = 1_750_000_000.0
    req = _signed(now, token=Secret("sts-token"))
    ok = _verify(req, now + 899)
    assert ok.access_key_id == "AKsandbox" and ok.session_token == "sts-token"
    assert set(ok.signed_headers) == {"content-type", "host", "x-content-sha256", "x-date", "x-security-token"}


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda r: r.headers.pop("Authorization"), "MissingAuthenticationToken"),
        (lambda r: r.headers.__setitem__("Authorization", "Bearer x"), "MissingSignature"),
        (lambda r: r.headers.__setitem__("X-Date", "2020"), "MissingRequestInfo"),
        (lambda r: r.headers.__setitem__("Content-Type", "text/plain"), "SignatureDoesNotMatch"),
        (lambda r: setattr(r, "content", b'{"a": 2}'), "SignatureDoesNotMatch"),
        (lambda r: r.headers.pop("X-Content-Sha256"), "SignatureDoesNotMatch"),
        (
            lambda r: r.headers.__setitem__("Authorization", r.headers["Authorization"].replace("AKsandbox", "AKx")),
            "InvalidAccessKey",
        ),
        (
            lambda r: r.headers.__setitem__("Authorization", r.headers["Authorization"].replace("/cv/", "/ark/")),
            "SignatureDoesNotMatch",
        ),
    ],
)
def test_verifier_refuses_tampering(mutate: Any, code: str) -> None:
    now = 1_750_000_000.0
    req = _signed(now)
    mutate(req)
    with pytest.raises(SignatureError) as err:
        _verify(req, now)
    assert err.value.code == code


def test_verifier_refuses_stale_x_date_both_ways() -> None:
    now = 1_750_000_000.0
    req = _signed(now)
    for skew in (901, -901):
        with pytest.raises(SignatureError) as err:
            _verify(req, now + skew)
        assert err.value.code == "InvalidTimestamp"


def test_canonical_query_is_rfc3986_and_sorted() -> None:
    assert canonical_query([("b", "x y"), ("a", "1*~"), ("A", "é")]) == "A=%C3%A9&a=1%2A~&b=x%20y"


def test_secret_never_in_headers() -> None:
    req = _signed(1_750_000_000.0)
    assert "sandbox-secret" not in str(req.headers)


def test_auth_sets_content_type_on_a_body_request_before_signing() -> None:
    """A POST without Content-Type gets the SDK's default, signed, so no transport adds an unsigned one later."""
    signer = VolcV4Signer(
        Secret("AKsandbox"), Secret("sandbox-secret"), region="cn-north-1", service="cv", clock=lambda: 1.0
    )
    signed = _sign(signer, "POST", "http://127.0.0.1:9/?Action=A&Version=1")
    assert signed.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date," in signed.headers["Authorization"]
    got = _sign(signer, "GET", "http://127.0.0.1:9/?Action=A&Version=1")
    assert (
        "Content-Type" not in got.headers
        and "SignedHeaders=host;x-content-sha256;x-date," in got.headers["Authorization"]
    )


def test_verifier_can_require_content_type() -> None:
    now = 1_750_000_000.0
    signer = VolcV4Signer(
        Secret("AKsandbox"), Secret("sandbox-secret"), region="cn-north-1", service="cv", clock=lambda: now
    )
    req = _sign(signer, "GET", "http://127.0.0.1:9/?Action=CertVerifyQuery&Version=2022-08-31")
    assert _verify(req, now).signed_headers == ("host", "x-content-sha256", "x-date")
    with pytest.raises(SignatureError) as err:
        _verify(req, now, required=("content-type", "host", "x-date"))
    assert err.value.code == "SignatureDoesNotMatch" and "content-type" in err.value.message


# --- realauth's own AssumeRole, on the wire (issue 10) ----------------------------------------------------------


async def test_assume_role_on_the_wire_is_what_the_official_signer_signs(
    make_realauth: ServerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real capture server records the AssumeRole request exactly as it arrived (headers the transport added
    included); the official SDK's SignerV4, run over those bytes, must produce the very Authorization sent."""
    monkeypatch.setenv("HOME", str(tmp_path))
    from volcengine.auth.SignerV4 import SignerV4
    from volcengine.base.Request import Request
    from volcengine.Credentials import Credentials

    seen: list[tuple[str, str, list[tuple[str, str]], list[tuple[str, str]], bytes]] = []

    async def sts(request: web.Request) -> web.Response:
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        seen.append(
            (request.method, request.rel_url.raw_path, list(request.query.items()), raw_headers, await request.read())
        )
        later = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3 * 3600))
        creds = {"AccessKeyId": "AKTPcaptured", "SecretAccessKey": "c2s", "SessionToken": "STScaptured",
                 "ExpiredTime": later, "CurrentTime": later}  # fmt: skip
        return web.json_response({"ResponseMetadata": {"Action": "AssumeRole"}, "Result": {"Credentials": creds}})

    app = web.Application()
    app.router.add_route("*", "/", sts)
    async with on_loopback(lambda url: app) as (_, url):
        config = "\n".join(["[providers.volc]", 'kind = "volcengine"', "sandbox = true", f'sts_base_url = "{url}"', ""])
        h = await make_realauth(config)
        session = await h.create(provider="volc")
    assert "accessKeyId=AKTPcaptured" in session.verification_url
    assert len(seen) == 1
    method, path, query, raw_headers, body = seen[0]
    # HTTP header names are case-insensitive (a client may send them in any case); the SDK's signer picks the headers to
    # sign by its own spelling (Content-Type, Host, X-*), so it is handed the same headers in that spelling.
    headers = [(k.title(), v) for k, v in raw_headers]
    wire = dict(headers)

    request = Request()
    request.method, request.path, request.body = method, path, body
    request.query = OrderedDict(query)
    request.headers = OrderedDict((k, v) for k, v in headers if k != "Authorization")
    monkeypatch.setattr(SignerV4, "get_current_format_date", staticmethod(lambda: wire["X-Date"]))
    SignerV4.sign(request, Credentials(SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY, "sts", "cn-north-1"))
    assert request.headers["Authorization"] == wire["Authorization"]
    assert wire["X-Content-Sha256"] == hashlib.sha256(b"").hexdigest()
    # As the SDK's StsService sends it: a GET with no body, so there is no Content-Type at all.
    assert (method, body, "Content-Type" in wire) == ("GET", b"", False)
